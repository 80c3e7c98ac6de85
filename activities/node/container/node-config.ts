import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { noContainerRuntime } from '../../../contract/containers.js';
import type { NodeAgentConfig } from '../agent-config.js';
import { StoreLayout } from '../store/layout.js';
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
    networkLock: config.networkLock,
    nodeName: config.nodeName,
    storeRoot: config.storageRoot,
    workRoot: path.join(config.storageRoot, '.container-work'),
  };
}

export function nodeContainerActivities(config: NodeAgentConfig) {
  const layout = new StoreLayout(config.storageRoot, config.signalDir);
  const containers = containerAgentConfig(config);
  const refuse = async () => Promise.reject(noContainerRuntime(config.nodeName));
  const steps: ReturnType<typeof createContainerActivities> = containers
    ? createContainerActivities(containers)
    : { dumpContainer: refuse, restoreContainer: refuse, restoreIntoPlaceholder: refuse };
  return {
    ...steps,
    /**
     * Tells a checkpoint pod its checkpoint is committed (ChReK: the DaemonSet writes the signal
     * file): `<signal dir>/<hash>.done`, the host directory the Job mounts at /checkpoint-signal.
     */
    async signalCheckpointPod({ hash }: { hash: string }): Promise<void> {
      const file = layout.signalFile(hash);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, `${hash}\n`);
    },
  };
}
