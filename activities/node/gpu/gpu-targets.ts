import { torporFailure } from '../../../contract/failures.js';
import type { GpuTarget } from '../../../contract/gpu-types.js';
import type { DeviceNode } from '../container/gpu-device-nodes.js';
import { containerGpuGroup } from '../container/gpu-group.js';
import type { ContainerAgentConfig } from '../container/types.js';
import { carriesHash, isRunning, type ProcessIdentity, processTree } from '../proc/identity.js';
import type { StoreLayout } from '../store/layout.js';
import { type RestoredRecord, readRecord, type WorkloadRecord } from '../store/run-records.js';
import type { DeviceRequest } from './gpu-selection.js';

export interface ResolvedTarget {
  id: ProcessIdentity;
  /** False when the recorded process no longer runs (same PID and start time). */
  running: boolean;
}

/**
 * Finds the process a GPU step acts on from the agent's own records, never from a PID in the input:
 * the checkpoint workload this agent started (`.runs/<hash>/workload.json`) or the process one of
 * its restores brought back (`.restores/<hash>/<restoreId>/restored.json`). A running process must
 * still carry the checkpoint's hash in its environment.
 */
export async function resolveGpuTarget(layout: StoreLayout, target: GpuTarget): Promise<ResolvedTarget> {
  const { hash, restoreId } = target;
  const record =
    restoreId === undefined
      ? await readRecord<WorkloadRecord>(layout.workloadRecord(hash))
      : await readRecord<RestoredRecord>(layout.restoreFiles(hash, restoreId).record);
  if (record === null) {
    const what = restoreId === undefined ? `No workload for checkpoint ${hash}` : `Restore ${restoreId} of ${hash}`;
    throw torporFailure('TargetNotAllowed', `${what} was not made by this agent`);
  }
  if ('placeholderContainerId' in record && record.placeholderContainerId !== undefined) {
    throw torporFailure('TargetNotAllowed', `Restore ${restoreId} of ${hash} went into a placeholder container: name the container`);
  }
  const id: ProcessIdentity = { pid: record.pid, startTime: record.startTime };
  if (!(await isRunning(id))) return { id, running: false };
  if (!(await carriesHash(id.pid, hash))) {
    throw torporFailure('TargetNotAllowed', `Process ${id.pid} is not a workload of checkpoint ${hash}`);
  }
  return { id, running: true };
}

/** The processes a GPU step acts on: a local process's tree or a container's, with the GPUs they can see. */
export interface GpuGroup {
  rootPid: number;
  /** False when the local target no longer runs. */
  running: boolean;
  /** The root and its descendants; the driver says which of them hold CUDA state. */
  pids: number[];
  /** A local process sees every GPU of the node; a container what its bundle gives it. */
  devices: DeviceRequest;
  /** A placeholder's NVIDIA device nodes, made present in the restored tree's /dev before its GPU restore; none for a local process. */
  gpuNodes?: DeviceNode[];
  what: string;
}

/** The group of `target`, from the agent's records (local) or runc (containers); refused without a container runtime. */
export async function resolveGpuGroup(
  layout: StoreLayout,
  containers: ContainerAgentConfig | undefined,
  target: GpuTarget,
): Promise<GpuGroup> {
  if (target.container !== undefined) {
    if (containers === undefined)
      throw torporFailure('TargetNotAllowed', 'This node agent has no container runtime configured (set TORPOR_RUNC_ROOT)');
    const group = await containerGpuGroup(containers, {
      hash: target.hash,
      container: target.container,
      ...(target.nodeName ? { nodeName: target.nodeName } : {}),
    });
    return { ...group, running: true };
  }
  const { id, running } = await resolveGpuTarget(layout, target);
  const what = target.restoreId === undefined ? `workload ${target.hash}` : `restore ${target.restoreId} of ${target.hash}`;
  return { rootPid: id.pid, running, pids: running ? await processTree(id.pid) : [], devices: 'all', what };
}
