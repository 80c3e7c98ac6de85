/**
 * N checkpoint + restore cycles of the sample app through the real workflows on this machine.
 * Prints, per cycle, what CRIU alone took beside what the workflow took end to end, so the
 * difference (orchestration: Temporal round trips, scheduling, readiness polling) is visible, and
 * compares the walls with the storage bound measured in the same run (dd, direct I/O):
 *   checkpoint (after ready) ≤ 1.1 × image bytes / write bandwidth + 1 s
 *   restore from a cold page cache ≤ 1.1 × image bytes / read bandwidth + 1 s
 * and reports the CRIU part's effective GB/s of a second restore with the image already cached.
 *   BENCH_CYCLES (5), BENCH_TABLE_MB (256), BENCH_INIT_SECONDS (3)
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { WorkflowHandle } from '@temporalio/client';
import { readProcStat } from '../activities/node/proc/identity.js';
import { startLocalStack } from '../dev/local-stack.js';
import { sampleRestoredProbe, sampleWorkload } from '../sample-app/workload.js';
import { dropPageCache, measureDisk } from './gpu/bench-host.js';

const DIR = fileURLToPath(new URL('../.torpor/bench/', import.meta.url));
const cycles = Number(process.env.BENCH_CYCLES ?? 5);
const tableMb = Number(process.env.BENCH_TABLE_MB ?? 256);
const initSeconds = Number(process.env.BENCH_INIT_SECONDS ?? 3);

interface Row {
  coldStartMs: number;
  criuDumpMs: number;
  commitMs: number;
  checkpointWallMs: number;
  imageMiB: number;
  /** Of the image, what was hashed while CRIU wrote it: the commit did not read it again. */
  hashedInDumpMiB: number;
  verifyMs: number;
  restoreStepMs: number;
  criuRestoreMs: number;
  readyMs: number;
  restoreWallMs: number;
  warmCriuRestoreMs: number;
  /** From the checkpoint's history: its workflow tasks (scheduled → completed) and its activities' dispatch (scheduled → started). */
  ckptWorkflowTaskMs: number;
  ckptDispatchMs: number;
  /** The app's reaction: from the signal to its exit, as the waiting-exit step saw it. */
  exitWaitMs: number;
}

type Column = keyof Row | 'ckptOverhead' | 'ckptOverheadLessExit' | 'restoreOverhead';
const COLUMNS: [Column, string][] = [
  ['coldStartMs', 'cold start'],
  ['criuDumpMs', 'CRIU dump'],
  ['commitMs', 'commit'],
  ['checkpointWallMs', 'ckpt wall'],
  ['ckptOverhead', 'ckpt orch.'],
  ['imageMiB', 'image MiB'],
  ['hashedInDumpMiB', 'hashed early'],
  ['verifyMs', 'pre-check'],
  ['restoreStepMs', 'verify+CRIU'],
  ['criuRestoreMs', 'CRIU restore'],
  ['readyMs', 'ready probe'],
  ['restoreWallMs', 'restore wall'],
  ['restoreOverhead', 'restore orch.'],
  ['warmCriuRestoreMs', 'warm CRIU'],
  ['ckptWorkflowTaskMs', 'ckpt WFTs'],
  ['ckptDispatchMs', 'ckpt dispatch'],
  ['exitWaitMs', 'exit wait'],
  ['ckptOverheadLessExit', 'orch.-exit'],
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

function value(r: Row, c: Column): number {
  if (c === 'ckptOverhead') return r.checkpointWallMs - r.coldStartMs - r.criuDumpMs - r.commitMs;
  if (c === 'ckptOverheadLessExit') return value(r, 'ckptOverhead') - r.exitWaitMs;
  if (c === 'restoreOverhead') return r.restoreWallMs - r.verifyMs - r.restoreStepMs - r.readyMs;
  return r[c];
}

function table(rows: Row[]): void {
  const fmt = (n: number, c: string) => (c === 'imageMiB' || c === 'hashedInDumpMiB' ? n.toFixed(1) : `${(n / 1000).toFixed(3)}s`);
  const widths = COLUMNS.map(([, h]) => Math.max(h.length, 9));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i] ?? 9)).join('  ');
  console.log(line(['cycle', ...COLUMNS.map(([, h]) => h)]));
  rows.forEach((r, i) => {
    console.log(line([String(i + 1), ...COLUMNS.map(([c]) => fmt(value(r, c), c))]));
  });
  console.log(line(['median', ...COLUMNS.map(([c]) => fmt(median(rows.map((r) => value(r, c))), c))]));
}

type History = Awaited<ReturnType<WorkflowHandle['fetchHistory']>>;

/** Where a workflow's time went between its steps: its workflow tasks, and the wait of its activities for a worker. */
function historyLatency(history: History): { workflowTaskMs: number; dispatchMs: number } {
  const at = (e: NonNullable<History['events']>[number]) => Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
  const scheduledAt = new Map<string, number>();
  let workflowTaskMs = 0;
  let dispatchMs = 0;
  let taskScheduledAt = 0;
  for (const e of history.events ?? []) {
    if (e.workflowTaskScheduledEventAttributes) taskScheduledAt = at(e);
    if (e.workflowTaskCompletedEventAttributes) workflowTaskMs += at(e) - taskScheduledAt;
    if (e.activityTaskScheduledEventAttributes) scheduledAt.set(String(e.eventId), at(e));
    const started = e.activityTaskStartedEventAttributes;
    if (started) dispatchMs += at(e) - (scheduledAt.get(String(started.scheduledEventId)) ?? at(e));
  }
  return { workflowTaskMs, dispatchMs };
}

/** Kills a restored tree and waits until its PID is free again (a local restore keeps the PID). */
async function stopRestored(pid: number): Promise<void> {
  process.kill(-pid, 'SIGKILL');
  for (let i = 0; i < 100 && (await readProcStat(pid)) !== null; i++) await sleep(50);
}

async function main(): Promise<void> {
  await rm(DIR, { recursive: true, force: true });
  await mkdir(DIR, { recursive: true });
  const stack = await startLocalStack({ storageRoot: path.join(DIR, 'storage') });
  const disk = await measureDisk(DIR, tableMb * 2 ** 20);
  const cold = await dropPageCache();
  const rows: Row[] = [];
  try {
    for (let i = 0; i < cycles; i++) {
      const statusFile = path.join(DIR, `status-${i}.json`);
      const target = { hash: `bench-${Date.now().toString(36)}-${i}`, node: stack.node, runtime: 'local' as const };
      let t = Date.now();
      const ckpt = await stack.torpor.checkpoint({ ...target, workload: sampleWorkload({ tableMb, initSeconds, statusFile }) });
      const checkpointWallMs = Date.now() - t;
      const latency = historyLatency(await stack.client.workflow.getHandle(`checkpoint/${target.hash}`).fetchHistory());
      await dropPageCache();
      t = Date.now();
      const restored = await stack.torpor.restore({ ...target, readiness: sampleRestoredProbe(statusFile) });
      const restoreWallMs = Date.now() - t;
      await stopRestored(restored.pid);
      const warm = await stack.torpor.restore({ ...target, readiness: sampleRestoredProbe(statusFile) });
      await stopRestored(warm.pid);
      const m = ckpt.manifest;
      rows.push({
        coldStartMs: m.timings.startToReadyMs,
        criuDumpMs: m.timings.dumpMs,
        commitMs: m.timings.commitMs,
        checkpointWallMs,
        imageMiB: m.totalBytes / 2 ** 20,
        hashedInDumpMiB: (m.timings.hashedWhileDumpingBytes ?? 0) / 2 ** 20,
        verifyMs: restored.stepMs.verifying ?? 0,
        restoreStepMs: restored.stepMs.restoring ?? 0,
        criuRestoreMs: restored.criuRestoreMs,
        readyMs: restored.stepMs['waiting-restored-ready'] ?? 0,
        restoreWallMs,
        warmCriuRestoreMs: warm.criuRestoreMs,
        ckptWorkflowTaskMs: latency.workflowTaskMs,
        ckptDispatchMs: latency.dispatchMs,
        exitWaitMs: ckpt.stepMs['waiting-exit'] ?? 0,
      });
      await rm(path.join(DIR, 'storage', target.hash), { recursive: true, force: true });
    }
  } finally {
    await stack.stop();
  }
  console.log(`\nTorpor checkpoint/restore cycles: sample app, ${tableMb} MiB table, ${initSeconds} s init, ${cycles} cycles`);
  console.log(
    'CRIU columns are CRIU alone; "orch." = workflow wall time minus the steps beside it (Temporal, scheduling, signal/exit wait);',
  );
  console.log(
    '"verify+CRIU" is the restore step (bytes verified while CRIU reads them); "warm CRIU" a second restore with the image cached.',
  );
  console.log(
    '"ckpt WFTs" and "ckpt dispatch": the checkpoint\'s workflow tasks and its activities\' wait for a worker (history times); "exit wait": the app\'s exit after the commit ended (the signal went out with the commit).',
  );
  console.log('"orch.-exit": "ckpt orch." less that exit wait, which is the app\'s own reaction (its poll of the signal file).');
  console.log(
    '"ckpt orch." = ckpt wall (client call to result) - cold start (start + ready steps) - CRIU dump - commit: the client round trip, the look-up, every workflow task and dispatch, the agent\'s lock, freeze check, dump bookkeeping (write-behind flush tail included), exit wait and clean-up.',
  );
  table(rows);
  bounds(rows, disk, cold);
}

function bounds(rows: Row[], disk: Awaited<ReturnType<typeof measureDisk>>, cold: boolean): void {
  const bytes = median(rows.map((r) => r.imageMiB)) * 2 ** 20;
  const gb = (n: number) => (n / 1e9).toFixed(2);
  const s = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
  const restoreBoundMs = 1.1 * (bytes / disk.readBytesPerS) * 1000 + 1000;
  const checkpointBoundMs = 1.1 * (bytes / disk.writeBytesPerS) * 1000 + 1000;
  const ckptAfterReady = median(rows.map((r) => r.checkpointWallMs - r.coldStartMs));
  const restoreWall = median(rows.map((r) => r.restoreWallMs));
  const warm = median(rows.map((r) => r.warmCriuRestoreMs));
  console.log(
    `\nstorage (dd, direct I/O, ${gb(disk.bytes)} GB): read ${gb(disk.readBytesPerS)} GB/s, write ${gb(disk.writeBytesPerS)} GB/s`,
  );
  console.log(`page cache dropped before each cold restore: ${cold ? 'yes' : 'no (the kernel refused)'}`);
  console.log(
    `restore wall (cold, median) ${s(restoreWall)} vs bound 1.1 × bytes/read + 1 s = ${s(restoreBoundMs)}: ${restoreWall <= restoreBoundMs ? 'within' : 'OVER'}`,
  );
  console.log(
    `checkpoint after ready (median) ${s(ckptAfterReady)} vs bound 1.1 × bytes/write + 1 s = ${s(checkpointBoundMs)}: ${ckptAfterReady <= checkpointBoundMs ? 'within' : 'OVER'}`,
  );
  console.log(`warm-cache CRIU restore (median) ${s(warm)}: ${gb(bytes / (warm / 1000))} GB/s effective`);
  console.log(`checkpoint orchestration (median) ${s(median(rows.map((r) => value(r, 'ckptOverhead'))))} (target 0.150 s)`);
  const lessExit = median(rows.map((r) => value(r, 'ckptOverheadLessExit')));
  console.log(`  without the app's exit after the commit (median) ${s(lessExit)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
