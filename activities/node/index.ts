import type { NodeAgentConfig } from './agent-config.js';
import { nodeContainerActivities } from './container/node-config.js';
import { type GpuActivityDeps, gpuActivities } from './gpu/index.js';
import { dumpActivities } from './local/dump.js';
import { restoreActivities } from './local/restore.js';
import { specHashActivities } from './local/spec-hash.js';
import { localWorkloadActivities } from './local/workload.js';
import { retentionActivities } from './store/catalog.js';
import { checkpointStoreActivities } from './store/checkpoints.js';
import { garbageActivities } from './store/garbage.js';
import { StoreLayout } from './store/layout.js';

/** Every activity the node agent registers on `torpor-node-<node>`. */
/** `gpu` replaces the CUDA driver and nvidia-smi (tests on machines without a GPU). */
export function createNodeActivities(config: NodeAgentConfig, gpu?: GpuActivityDeps) {
  const layout = new StoreLayout(config.storageRoot, config.signalDir);
  return {
    ...checkpointStoreActivities(config, layout),
    ...localWorkloadActivities(layout, config.workloadLauncher),
    ...dumpActivities(config, layout),
    ...restoreActivities(config, layout),
    ...gpuActivities(config, layout, gpu),
    ...specHashActivities(config, gpu?.queryGpus),
    ...retentionActivities(config, layout),
    ...garbageActivities(layout),
    ...nodeContainerActivities(config),
  };
}

export type NodeActivities = ReturnType<typeof createNodeActivities>;
export type { NodeAgentConfig } from './agent-config.js';
