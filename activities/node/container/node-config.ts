import { noContainerRuntime } from '../../../contract/containers.js';
import type { NodeAgentConfig } from '../agent-config.js';
import { StoreLayout } from '../store/layout.js';
import { createContainerActivities } from './activities.js';
import { signalPodActivities } from './signal-pod.js';
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
    networkLock: config.networkLock,
    nodeName: config.nodeName,
    digestChunkBytes: config.digestChunkBytes,
    storeRoot: config.storageRoot,
    workRoot: new StoreLayout(config.storageRoot).containerWorkRoot(),
  };
}

/** The container activities of a node agent: without a container runtime, dump and restore refuse typed. */
export function nodeContainerActivities(config: NodeAgentConfig) {
  const layout = new StoreLayout(config.storageRoot, config.signalDir, config.manifestKeyFile);
  const containers = containerAgentConfig(config);
  const refuse = async () => Promise.reject(noContainerRuntime(config.nodeName));
  const steps: ReturnType<typeof createContainerActivities> = containers
    ? createContainerActivities(containers, layout)
    : { dumpContainer: refuse, restoreIntoPlaceholder: refuse };
  return { ...steps, ...signalPodActivities(layout) };
}
