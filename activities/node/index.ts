import path from 'node:path';
import type { NodeAgentConfig } from './agent-config.js';
import { nodeContainerActivities } from './container/node-config.js';
import { type GpuActivityDeps, gpuActivities } from './gpu/index.js';
import { defaultHeavyStepLimit, heavyStepQueue, limitHeavySteps } from './heavy-steps.js';
import { oneStepActivities } from './local/checkpoint-in-one-step.js';
import { dumpActivities } from './local/dump.js';
import { restoreActivities } from './local/restore.js';
import { specHashActivities } from './local/spec-hash.js';
import { localWorkloadActivities } from './local/workload.js';
import { guardedSteps } from './step-lock.js';
import { retentionActivities } from './store/catalog.js';
import { checkpointStoreActivities } from './store/checkpoints.js';
import { garbageActivities } from './store/garbage.js';
import { StoreLayout } from './store/layout.js';
import { sharedStoreActivities } from './store/shared/index.js';

/*
 * Every activity the node agent registers on `torpor-node-<node>`, beside its file.
 *
 * checkpoint (workflows/checkpoint.ts)       restore (workflows/restore.ts)
 *   findCheckpoint      store/checkpoints.ts   verifyCheckpoint        store/checkpoints.ts
 *   startWorkload       local/workload.ts      gpuCheckRestore         gpu/index.ts
 *   waitWorkloadReady   local/workload.ts      restoreCheckpoint       local/restore.ts
 *   gpuFreeze           gpu/index.ts           restoreIntoPlaceholder  container/placeholder-restore.ts
 *   dumpWorkload        local/dump.ts          gpuThaw                 gpu/index.ts
 *   dumpContainer       container/dump.ts      waitRestoredReady       local/restore.ts
 *   commitCheckpoint    store/checkpoints.ts   stopRestored (undo)     local/restore.ts
 *   gpuThaw             gpu/index.ts
 *   uploadCheckpoint    store/shared/          fetchCheckpoint         store/shared/ (before verify)
 *   signalWorkload      local/workload.ts    catalog, refresh and gc (workflows/store.ts, refresh.ts, gc.ts)
 *   signalCheckpointPod container/signal-pod.ts  deriveSpecHash      local/spec-hash.ts
 *   waitWorkloadExit    local/workload.ts      listCommitted, describeCheckpoint,
 *   stopWorkload        local/workload.ts        removeCheckpoint      store/catalog.ts
 *   cleanupWorkload     local/workload.ts      collectGarbage          store/garbage.ts
 *   discardDump (undo)  store/checkpoints.ts   gpuState, gpuInfo       gpu/index.ts
 *   startUnlessCommitted, checkpointProcess, finishWorkload    local/checkpoint-in-one-step.ts (the local runtime's
 *     findCheckpoint + startWorkload,
 *     gpuFreeze + dumpWorkload + signalWorkload + commitCheckpoint, and waitWorkloadExit +
 *     stopWorkload + cleanupWorkload, each as one step)
 *
 * Beside them: store/layout.ts names every path on disk, criu/ builds and runs CRIU command lines,
 * proc/ reads /proc (identity, termination, log tails); heavy-steps.ts queues the steps that move
 * image bytes (at most `heavyStepLimit` at once in this agent).
 */

/** `gpu` replaces the CUDA driver and nvidia-smi (tests on machines without a GPU). */
export function createNodeActivities(config: NodeAgentConfig, gpu?: GpuActivityDeps) {
  const layout = new StoreLayout(config.storageRoot, config.signalDir, config.manifestKeyFile);
  const heavy = heavyStepQueue(config.heavyStepLimit ?? defaultHeavyStepLimit());
  const steps = {
    ...checkpointStoreActivities(config, layout),
    ...sharedStoreActivities(config, layout),
    ...localWorkloadActivities(config, layout),
    ...dumpActivities(config, layout),
    ...restoreActivities(config, layout),
    ...gpuActivities(config, layout, gpu),
    ...specHashActivities(config, gpu?.queryGpus),
    ...retentionActivities(config, layout),
    ...garbageActivities(layout, { config }),
    ...nodeContainerActivities(config),
  };
  return guardedSteps(path.join(config.storageRoot, '.locks'), limitHeavySteps(heavy, { ...steps, ...oneStepActivities(steps, layout) }));
}

export type NodeActivities = ReturnType<typeof createNodeActivities>;
export type { NodeAgentConfig } from './agent-config.js';
