import { setTimeout as sleep } from 'node:timers/promises';
import type { TorporClient } from '../../client/index.js';
import type { RestoreResult } from '../../contract/types.js';
import { isAlive, step, stopTree } from './flow-app.js';
import { type ActivityRecord, activityRecords } from './flow-history.js';

/** A second restore of the same checkpoint with its image still in the page cache: a second replica on the node. */
export interface WarmRestoreResult {
  wallMs: number;
  result: RestoreResult;
  activities: ActivityRecord[];
  /** CRIU's own time in the restore step, as the agent reported it. */
  criuMs: number;
  /** Image bytes / CRIU's time: the page restore's effective rate with every page cached. */
  criuGBps: number;
}

const MINUTE = 60_000;

async function waitGone(pid: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (isAlive(pid)) {
    if (performance.now() > deadline) throw new Error(`pid ${pid} still alive ${timeoutMs} ms after SIGKILL`);
    await sleep(100);
  }
}

/**
 * Stops the restored process (its PID must be free: CRIU restores the same one) and restores the
 * checkpoint again without dropping the page cache, then stops that one too.
 */
export async function warmRestore(
  torpor: TorporClient,
  request: { hash: string; node: string; port: number; gpus: string[] | null; imageBytes: number; restoredPid: number },
): Promise<WarmRestoreResult> {
  stopTree(request.restoredPid);
  await waitGone(request.restoredPid, MINUTE);
  step(`warm restore of ${request.hash} (page cache kept)`);
  const started = performance.now();
  const handle = await torpor.startRestore({
    hash: request.hash,
    node: request.node,
    runtime: 'local',
    readiness: { kind: 'http', port: request.port, path: '/health' },
    readyTimeoutMs: 10 * MINUTE,
    ...(request.gpus ? { gpus: request.gpus } : {}),
  });
  const result = await torpor.result(handle);
  const wallMs = performance.now() - started;
  try {
    const activities = await activityRecords(handle);
    const restore = activities.find((a) => a.activity === 'restoreCheckpoint')?.result as
      | { criuMs?: number; gateHeldMs?: number; verifyDoneMs?: number }
      | undefined;
    const criuMs = restore?.criuMs ?? 0;
    const at = (ms: number | undefined) => (ms === undefined ? '?' : `${(ms / 1000).toFixed(2)} s`);
    step(
      `warm restore: pid ${result.pid} in ${(wallMs / 1000).toFixed(1)} s, CRIU ${at(criuMs)} (tree held at the gate at ${at(restore?.gateHeldMs)}, verification done at ${at(restore?.verifyDoneMs)})`,
    );
    return { wallMs, result, activities, criuMs, criuGBps: criuMs > 0 ? request.imageBytes / 1e9 / (criuMs / 1000) : 0 };
  } finally {
    stopTree(result.pid);
  }
}
