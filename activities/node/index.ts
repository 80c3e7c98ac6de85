import type { NodeAgentConfig } from './agent-config.js';
import { checkpointStoreActivities } from './checkpoint-store.js';
import { nodeContainerActivities } from './container/node-config.js';
import { dumpActivities } from './dump.js';
import { garbageActivities } from './garbage.js';
import { type GpuActivityDeps, gpuActivities } from './gpu/index.js';
import { localWorkloadActivities } from './local-workload.js';
import { restoreActivities } from './restore.js';
import { retentionActivities } from './retention.js';
import { specHashActivities } from './spec-hash.js';
import { StoreLayout } from './store-layout.js';

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
