import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeActivities, type NodeActivities } from '../../activities/node/index.js';
import { identify } from '../../activities/node/proc/identity.js';
import { writeRecord } from '../../activities/node/store/run-records.js';
import { testAgentConfig } from '../support/agent-config.js';

// The privileged agent checks every target itself, whatever a workflow (or anyone able to
// schedule activities on its queue) sends it: these call its real activities directly.
let root: string;
let agent: NodeActivities;
const env = new MockActivityEnvironment();

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'torpor-agent-'));
  agent = createNodeActivities(testAgentConfig(root));
});
afterAll(() => rm(root, { recursive: true, force: true }));

const refused = async (run: Promise<unknown>, type = 'TargetNotAllowed') => {
  const err = await run.then(
    () => null,
    (e: unknown) => e as { type?: string; nonRetryable?: boolean; message: string },
  );
  expect(err?.type).toBe(type);
  expect(err?.nonRetryable).toBe(true);
  return err?.message ?? '';
};

describe('the node agent refuses targets it cannot vouch for', () => {
  it.each(['../../etc', '/etc', 'a/../../b', '.tmp', ''])('refuses the hash %j in every path-taking activity', async (hash) => {
    await refused(env.run(agent.commitCheckpoint, { hash, dumpId: `${hash}.1`, startToReadyMs: 0, dumpMs: 0, gpu: null }));
    await refused(env.run(agent.verifyCheckpoint, { hash }));
    await refused(env.run(agent.findCheckpoint, { hash }));
    await refused(env.run(agent.restoreCheckpoint, { hash, restoreId: 'r1' }));
  });

  it('refuses a restore id with path syntax and a dump id of another checkpoint', async () => {
    await refused(env.run(agent.restoreCheckpoint, { hash: 'h1', restoreId: '../../x' }));
    await refused(env.run(agent.discardDump, { hash: 'h1', dumpId: 'h2.abc' }));
    await refused(env.run(agent.dumpWorkload, { hash: 'h1', dumpId: 'h1./../../x' }));
  });

  it('refuses to dump or wait for a workload it did not start', async () => {
    const message = await refused(env.run(agent.dumpWorkload, { hash: 'never-started', dumpId: 'never-started.1' }));
    expect(message).toContain('was started by this agent');
    await refused(env.run(agent.waitWorkloadReady, { hash: 'never-started', timeoutMs: 1000 }));
    await refused(env.run(agent.signalWorkload, { hash: 'never-started' }));
  });

  it('refuses to dump a process that is not the workload of that hash, even if its record names it', async () => {
    // A record pointing at this test process (alive, but without DYN_CHECKPOINT_HASH=forged).
    const self = await identify(process.pid);
    await mkdir(path.join(root, '.runs', 'forged'), { recursive: true });
    await writeRecord(path.join(root, '.runs', 'forged', 'workload.json'), {
      ...self,
      hash: 'forged',
      runId: 'x',
      workload: { command: ['x'], env: {} },
      contract: {},
    });
    const message = await refused(env.run(agent.dumpWorkload, { hash: 'forged', dumpId: 'forged.1' }));
    expect(message).toContain(`Process ${process.pid} is not the workload of checkpoint forged`);
  });

  it('refuses a network policy it does not know, whatever the workflow validated', async () => {
    const message = await refused(
      env.run(agent.dumpWorkload, { hash: 'never-started', dumpId: 'never-started.1', established: 'repair-everything' as 'keep' }),
      'InvalidSpec',
    );
    expect(message).toContain('network.established must be "close" or "keep"');
  });

  it('refuses an HTTP readiness probe aimed anywhere but its own loopback', async () => {
    const probe = { kind: 'http', port: 80, path: '/', host: '169.254.169.254' } as const;
    const message = await refused(
      env.run(agent.waitRestoredReady, { hash: 'h1', restoreId: 'r1', readiness: probe as never, timeoutMs: 1000 }),
      'InvalidSpec',
    );
    expect(message).toContain('host must be 127.0.0.1, ::1 or localhost');
  });

  it('treats stopping something already gone as success, not as an error', async () => {
    expect(await env.run(agent.stopWorkload, { hash: 'never-started' })).toEqual({ stopped: false });
    expect(await env.run(agent.stopRestored, { hash: 'never-started', restoreId: 'r1' })).toEqual({ stopped: false });
    await env.run(agent.discardDump, { hash: 'never-started', dumpId: 'never-started.1' });
  });
});
