/**
 * N checkpoint + restore cycles of the sample app through the real workflows on this machine.
 * Prints, per cycle, what CRIU alone took beside what the workflow took end to end, so the
 * difference (orchestration: Temporal round trips, scheduling, readiness polling) is visible.
 *   BENCH_CYCLES (5), BENCH_TABLE_MB (256), BENCH_INIT_SECONDS (3)
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalStack } from '../dev/local-stack.js';
import { sampleRestoredProbe, sampleWorkload } from '../sample-app/workload.js';

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
  verifyMs: number;
  criuRestoreMs: number;
  readyMs: number;
  restoreWallMs: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

function table(rows: Row[]): void {
  const cols: [keyof Row | 'ckptOverhead' | 'restoreOverhead', string][] = [
    ['coldStartMs', 'cold start'],
    ['criuDumpMs', 'CRIU dump'],
    ['commitMs', 'commit'],
    ['checkpointWallMs', 'ckpt wall'],
    ['ckptOverhead', 'ckpt orch.'],
    ['imageMiB', 'image MiB'],
    ['verifyMs', 'verify'],
    ['criuRestoreMs', 'CRIU restore'],
    ['readyMs', 'ready probe'],
    ['restoreWallMs', 'restore wall'],
    ['restoreOverhead', 'restore orch.'],
  ];
  const value = (r: Row, c: (typeof cols)[number][0]): number =>
    c === 'ckptOverhead'
      ? r.checkpointWallMs - r.coldStartMs - r.criuDumpMs - r.commitMs
      : c === 'restoreOverhead'
        ? r.restoreWallMs - r.verifyMs - r.criuRestoreMs - r.readyMs
        : r[c];
  const fmt = (n: number, c: string) => (c === 'imageMiB' ? n.toFixed(1) : `${(n / 1000).toFixed(3)}s`);
  const widths = cols.map(([, h]) => Math.max(h.length, 9));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i] ?? 9)).join('  ');
  console.log(line(['cycle', ...cols.map(([, h]) => h)].slice(0, cols.length + 1)));
  rows.forEach((r, i) => {
    console.log(line([String(i + 1), ...cols.map(([c]) => fmt(value(r, c), c))]));
  });
  console.log(line(['median', ...cols.map(([c]) => fmt(median(rows.map((r) => value(r, c))), c))]));
}

async function main(): Promise<void> {
  await rm(DIR, { recursive: true, force: true });
  await mkdir(DIR, { recursive: true });
  const stack = await startLocalStack({ storageRoot: path.join(DIR, 'storage') });
  const rows: Row[] = [];
  try {
    for (let i = 0; i < cycles; i++) {
      const statusFile = path.join(DIR, `status-${i}.json`);
      const target = { hash: `bench-${Date.now().toString(36)}-${i}`, node: stack.node, runtime: 'local' as const };
      let t = Date.now();
      const ckpt = await stack.torpor.checkpoint({ ...target, workload: sampleWorkload({ tableMb, initSeconds, statusFile }) });
      const checkpointWallMs = Date.now() - t;
      t = Date.now();
      const restored = await stack.torpor.restore({ ...target, readiness: sampleRestoredProbe(statusFile) });
      const restoreWallMs = Date.now() - t;
      process.kill(-restored.pid, 'SIGKILL');
      const m = ckpt.manifest;
      rows.push({
        coldStartMs: m.timings.startToReadyMs,
        criuDumpMs: m.timings.dumpMs,
        commitMs: m.timings.commitMs,
        checkpointWallMs,
        imageMiB: m.totalBytes / 2 ** 20,
        verifyMs: restored.stepMs.verifying ?? 0,
        criuRestoreMs: restored.criuRestoreMs,
        readyMs: restored.stepMs['waiting-restored-ready'] ?? 0,
        restoreWallMs,
      });
      await rm(path.join(DIR, 'storage', target.hash), { recursive: true, force: true });
    }
  } finally {
    await stack.stop();
  }
  console.log(`\nTorpor checkpoint/restore cycles: sample app, ${tableMb} MiB table, ${initSeconds} s init, ${cycles} cycles`);
  console.log(
    'CRIU columns are CRIU alone; "orch." = workflow wall time minus the steps beside it (Temporal, scheduling, signal/exit wait).',
  );
  table(rows);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
