import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { TorporClient } from '../../client/index.js';
import type { CheckpointResult, RestoreResult } from '../../contract/types.js';
import type { ImageRead } from './bench-host.js';
import type { Generation } from './bench-table.js';
import {
  type AppSetup,
  dropPageCache,
  fetchGeneration,
  gpusOfProcess,
  imageReadBack,
  isAlive,
  readJson,
  sameGeneration,
  step,
  stopTree,
  waitForFile,
} from './flow-app.js';
import { type ActivityRecord, activityRecords } from './flow-history.js';
import { type WarmRestoreResult, warmRestore } from './flow-warm.js';

/** What the local phase measured: the workflows' own results, their activities' figures, and the app's generations. */
export interface LocalPhaseResult {
  hash: string;
  /** Whether the page cache was dropped before the cold start (the model read from the disk). */
  coldStartPageCacheDropped: boolean;
  checkpoint: { wallMs: number; result: CheckpointResult; activities: ActivityRecord[] };
  pageCacheDropped: boolean;
  restore: { wallMs: number; result: RestoreResult; activities: ActivityRecord[] };
  /** Restore workflow started → the restored app's generation-after.json written. */
  restoreToGenerationMs: number;
  before: Generation;
  after: Generation;
  /** What the restored process answered on GET /generation. */
  answered: Generation & { phase: string };
  identical: boolean;
  init: Record<string, unknown>;
  /** BENCH_LOCAL_RESTORE_GPUS: the restore request's `gpus` (the restored process's GPU 0 first); absent: the node's, in order. */
  requestedGpus: string[] | null;
  /** Where nvidia-smi saw the restored process hold memory. */
  gpusAfter: string[];
  /** BENCH_WARM_RESTORE (default on): a second restore with the image cached, or why it failed. */
  warm?: WarmRestoreResult | { error: string };
  /** After the restores (BENCH_IMAGE_READ, default on): the pages images read back from a cold page cache. */
  imageRead?: ImageRead | null;
}

const MINUTE = 60_000;

/**
 * The local runtime through the real workflows: checkpoint the app (cold start measured by the
 * workflow: start → ready), drop the page cache, restore it with an HTTP readiness probe, and
 * check that the restored process generates exactly what it did before the checkpoint.
 */
export async function runLocalPhase(torpor: TorporClient, node: string, app: AppSetup): Promise<LocalPhaseResult> {
  const hash = `gpu-flow-${Date.now().toString(36)}`;
  for (const f of ['generation-before.json', 'generation-after.json', 'init.json']) await rm(path.join(app.outputDir, f), { force: true });
  const workload = {
    command: [app.python, path.join(app.appDir, app.script)],
    cwd: app.appDir,
    env: { ...app.env, BENCH_OUTPUT_DIR: app.outputDir, BENCH_HTTP_PORT: String(app.httpPort) },
  };
  const coldStartPageCacheDropped = await dropPageCache();
  step(`checkpoint workflow of ${app.script} as ${hash} on ${node} (page cache dropped: ${coldStartPageCacheDropped})`);
  let started = performance.now();
  const handle = await torpor.startCheckpoint({
    hash,
    node,
    runtime: 'local',
    workload,
    readyTimeoutMs: 20 * MINUTE,
    gpuLockTimeoutMs: MINUTE,
  });
  const checkpoint = await torpor.result(handle);
  const checkpointWallMs = performance.now() - started;
  step(`checkpointed in ${(checkpointWallMs / 1000).toFixed(1)} s: ${JSON.stringify(checkpoint.stepMs)}`);
  const before = await readJson<Generation>(path.join(app.outputDir, 'generation-before.json'));
  const init = await readJson<Record<string, unknown>>(path.join(app.outputDir, 'init.json')).catch(() => ({}));
  const checkpointActivities = await activityRecords(handle);

  const pageCacheDropped = await dropPageCache();
  const requestedGpus = process.env.BENCH_LOCAL_RESTORE_GPUS?.split(',').map((g) => g.trim()) ?? null;
  step(`page cache dropped: ${pageCacheDropped}; restore onto ${requestedGpus?.join(',') ?? "the node's GPUs"}`);
  started = performance.now();
  const restoreHandle = await torpor.startRestore({
    hash,
    node,
    runtime: 'local',
    readiness: { kind: 'http', port: app.httpPort, path: '/health' },
    readyTimeoutMs: 10 * MINUTE,
    ...(requestedGpus ? { gpus: requestedGpus } : {}),
  });
  const restored = await torpor.result(restoreHandle);
  const restoreWallMs = performance.now() - started;
  step(`restored pid ${restored.pid} in ${(restoreWallMs / 1000).toFixed(1)} s: ${JSON.stringify(restored.stepMs)}`);
  try {
    const afterFile = path.join(app.outputDir, 'generation-after.json');
    await waitForFile(afterFile, 10 * MINUTE, async () => isAlive(restored.pid));
    const restoreToGenerationMs = performance.now() - started;
    const after = await readJson<Generation>(afterFile);
    const answered = await fetchGeneration(app.httpPort);
    const gpusAfter = await gpusOfProcess(restored.pid);
    const identical = sameGeneration(before, after) && sameGeneration(after, answered) && answered.phase === 'after-restore';
    step(`restored app answered GET /generation (${answered.phase}); identical to before: ${identical}`);
    const restoreActivities = await activityRecords(restoreHandle);
    const warm =
      process.env.BENCH_WARM_RESTORE === '0'
        ? undefined
        : await warmRestore(torpor, {
            hash,
            node,
            port: app.httpPort,
            gpus: requestedGpus,
            imageBytes: checkpoint.manifest.totalBytes,
            restoredPid: restored.pid,
          }).catch((err: unknown) => ({ error: String(err) }));
    const imageRead = await imageReadBack(hash, checkpoint.manifest.files);
    return {
      hash,
      coldStartPageCacheDropped,
      checkpoint: { wallMs: checkpointWallMs, result: checkpoint, activities: checkpointActivities },
      pageCacheDropped,
      restore: { wallMs: restoreWallMs, result: restored, activities: restoreActivities },
      restoreToGenerationMs,
      before,
      after,
      answered,
      identical,
      init,
      requestedGpus,
      gpusAfter,
      ...(warm ? { warm } : {}),
      ...(imageRead === undefined ? {} : { imageRead }),
    };
  } finally {
    stopTree(restored.pid);
  }
}
