import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TorporClient } from '../../client/index.js';
import type { CheckpointResult, RestoreResult } from '../../contract/types.js';
import { type AppSetup, dropPageCache, gpusOfProcess, isAlive, readJson, step, stopTree, waitForFile } from './flow-app.js';
import { type ActivityRecord, activityRecords } from './flow-history.js';

/** One rank's report (bench/gpu/tp2/tp2_rank.py): its data checksum and the all-reduce it verified. */
export interface RankReport {
  rank: number;
  pid: number;
  ok: boolean;
  error?: string;
  all_reduce_value?: number;
  checksum?: number;
  [figure: string]: unknown;
}

/** What tp2_launcher.py writes before the ready file (tp2-before.json) and after a restore (tp2-after.json). */
export interface Tp2Report {
  launcher_pid: number;
  ranks: RankReport[];
  [figure: string]: unknown;
}

export interface Tp2Restore {
  /** The restore request's `gpus`; null: the node's GPUs in order. */
  gpus: string[] | null;
  pageCacheDropped: boolean;
  wallMs?: number;
  result?: RestoreResult;
  activities?: ActivityRecord[];
  /** Restore workflow started → both ranks re-joined and verified their all-reduce (tp2-after.json). */
  restoreToAllReduceMs?: number;
  after?: Tp2Report;
  /** Where nvidia-smi saw each rank hold memory after the restore. */
  rankGpus?: string[][];
  ok: boolean;
  error?: string;
}

export interface Tp2ModeResult {
  mode: string;
  established: 'close' | 'keep';
  hash: string;
  checkpoint: { wallMs: number; result: CheckpointResult; activities: ActivityRecord[] } | { error: string };
  before?: Tp2Report;
  restores: Tp2Restore[];
}

export type Tp2PhaseResult = { modes: Tp2ModeResult[] };

const MINUTE = 60_000;
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

const parseOrders = (orders: string) => orders.split(';').map((o) => (o.trim() === 'same' ? null : o.split(',').map((g) => g.trim())));

/**
 * BENCH_TP2_RUNS: space-separated `mode:established[:orders]` (default "cooperative:close");
 * BENCH_TP2_RESTORE_GPUS: the restores of each run, `;`-separated GPU orders, `same` for the node's
 * ("same;1,0"); a run's own `:orders` replaces it ("transparent:keep:same": a `keep` checkpoint hands
 * its connections over once, and the first restore's ended connections hold their ports a while).
 */
export function tp2PlanFromEnv(env: NodeJS.ProcessEnv = process.env) {
  const defaultOrders = parseOrders(env.BENCH_TP2_RESTORE_GPUS ?? 'same;1,0');
  const runs = (env.BENCH_TP2_RUNS ?? 'cooperative:close')
    .trim()
    .split(/\s+/)
    .map((run) => {
      const [mode = 'cooperative', established = 'close', orders] = run.split(':');
      if (established !== 'close' && established !== 'keep') throw new Error(`BENCH_TP2_RUNS: ${run}: established must be close or keep`);
      return { mode, established: established as 'close' | 'keep', orders: orders ? parseOrders(orders) : defaultOrders };
    });
  return { runs, rankEnv: tp2RankEnv(env) };
}

/** What the ranks need beside the app's environment: their script, data size, and NCCL's transports (BENCH_TP2_NCCL_ENV "K=V K=V"). */
function tp2RankEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const pairs = (env.BENCH_TP2_NCCL_ENV ?? '').split(/\s+/).filter((p) => p.includes('='));
  return {
    BENCH_TP2_RANK: env.BENCH_TP2_RANK ?? 'tp2_rank.py',
    BENCH_TP2_GIB: env.BENCH_TP2_GIB ?? '4',
    ...Object.fromEntries(pairs.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)])),
  };
}

/**
 * The TP=2 job (bench/gpu/tp2/) through the real checkpoint and restore workflows, local runtime:
 * one checkpoint per run, then one restore per GPU order from that same checkpoint, each checked by
 * the all-reduce both restored ranks verify (after re-joining, in the cooperative mode).
 */
export async function runTp2Phase(
  torpor: TorporClient,
  node: string,
  app: AppSetup,
  onRun: (partial: Tp2PhaseResult) => Promise<void> = async () => undefined,
): Promise<Tp2PhaseResult> {
  const plan = tp2PlanFromEnv();
  const modes: Tp2ModeResult[] = [];
  for (const run of plan.runs) {
    modes.push(await runMode(torpor, node, app, run, plan.rankEnv));
    await onRun({ modes });
  }
  return { modes };
}

/** `transparent-net`: transparent, with NCCL held to its socket transport (no CUDA IPC, no shared memory between the ranks). */
function modeEnv(mode: string): Record<string, string> {
  if (mode !== 'transparent-net') return { BENCH_TP2_MODE: mode };
  return { BENCH_TP2_MODE: 'transparent', NCCL_P2P_DISABLE: '1', NCCL_SHM_DISABLE: '1' };
}

async function runMode(
  torpor: TorporClient,
  node: string,
  app: AppSetup,
  run: { mode: string; established: 'close' | 'keep'; orders: Array<string[] | null> },
  rankEnv: Record<string, string>,
): Promise<Tp2ModeResult> {
  const hash = `tp2-${run.mode}-${run.established}-${Date.now().toString(36)}`;
  for (const f of ['tp2-before.json', 'tp2-after.json']) await rm(path.join(app.outputDir, f), { force: true });
  const workload = {
    command: [app.python, path.join(app.appDir, 'tp2_launcher.py')],
    cwd: app.appDir,
    env: { ...app.env, ...rankEnv, ...modeEnv(run.mode), BENCH_OUTPUT_DIR: app.outputDir },
  };
  step(`TP=2 ${run.mode}, established ${run.established}: checkpoint workflow as ${hash}`);
  const started = performance.now();
  const result: Tp2ModeResult = { mode: run.mode, established: run.established, hash, checkpoint: { error: 'not run' }, restores: [] };
  try {
    const handle = await torpor.startCheckpoint({
      hash,
      node,
      runtime: 'local',
      workload,
      network: { established: run.established },
      readyTimeoutMs: 20 * MINUTE,
      gpuLockTimeoutMs: MINUTE,
    });
    const checkpoint = await torpor.result(handle);
    result.checkpoint = { wallMs: performance.now() - started, result: checkpoint, activities: await activityRecords(handle) };
    step(`checkpointed in ${(result.checkpoint.wallMs / 1000).toFixed(1)} s: ${JSON.stringify(checkpoint.stepMs)}`);
  } catch (err) {
    result.checkpoint = { error: message(err) };
    step(`checkpoint failed: ${message(err)}`);
  }
  const before = await readJson<Tp2Report>(path.join(app.outputDir, 'tp2-before.json')).catch(() => undefined);
  if (before) result.before = before;
  if ('error' in result.checkpoint) return result;
  const pids = before ? [before.launcher_pid, ...before.ranks.map((r) => r.pid)] : [];
  for (const gpus of run.orders) {
    // CRIU restores the dumped PIDs: wait until the original's (or the last restore's) are reaped.
    await waitGone(pids, MINUTE);
    // BENCH_TP2_RESTORE_DELAY_S: outlive the 60 s TIME_WAIT of the connections the job closed (RESULTS.md, TP=2).
    const delayS = Number(process.env.BENCH_TP2_RESTORE_DELAY_S ?? 0);
    if (delayS > 0) step(`waiting ${delayS} s before the restore`);
    await sleep(delayS * 1000);
    result.restores.push(await restoreOnce(torpor, node, app, hash, gpus));
  }
  return result;
}

async function restoreOnce(torpor: TorporClient, node: string, app: AppSetup, hash: string, gpus: string[] | null): Promise<Tp2Restore> {
  await rm(path.join(app.outputDir, 'tp2-after.json'), { force: true });
  const pageCacheDropped = await dropPageCache();
  step(`restore of ${hash} onto ${gpus?.join(',') ?? "the node's GPUs"} (page cache dropped: ${pageCacheDropped})`);
  const started = performance.now();
  const restore: Tp2Restore = { gpus, pageCacheDropped, ok: false };
  let pid: number | undefined;
  try {
    const handle = await torpor.startRestore({ hash, node, runtime: 'local', readyTimeoutMs: 10 * MINUTE, ...(gpus ? { gpus } : {}) });
    const restored = await torpor.result(handle);
    pid = restored.pid;
    Object.assign(restore, { wallMs: performance.now() - started, result: restored, activities: await activityRecords(handle) });
    step(`restored pid ${restored.pid} in ${((restore.wallMs ?? 0) / 1000).toFixed(1)} s: ${JSON.stringify(restored.stepMs)}`);
    await waitForFile(path.join(app.outputDir, 'tp2-after.json'), 5 * MINUTE, async () => isAlive(restored.pid));
    restore.restoreToAllReduceMs = performance.now() - started;
    const after = await readJson<Tp2Report>(path.join(app.outputDir, 'tp2-after.json'));
    restore.after = after;
    restore.rankGpus = await Promise.all(after.ranks.map((r) => gpusOfProcess(r.pid)));
    restore.ok = after.ranks.every((r) => r.ok);
    step(
      `after the restore: ${after.ranks.map((r) => `rank ${r.rank} ${r.ok ? `all-reduce ${r.all_reduce_value}` : r.error}`).join('; ')}`,
    );
  } catch (err) {
    restore.error = message(err);
    step(`restore failed: ${restore.error}`);
  } finally {
    if (pid !== undefined) stopTree(pid);
  }
  return restore;
}

async function waitGone(pids: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some((pid) => existsSync(`/proc/${pid}`)) && Date.now() < deadline) await sleep(200);
}
