import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeActivities, type NodeActivities } from '../../activities/node/index.js';
import { StoreLayout } from '../../activities/node/store/layout.js';
import { readRecord } from '../../activities/node/store/run-records.js';
import { testAgentConfig } from '../support/agent-config.js';
import { killCheckpointProcesses, processesOfCheckpoint, temporaryDumps } from '../support/leftovers.js';
import { testSample } from '../support/sample.js';

// Real CRIU on a real sample app; the merged activity is called directly, as Temporal would call it
// again after an agent crash (it runs every activity at least once).
let root: string;
let agent: NodeActivities;
let layout: StoreLayout;
const env = new MockActivityEnvironment();
const hashes: string[] = [];
/** `env.run` with the activity's own result type. */
const run = <I, R>(activity: (input: I) => Promise<R>, input: I) => env.run(activity, input) as Promise<R>;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'torpor-one-step-'));
  agent = createNodeActivities(testAgentConfig(root));
  layout = new StoreLayout(root);
});
afterAll(async () => {
  for (const hash of hashes) await killCheckpointProcesses(hash);
  await rm(root, { recursive: true, force: true });
});

async function readyWorkload(): Promise<string> {
  const sample = testSample(root);
  hashes.push(sample.hash);
  await env.run(agent.startWorkload, { hash: sample.hash, workload: sample.workload });
  await env.run(agent.waitWorkloadReady, { hash: sample.hash, timeoutMs: 30_000 });
  return sample.hash;
}

const input = (hash: string) => ({ hash, dumpId: `${hash}.a1b2c3d4`, startToReadyMs: 1, lockTimeoutMs: 5_000 });

describe('a local checkpoint after ready as one agent step (checkpointProcess)', () => {
  it('freezes (none without CUDA), dumps, commits, signals, sees the exit and cleans up, reporting each step', async () => {
    const hash = await readyWorkload();
    const done = await run(agent.checkpointProcess, input(hash));
    expect(done.manifest.hash).toBe(hash);
    expect(done.manifest.gpu).toBeNull();
    expect(done.signalled).toBe(true);
    expect(done.finished?.exited).toBe(true);
    expect(Object.keys(done.stepMs).sort()).toEqual(['committing', 'dumping', 'freezing-gpu', 'signalling', 'waiting-exit']);
    expect(await processesOfCheckpoint(hash)).toEqual([]);
    expect(await readRecord(layout.workloadRecord(hash))).toBeNull();
    expect(await temporaryDumps(root)).toEqual([]);

    // Run again after it all finished (a crash before Temporal heard of it): the same checkpoint, nothing dumped.
    const again = await run(agent.checkpointProcess, input(hash));
    expect(again.manifest).toEqual(done.manifest);
    expect(again.finished?.exited).toBe(false);
  });

  it('run again after an attempt that finished the dump: commits that dump instead of dumping again', async () => {
    const hash = await readyWorkload();
    const firstDump = await run(agent.dumpWorkload, { hash, dumpId: input(hash).dumpId });
    // A witness in the finished dump: a second dump would start from an empty directory.
    await writeFile(path.join(layout.dumpFiles(hash, input(hash).dumpId).imagesDir, 'witness'), 'first attempt');
    const done = await run(agent.checkpointProcess, input(hash));
    expect(done.manifest.files.map((f) => f.path)).toContain('images/witness');
    expect(done.manifest.timings.dumpMs).toBe(firstDump.criuMs);
    expect(done.finished?.exited).toBe(true);
  });

  it('refuses a workload this agent did not start, with nothing written', async () => {
    const err = await run(agent.checkpointProcess, input('never-started')).then(
      () => null,
      (e: unknown) => e as { type?: string; nonRetryable?: boolean },
    );
    expect(err?.type).toBe('TargetNotAllowed');
    expect(err?.nonRetryable).toBe(true);
    expect(await temporaryDumps(root)).toEqual([]);
  });
});

describe('the look-up and the start of a local checkpoint as one agent step (startUnlessCommitted)', () => {
  it('starts the workload once (run again, it adopts the same process); once committed, returns the checkpoint and starts nothing', async () => {
    const sample = testSample(root);
    hashes.push(sample.hash);
    const start = { hash: sample.hash, workload: sample.workload };
    const first = await run(agent.startUnlessCommitted, start);
    expect(first.existing).toBeNull();
    // Once ready: a python3 shim forks helpers before it execs the app.
    await env.run(agent.waitWorkloadReady, { hash: sample.hash, timeoutMs: 30_000 });
    const [pid] = await processesOfCheckpoint(sample.hash);
    expect((await run(agent.startUnlessCommitted, start)).existing).toBeNull();
    expect(await processesOfCheckpoint(sample.hash)).toEqual([pid]);
    const done = await run(agent.checkpointProcess, input(sample.hash));
    const again = await run(agent.startUnlessCommitted, start);
    expect(again.existing).toEqual(done.manifest);
    expect(await processesOfCheckpoint(sample.hash)).toEqual([]);
    expect(await readRecord(layout.workloadRecord(sample.hash))).toBeNull();
  });
});
