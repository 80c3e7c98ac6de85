import { spawn } from 'node:child_process';
import { mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isRunning, parseProcStat } from '../../activities/node/proc/identity.js';
import { TorporError } from '../../client/index.js';
import { exists } from '../support/leftovers.js';
import { testSample } from '../support/sample.js';
import { useTorpor } from '../support/torpor-harness.js';

describe('the typed client: spec hash, refresh joining an in-flight checkpoint, inspect/delete failures, gc (real Temporal, real CRIU)', () => {
  const { h, hashes } = useTorpor();
  const name = `client-${Date.now().toString(36)}`;

  it('derives the same spec hash for the same spec, whatever the key order, and another one for another env', async () => {
    const { workload } = testSample(h.storage);
    const request = { name, node: h.node, runtime: 'local' as const, workload, hashEnv: ['SAMPLE_TABLE_MB', 'SAMPLE_INIT_SECONDS'] };
    const first = await h.torpor.deriveSpecHash(request);
    const reordered = await h.torpor.deriveSpecHash({
      hashEnv: ['SAMPLE_INIT_SECONDS', 'SAMPLE_TABLE_MB'],
      workload: { env: Object.fromEntries(Object.entries(workload.env).reverse()), cwd: workload.cwd, command: workload.command },
      runtime: 'local',
      node: h.node,
      name,
    });
    expect(reordered.hash).toBe(first.hash);
    // The names that counted, never their values: the result lands in workflow history.
    expect(first.inputs.env).toEqual({ SAMPLE_TABLE_MB: '<redacted>', SAMPLE_INIT_SECONDS: '<redacted>' });
    expect(first.inputs.files.map((f) => path.basename(f.path))).toContain('app.py');
    expect(first.inputs.criuVersion).toMatch(/^4\./);
    const other = await h.torpor.deriveSpecHash({ ...request, workload: { ...workload, env: { ...workload.env, SAMPLE_TABLE_MB: '17' } } });
    expect(other.hash).not.toBe(first.hash);
  });

  it('a refresh that meets an in-flight checkpoint of its hash joins it instead of dumping twice', async () => {
    const sample = testSample(h.storage, { SAMPLE_INIT_SECONDS: '4' });
    const request = { name, node: h.node, runtime: 'local' as const, workload: sample.workload, hashEnv: ['SAMPLE_INIT_SECONDS'], keep: 5 };
    const { hash } = await h.torpor.deriveSpecHash(request);
    hashes.push(hash);
    const inFlight = await h.torpor.startCheckpoint({ hash, node: h.node, runtime: 'local', workload: sample.workload });
    const refreshed = await h.torpor.refresh(request);
    expect(refreshed).toMatchObject({ hash, outcome: 'joined', checkpointWorkflowId: `checkpoint/${hash}` });
    expect((await inFlight.result()).outcome).toBe('created');
    const history = await h.client.workflow.getHandle(`checkpoint/${hash}`).fetchHistory();
    const dumps = (history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'checkpointProcess');
    expect(dumps).toHaveLength(1);
    expect(refreshed.retention.kept).toEqual([hash]);
  });

  it('inspect and delete of an unknown hash fail with CheckpointNotFound; bad input with InvalidSpec before any workflow', async () => {
    const notFound = await h.torpor.getCheckpoint('never-made', h.node).catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(TorporError);
    expect(notFound).toMatchObject({ type: 'CheckpointNotFound', message: expect.stringMatching(/No committed checkpoint never-made/) });
    await expect(h.torpor.deleteCheckpoint('never-made', h.node)).rejects.toMatchObject({ type: 'CheckpointNotFound' });
    await expect(h.torpor.deleteCheckpoint('../../etc', h.node)).rejects.toMatchObject({ type: 'InvalidSpec', workflowId: undefined });
    await expect(h.torpor.listCheckpoints({ node: 'Not A Node' })).rejects.toMatchObject({ type: 'InvalidSpec' });
    await expect(
      h.torpor.refresh({ name: 'BAD NAME', node: h.node, runtime: 'local', workload: { command: ['x'] } }),
    ).rejects.toMatchObject({
      type: 'InvalidSpec',
    });
  });

  it('lists with a name filter, and a node nobody serves fails with AgentUnavailable', async () => {
    const listed = await h.torpor.listCheckpoints({ node: h.node, name });
    expect(listed.map((c) => c.hash)).toEqual(hashes);
    expect(await h.torpor.listCheckpoints({ node: h.node, name: 'nobody' })).toEqual([]);
    await expect(h.torpor.listCheckpoints({ node: 'no-agent-here' }, { agentTimeoutMs: 1000 })).rejects.toMatchObject({
      type: 'AgentUnavailable',
    });
  });

  it('gc stops a checkpoint workload a vanished agent left running, keeps a fresh temporary dump, and applies retention per name', async () => {
    const stray = 'stray-workload';
    // A workload carries its hash in its environment; GC signals nothing else (security review M7).
    const child = spawn('sleep', ['300'], { detached: true, stdio: 'ignore', env: { ...process.env, DYN_CHECKPOINT_HASH: stray } });
    child.unref();
    const pid = child.pid as number;
    const startTime = parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8')).startTime;
    const runDir = path.join(h.storage, '.runs', stray);
    await mkdir(runDir, { recursive: true });
    const record = path.join(runDir, 'workload.json');
    await writeFile(record, JSON.stringify({ pid, startTime, hash: stray, runId: 'gone', workload: { command: ['sleep'], env: {} } }));
    const old = new Date(Date.now() - 2 * 3_600_000);
    await utimes(record, old, old);
    await mkdir(path.join(h.storage, '.tmp', `${stray}.fresh`), { recursive: true });

    const result = await h.torpor.gc({ node: h.node, runMaxAgeMs: 3_600_000, keepPerName: 1 });
    expect(result.stoppedWorkloads).toEqual([stray]);
    expect(result.removed).toContain(`.runs/${stray}`);
    expect(await isRunning({ pid, startTime })).toBe(false);
    // A fresh temporary dump may belong to a running checkpoint: younger than tmpMaxAgeMs, it stays.
    expect(await exists(path.join(h.storage, '.tmp', `${stray}.fresh`))).toBe(true);
    expect(result.retention).toEqual([{ name, keep: 1, kept: hashes, deleted: [], inUse: [] }]);
  });
});
