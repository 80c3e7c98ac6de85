import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { CheckpointRequest } from '../../contract/spec.js';
import { readSampleStatus, sampleRestoredProbe } from '../../sample-app/workload.js';
import { exists, killCheckpointProcesses, processesOfCheckpoint } from '../support/leftovers.js';
import { testSample } from '../support/sample.js';
import { startTorpor, type TorporHarness } from '../support/torpor-harness.js';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process.js';
import { expectWorldClean } from '../support/world.js';

// The node agent runs in its own process and is SIGKILLed at a kill point; a fresh agent takes
// over. The workflow must complete, with a checkpoint that restores to the same memory.
let h: TorporHarness;
const hashes: string[] = [];
const agents: WorkerProcess[] = [];

beforeAll(async () => {
  h = await startTorpor({ noAgent: true });
});
afterAll(async () => {
  for (const a of agents) await a.kill();
  for (const hash of hashes) await killCheckpointProcesses(hash);
  await h.stop();
});

function agentEnv(killAt?: string): Record<string, string> {
  return {
    TORPOR_ROLE: 'agent',
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    NODE_NAME: h.node,
    TORPOR_STORAGE_ROOT: h.storage,
    ...(killAt ? { TORPOR_KILL_AT: killAt, TORPOR_KILL_MARKER: path.join(h.storage, `kill-${killAt.replaceAll(':', '-')}`) } : {}),
  };
}

async function agent(killAt?: string): Promise<WorkerProcess> {
  const a = await startWorkerProcess(agentEnv(killAt));
  agents.push(a);
  return a;
}

function request(tableMb: number): CheckpointRequest {
  const sample = testSample(h.storage, { SAMPLE_TABLE_MB: String(tableMb) });
  hashes.push(sample.hash);
  return { hash: sample.hash, node: h.node, runtime: 'local', workload: sample.workload };
}

/** The agent dies at `killAt` while `run` is in flight; a second agent is started right after. */
async function survivingAgentDeath<T>(killAt: string, run: () => Promise<T>): Promise<T> {
  const first = await agent(killAt);
  const result = run();
  result.catch(() => undefined);
  expect(await first.exited).toBeNull(); // killed by a signal, not exited
  const second = await agent(killAt);
  try {
    return await result;
  } finally {
    await second.kill();
  }
}

async function restoreAndCompare(req: CheckpointRequest, statusFile: string, checksum: string, instance: string) {
  const a = await agent();
  try {
    const restored = await h.torpor.restore({ hash: req.hash, node: h.node, runtime: 'local', readiness: sampleRestoredProbe(statusFile) });
    const status = await readSampleStatus(statusFile);
    expect(status.checksum).toBe(checksum);
    expect(status.instance).toBe(instance);
    process.kill(-restored.pid, 'SIGKILL');
  } finally {
    await a.kill();
  }
}

describe('the node agent killed during a checkpoint', () => {
  const killPoints: [string, number][] = [
    ['after:startUnlessCommitted', 16],
    ['during:waitWorkloadReady:300', 16],
    // One agent step from the freeze to the exit (patch local-checkpoint-in-one-step): killed in the
    // dump, later in it (the commit or the exit wait, at this machine's speed), and once it ended.
    ['during:checkpointProcess:300', 512],
    ['during:checkpointProcess:1200', 512],
    ['after:checkpointProcess', 16],
  ];
  for (const [killAt, tableMb] of killPoints) {
    it(`${killAt}: the workflow completes and the checkpoint restores to the same memory`, async () => {
      const req = request(tableMb);
      const statusFile = req.workload.env?.SAMPLE_STATUS_FILE as string;
      const result = await survivingAgentDeath(killAt, () => h.torpor.checkpoint(req));
      expect(result.outcome).toBe('created');
      const atCheckpoint = await readSampleStatus(statusFile);
      await expectWorldClean(h.storage, req.hash, 'committed');
      await restoreAndCompare(req, statusFile, atCheckpoint.checksum, atCheckpoint.instance);
    });
  }
});

describe('the node agent killed during a restore', () => {
  const killPoints = ['during:verifyCheckpoint:100', 'after:restoreCheckpoint', 'after:waitRestoredReady'];
  for (const killAt of killPoints) {
    it(`${killAt}: the workflow completes with one restored process of the same memory`, async () => {
      const req = request(64);
      const statusFile = req.workload.env?.SAMPLE_STATUS_FILE as string;
      const setup = await agent();
      await h.torpor.checkpoint(req);
      await setup.kill();
      const atCheckpoint = await readSampleStatus(statusFile);
      const restored = await survivingAgentDeath(killAt, () =>
        h.torpor.restore({ hash: req.hash, node: h.node, runtime: 'local', readiness: sampleRestoredProbe(statusFile) }),
      );
      expect(await processesOfCheckpoint(req.hash)).toEqual([restored.pid]);
      const status = await readSampleStatus(statusFile);
      expect([status.checksum, status.instance]).toEqual([atCheckpoint.checksum, atCheckpoint.instance]);
      process.kill(-restored.pid, 'SIGKILL');
    });
  }
});

describe('the control worker killed mid-workflow', () => {
  it('a new control worker replays the workflow and finishes the checkpoint', async () => {
    const a = await agent();
    const control = await startWorkerProcess({
      TORPOR_ROLE: 'control',
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TORPOR_WORKFLOW_BUNDLE: inject('workflowBundlePath'),
    });
    try {
      // The in-process control worker of the harness is stopped, so only the spawned one runs workflows.
      await h.stopControl();
      const req = request(16);
      req.workload.env = { ...req.workload.env, SAMPLE_INIT_SECONDS: '3' };
      const handle = await h.torpor.startCheckpoint(req);
      while ((await h.torpor.progress(handle.workflowId)).phase !== 'waiting-ready') await new Promise((r) => setTimeout(r, 100));
      await control.kill();
      const second = await startWorkerProcess({
        TORPOR_ROLE: 'control',
        TEMPORAL_ADDRESS: inject('temporalAddress'),
        TORPOR_WORKFLOW_BUNDLE: inject('workflowBundlePath'),
      });
      agents.push(second);
      expect((await handle.result()).outcome).toBe('created');
      expect(await exists(path.join(h.storage, req.hash, 'checkpoint.done'))).toBe(true);
    } finally {
      await control.kill();
      await a.kill();
    }
  });
});
