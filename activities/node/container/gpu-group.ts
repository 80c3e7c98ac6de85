import { torporFailure } from '../../../contract/failures.js';
import type { GpuContainerRef } from '../../../contract/gpu-types.js';
import { containerDevices, type DeviceRequest } from '../gpu/gpu-selection.js';
import { processTree } from '../proc/identity.js';
import { checkHash } from '../store/layout.js';
import { resolveTarget } from './dump.js';
import { bundleGpuNodes, type DeviceNode } from './gpu-device-nodes.js';
import { resolvePlaceholder } from './placeholder.js';
import { checkNode } from './target-policy.js';
import type { ContainerAgentConfig } from './types.js';

/** A container's process tree as the host sees it, and the GPUs its bundle gives it. */
export interface ContainerGpuGroup {
  rootPid: number;
  /** Its init and every descendant (a tree restored into a placeholder hangs below the placeholder's init). */
  pids: number[];
  devices: DeviceRequest;
  /** The NVIDIA device nodes its runtime created (a restored tree needs a placeholder's in its own /dev). */
  gpuNodes: DeviceNode[];
  what: string;
}

/**
 * Finds the container through runc under this agent's root and verifies it as the dump or the
 * restore does (a checkpoint source, or a placeholder for `hash`); its GPUs come from its own bundle
 * (config.json, written by the container runtime from what the device plugin allocated), never
 * from the workflow's input.
 */
export async function containerGpuGroup(
  config: ContainerAgentConfig,
  target: { hash: string; container: GpuContainerRef; nodeName?: string },
): Promise<ContainerGpuGroup> {
  checkNode(target.nodeName, config.nodeName);
  const { id, role } = target.container;
  if (role !== 'source' && role !== 'placeholder') {
    throw torporFailure('TargetNotAllowed', `"${String(role)}" is not a container role (source or placeholder)`);
  }
  const container = role === 'placeholder' ? await resolvePlaceholder(config, id, checkHash(target.hash)) : await resolveTarget(config, id);
  return {
    rootPid: container.initPid,
    pids: await processTree(container.initPid),
    devices: containerDevices(container.env, container.annotations),
    gpuNodes: await bundleGpuNodes(container.bundle),
    what: `${role === 'placeholder' ? 'placeholder' : 'container'} ${container.id}`,
  };
}
