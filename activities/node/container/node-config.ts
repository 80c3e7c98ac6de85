import path from 'node:path';
import { noContainerRuntime } from '../../../contract/containers.js';
import type { NodeAgentConfig } from '../agent-config.js';
import { createContainerActivities } from './activities.js';
import type { ContainerAgentConfig } from './types.js';

/**
 * The container side of a node agent. Container checkpoints are checkpoints of the agent's store
 * (`<storage>/<hash>`, the directory a restore pod mounts at DYN_CHECKPOINT_PATH).
 */
export function containerAgentConfig(config: NodeAgentConfig): ContainerAgentConfig | undefined {
  if (!config.containers) return undefined;
  return {
    ...config.containers,
    criuPath: config.criuPath,
    nodeName: config.nodeName,
    storeRoot: config.storageRoot,
    workRoot: path.join(config.storageRoot, '.container-work'),
  };
}

export function nodeContainerActivities(config: NodeAgentConfig): ReturnType<typeof createContainerActivities> {
  const containers = containerAgentConfig(config);
  if (containers) return createContainerActivities(containers);
  const refuse = async () => Promise.reject(noContainerRuntime(config.nodeName));
  return { dumpContainer: refuse, restoreContainer: refuse, restoreIntoPlaceholder: refuse };
}
