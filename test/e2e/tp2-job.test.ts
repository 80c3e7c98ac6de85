import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EstablishedPolicy } from '../../contract/network.js';
import { killCheckpointProcesses } from '../support/leftovers.js';
import { startTorpor, type TorporHarness } from '../support/torpor-harness.js';

// Real Temporal, real CRIU, real processes: bench/gpu/tp2/'s TP=2 job (a launcher and 2 ranks) with
// the ranks' GPU-less stand-in, whose "communicator" has NCCL's socket shape (a listener per rank,
// the accepted and the outgoing connection between them). The GPU runs: bench/gpu/RESULTS.md.
const TP2_DIR = path.resolve('bench/gpu/tp2');

interface RankReport {
  pid: number;
  ok: boolean;
  error?: string;
  all_reduce_value?: number;
  sockets_at_ready?: { total: number };
  /** The FileStore path the launcher sent this rank after the restore marker. */
  rendezvous?: string;
}
interface Tp2Report {
  launcher_pid: number;
  ranks: RankReport[];
}

let h: TorporHarness;
const hashes: string[] = [];
beforeAll(async () => {
  h = await startTorpor();
});
afterAll(async () => {
  for (const hash of hashes) await killCheckpointProcesses(hash);
  await h.stop();
});

/** A results directory the workload's user (nobody) may write, as /tmp is. */
function outputDir(): string {
  const dir = path.join(os.tmpdir(), 'torpor-tp2', randomBytes(4).toString('hex'));
  mkdirSync(dir, { recursive: true });
  chmodSync(path.dirname(dir), 0o1777);
  chmodSync(dir, 0o1777);
  return dir;
}

async function checkpointTp2(mode: 'cooperative' | 'transparent', established: EstablishedPolicy) {
  const out = outputDir();
  const hash = `tp2-${randomBytes(5).toString('hex')}`;
  hashes.push(hash);
  await h.torpor.checkpoint({
    hash,
    node: h.node,
    runtime: 'local',
    workload: {
      command: ['python3', '-u', path.join(TP2_DIR, 'tp2_launcher.py')],
      cwd: TP2_DIR,
      env: { BENCH_OUTPUT_DIR: out, BENCH_TP2_RANK: 'tp2_rank_dry.py', BENCH_TP2_MODE: mode, BENCH_TP2_AFTER_TIMEOUT_S: '30' },
    },
    network: { established },
  });
  const before = JSON.parse(readFileSync(path.join(out, 'tp2-before.json'), 'utf8')) as Tp2Report;
  return { hash, out, before };
}

/** CRIU restores the dumped PIDs: wait until this machine's PID 1 has reaped the original's (it takes a few seconds here). */
async function waitReaped(report: Tp2Report): Promise<void> {
  const pids = [report.launcher_pid, ...report.ranks.map((r) => r.pid)];
  for (let i = 0; i < 300 && pids.some((pid) => existsSync(`/proc/${pid}`)); i++) await sleep(100);
}

async function restoreAndReadAfter(hash: string, out: string, before: Tp2Report): Promise<Tp2Report> {
  const after = path.join(out, 'tp2-after.json');
  rmSync(after, { force: true });
  await waitReaped(before);
  const restored = await h.torpor.restore({ hash, node: h.node, runtime: 'local' });
  try {
    for (let i = 0; i < 300 && !existsSync(after); i++) await sleep(100);
    return JSON.parse(readFileSync(after, 'utf8')) as Tp2Report;
  } finally {
    process.kill(-restored.pid, 'SIGKILL');
  }
}

const allReduced = (report: Tp2Report) => report.ranks.map((r) => [r.ok, r.all_reduce_value, r.error]);

describe('a TP=2 job (launcher + 2 ranks joined over TCP) through the workflows, local runtime', () => {
  it('cooperative contract: ranks close their communicator before ready, re-join after each restore and all-reduce again', async () => {
    const { hash, out, before } = await checkpointTp2('cooperative', 'close');
    expect(before.ranks.map((r) => r.sockets_at_ready?.total)).toEqual([0, 0]);
    const first = await restoreAndReadAfter(hash, out, before);
    expect(allReduced(first)).toEqual([
      [true, 3, undefined],
      [true, 3, undefined],
    ]);
    // A second restore of the same checkpoint re-joins through a rendezvous nothing used before.
    const second = await restoreAndReadAfter(hash, out, before);
    expect(allReduced(second)).toEqual([
      [true, 3, undefined],
      [true, 3, undefined],
    ]);
    const rendezvous = (report: Tp2Report) => new Set(report.ranks.map((r) => r.rendezvous));
    expect(rendezvous(first).size).toBe(1);
    expect(rendezvous(second).size).toBe(1);
    expect([...rendezvous(second)]).not.toEqual([...rendezvous(first)]);
  });

  it('kept communicators handed over with established "keep": the restored ranks all-reduce over their restored connections', async () => {
    const { hash, out, before } = await checkpointTp2('transparent', 'keep');
    expect(allReduced(await restoreAndReadAfter(hash, out, before))).toEqual([
      [true, 3, undefined],
      [true, 3, undefined],
    ]);
  });
});
