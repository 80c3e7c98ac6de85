import { readdir, readFile } from 'node:fs/promises';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckpointRequest } from '../../contract/spec.js';
import { createGate, type Gate, gateInterceptor } from '../support/fault-injection.js';
import { killCheckpointProcesses, processesOfCheckpoint } from '../support/leftovers.js';
import { testSample } from '../support/sample.js';
import { startTorpor, type TorporHarness } from '../support/torpor-harness.js';
import { expectWorldClean } from '../support/world.js';

const gates: Gate[] = [];
let h: TorporHarness;
const hashes: string[] = [];

beforeAll(async () => {
  h = await startTorpor({ agentInterceptors: [gateInterceptor(gates)] });
});
afterAll(async () => {
  for (const hash of hashes) await killCheckpointProcesses(hash);
  await h.stop();
});

function request(tableMb = 16): CheckpointRequest {
  const sample = testSample(h.storage);
  sample.workload.env = { ...sample.workload.env, SAMPLE_TABLE_MB: String(tableMb) };
  hashes.push(sample.hash);
  return { hash: sample.hash, node: h.node, runtime: 'local', workload: sample.workload };
}

async function expectCancelled(result: Promise<unknown>): Promise<void> {
  const err = await result.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
}

function holdAt(activity: string): Gate {
  const gate = createGate(activity, 'after');
  gates.splice(0, gates.length, gate);
  return gate;
}

describe('cancelling a checkpoint right after each step leaves the world as it was', () => {
  const steps: [string, 'absent' | 'committed'][] = [
    // The look-up and the start (patch local-start-with-look-up): one step.
    ['startUnlessCommitted', 'absent'],
    ['waitWorkloadReady', 'absent'],
    // Freeze check, dump, commit beside the signal, and the exit (patch local-checkpoint-in-one-step): one step.
    ['checkpointProcess', 'committed'],
  ];
  for (const [activity, checkpoint] of steps) {
    it(`after ${activity}: ${checkpoint === 'absent' ? 'no process, no dump, no checkpoint' : 'the committed checkpoint stays, nothing else'}`, async () => {
      const gate = holdAt(activity);
      const req = request();
      const handle = await h.torpor.startCheckpoint(req);
      await gate.reached;
      await handle.cancel();
      await expectCancelled(handle.result());
      await expectWorldClean(h.storage, req.hash, checkpoint);
    });
  }

  // The dump and the commit are one agent step (patch local-checkpoint-in-one-step), which learns of
  // the cancellation at its next heartbeat. CRIU is held stopped until the agent's kill reaches it, so
  // the cancellation always lands inside the dump: a step that let CRIU finish would commit.
  it('while CRIU is dumping a 512 MiB process: CRIU is stopped and the dump discarded', async () => {
    gates.splice(0);
    const req = request(512);
    const handle = await h.torpor.startCheckpoint(req);
    const criu = await criuDumpsIn(h.storage);
    for (const pid of criu) signalIfAlive(pid, 'SIGSTOP');
    try {
      await handle.cancel();
      // The agent signals the CRIU it started; helpers CRIU forked end with it.
      await untilKillPending(await rootsOf(criu));
    } finally {
      for (const pid of criu) signalIfAlive(pid, 'SIGCONT');
    }
    await expectCancelled(handle.result());
    await expectWorldClean(h.storage, req.hash, 'absent');
  });
});

/**
 * The CRIU dump processes writing under `storage`, once there are some. The agent runs in this
 * process, so CRIU is a child of it: reading only our children is quick enough to catch a short dump.
 */
async function criuDumpsIn(storage: string): Promise<number[]> {
  for (;;) {
    const pids: number[] = [];
    for (const pid of await childrenOf(process.pid)) {
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
      if (argv.some((a) => a.endsWith('criu')) && argv.includes('dump') && argv.some((a) => a.includes(storage))) pids.push(pid);
    }
    if (pids.length > 0) return pids;
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function childrenOf(pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`);
  const lists = await Promise.all(tasks.map((t) => readFile(`/proc/${pid}/task/${t}/children`, 'utf8').catch(() => '')));
  return lists.flatMap((l) => l.split(' ').filter(Boolean).map(Number));
}

/** The processes of `pids` whose parent is not one of them. */
async function rootsOf(pids: number[]): Promise<number[]> {
  const parent = async (pid: number) => {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  };
  const parents = await Promise.all(pids.map(parent));
  return pids.filter((_, i) => !pids.includes(parents[i] as number));
}

/** Until every stopped process has SIGTERM or SIGKILL pending, or is gone (the agent's cancellation reached CRIU). */
async function untilKillPending(pids: number[]): Promise<void> {
  const killBits = (1n << 14n) | (1n << 8n); // SIGTERM (15), SIGKILL (9): bit n-1 of the pending masks
  const pending = async (pid: number) => {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => null);
    if (status === null || /^State:\s+Z/m.test(status)) return true;
    const masks = [...status.matchAll(/^(?:SigPnd|ShdPnd):\s+([0-9a-f]+)$/gm)].map((m) => BigInt(`0x${m[1]}`));
    return masks.some((m) => (m & killBits) !== 0n);
  };
  while (!(await Promise.all(pids.map(pending))).every(Boolean)) await new Promise((r) => setTimeout(r, 50));
}

function signalIfAlive(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
}

describe('cancelling a restore right after each step leaves no restored process and the checkpoint intact', () => {
  let hash: string;
  beforeAll(async () => {
    gates.splice(0);
    const req = request();
    hash = req.hash;
    await h.torpor.checkpoint(req);
  });

  for (const activity of ['verifyCheckpoint', 'restoreCheckpoint', 'waitRestoredReady']) {
    it(`after ${activity}`, async () => {
      const gate = holdAt(activity);
      const handle = await h.torpor.startRestore({ hash, node: h.node, runtime: 'local' });
      await gate.reached;
      await handle.cancel();
      await expectCancelled(handle.result());
      expect(await processesOfCheckpoint(hash)).toEqual([]);
      await expectWorldClean(h.storage, hash, 'committed');
    });
  }

  it('and a restore after all those cancellations still succeeds', async () => {
    gates.splice(0);
    const restored = await h.torpor.restore({ hash, node: h.node, runtime: 'local' });
    expect(await processesOfCheckpoint(hash)).toEqual([restored.pid]);
  });
});
