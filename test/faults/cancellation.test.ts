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
    ['findCheckpoint', 'absent'],
    ['startWorkload', 'absent'],
    ['waitWorkloadReady', 'absent'],
    ['dumpWorkload', 'absent'],
    ['commitCheckpoint', 'committed'],
    ['signalWorkload', 'committed'],
    ['waitWorkloadExit', 'committed'],
  ];
  for (const [activity, checkpoint] of steps) {
    it(`after ${activity}: ${checkpoint === 'absent' ? 'no process, no dump, no checkpoint' : 'the committed checkpoint stays, nothing else'}`, async () => {
      const gate = holdAt(activity);
      const req = request();
      const handle = await h.torpor.startCheckpoint(req);
      await gate.reached;
      await handle.cancel();
      // A commit beside the app's exit is not cancelled (the app was told to exit): it ends, as a real one does.
      if (activity === 'commitCheckpoint') gate.release();
      await expectCancelled(handle.result());
      await expectWorldClean(h.storage, req.hash, checkpoint);
    });
  }

  it('while CRIU is dumping a 512 MiB process: CRIU is stopped and the dump discarded', async () => {
    gates.splice(0);
    const req = request(512);
    const handle = await h.torpor.startCheckpoint(req);
    while ((await h.torpor.progress(handle.workflowId)).phase !== 'dumping') await new Promise((r) => setTimeout(r, 50));
    await handle.cancel();
    await expectCancelled(handle.result());
    await expectWorldClean(h.storage, req.hash, 'absent');
  });
});

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
