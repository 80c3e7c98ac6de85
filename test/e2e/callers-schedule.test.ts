import { randomBytes } from 'node:crypto';
import { appendFile, copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TorporError } from '../../client/index.js';
import type { WorkloadSpec } from '../../contract/spec.js';
import type { RefreshResult } from '../../contract/types.js';
import { SAMPLE_APP, sampleRestoredProbe } from '../../sample-app/workload.js';
import { exists, killCheckpointProcesses, processesOfCheckpoint } from '../support/leftovers.js';
import { startTorpor, type TorporHarness } from '../support/torpor-harness.js';

const HOUR_MS = 3_600_000;

/** Child workflows a refresh started, from its history. */
async function childWorkflowsOf(h: TorporHarness, workflowId: string, runId: string): Promise<string[]> {
  const history = await h.client.workflow.getHandle(workflowId, runId).fetchHistory();
  return (history.events ?? []).flatMap((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId ?? []);
}

describe('refresh schedules: a Temporal Schedule keeps a checkpoint fresh and applies retention (real Temporal, real CRIU)', () => {
  let h: TorporHarness;
  let appDir: string;
  let app: string;
  let workload: WorkloadSpec;
  const name = `sched-${randomBytes(3).toString('hex')}`;
  const hashes: string[] = [];
  let statusFile: string;

  async function triggerAndWait(): Promise<{ result: RefreshResult; workflowId: string; runId: string }> {
    const triggered = await h.torpor.triggerRefreshSchedule(name, h.node);
    if (triggered.skipped) throw new Error('trigger was skipped');
    const result = await h.torpor.refreshResult(triggered.workflowId, triggered.runId);
    if (!hashes.includes(result.hash)) hashes.push(result.hash);
    return { result, workflowId: triggered.workflowId, runId: triggered.runId };
  }

  beforeAll(async () => {
    h = await startTorpor();
    appDir = await mkdtemp(path.join(os.tmpdir(), 'torpor-app-'));
    app = path.join(appDir, 'app.py');
    await copyFile(SAMPLE_APP, app);
    statusFile = path.join(appDir, 'status.json');
    workload = {
      command: ['python3', '-u', app],
      cwd: appDir,
      env: { SAMPLE_TABLE_MB: '16', SAMPLE_INIT_SECONDS: '1', SAMPLE_STATUS_FILE: statusFile },
    };
  });

  afterAll(async () => {
    await h.torpor.deleteRefreshSchedule(name, h.node).catch(() => undefined);
    for (const hash of hashes) await killCheckpointProcesses(hash);
    await h.stop();
    await rm(appDir, { recursive: true, force: true });
  });

  it('creates the schedule with overlap policy SKIP, and updates it in place when asked again', async () => {
    const request = {
      name,
      node: h.node,
      runtime: 'local' as const,
      workload,
      hashEnv: ['SAMPLE_TABLE_MB', 'SAMPLE_INIT_SECONDS'],
      keep: 1,
    };
    const created = await h.torpor.ensureRefreshSchedule({ ...request, every: '2h' });
    expect(created).toMatchObject({
      scheduleId: `refresh/${name}/${h.node}`,
      overlap: 'SKIP',
      everyMs: 2 * HOUR_MS,
      keep: 1,
      paused: false,
    });
    expect(created.numRuns).toBe(0);
    const updated = await h.torpor.ensureRefreshSchedule({ ...request, every: '1h' });
    expect(updated.scheduleId).toBe(created.scheduleId);
    expect(updated.everyMs).toBe(HOUR_MS);
    let listed = await h.torpor.listRefreshSchedules({ node: h.node });
    for (let i = 0; i < 50 && listed.length === 0; i++) {
      await sleep(200);
      listed = await h.torpor.listRefreshSchedules({ node: h.node });
    }
    expect(listed.map((s) => s.scheduleId)).toEqual([created.scheduleId]);
  });

  it('a trigger runs a refresh that checkpoints the current spec once, as a child workflow checkpoint/<hash>', async () => {
    const { result, workflowId, runId } = await triggerAndWait();
    expect(result.outcome).toBe('created');
    expect(result.hash).toMatch(new RegExp(`^${name}-[0-9a-f]{16}$`));
    expect(result.checkpointWorkflowId).toBe(`checkpoint/${result.hash}`);
    expect(await exists(path.join(h.storage, result.hash, 'checkpoint.done'))).toBe(true);
    expect(await childWorkflowsOf(h, workflowId, runId)).toEqual([`checkpoint/${result.hash}`]);
    expect(result.retention).toMatchObject({ kept: [result.hash], deleted: [], inUse: [] });
  });

  it('a second trigger with an unchanged spec does nothing: same hash, no child workflow, nothing deleted', async () => {
    const [first] = hashes;
    const before = await h.torpor.getCheckpoint(first as string, h.node);
    const { result, workflowId, runId } = await triggerAndWait();
    expect(result).toMatchObject({ outcome: 'unchanged', hash: first, checkpointWorkflowId: null });
    expect(result.retention.deleted).toEqual([]);
    expect(await childWorkflowsOf(h, workflowId, runId)).toEqual([]);
    const after = await h.torpor.getCheckpoint(first as string, h.node);
    expect(after.manifest.createdAt).toBe(before.manifest.createdAt);
    expect((await h.torpor.listCheckpoints({ node: h.node, name })).map((c) => c.hash)).toEqual([first]);
  });

  it('a changed spec (the script edited) produces a new checkpoint, and retention (keep 1) deletes the oldest', async () => {
    const [first] = hashes;
    await appendFile(app, '\n# changed: a new version of the app\n');
    const { result } = await triggerAndWait();
    expect(result.outcome).toBe('created');
    expect(result.hash).not.toBe(first);
    expect(result.retention).toMatchObject({ kept: [result.hash], deleted: [first], inUse: [] });
    expect(await exists(path.join(h.storage, first as string))).toBe(false);
    expect(await readdir(path.join(h.storage, '.trash'))).toEqual([]);
    expect((await h.torpor.listCheckpoints({ node: h.node, name })).map((c) => c.hash)).toEqual([result.hash]);
  });

  it('never deletes a checkpoint that a running restore uses; the next refresh deletes it once that restore is gone', async () => {
    const second = hashes[1] as string;
    const restored = await h.torpor.restore({ hash: second, node: h.node, runtime: 'local', readiness: sampleRestoredProbe(statusFile) });
    const info = await h.torpor.getCheckpoint(second, h.node);
    expect(info.summary.usedBy).toEqual([{ restoreId: restored.restoreId, pid: restored.pid, state: 'running' }]);
    await expect(h.torpor.deleteCheckpoint(second, h.node)).rejects.toMatchObject({ type: 'CheckpointInUse' });

    await appendFile(app, '# changed again\n');
    const third = (await triggerAndWait()).result;
    expect(third.outcome).toBe('created');
    expect(third.retention).toMatchObject({ kept: [third.hash], deleted: [], inUse: [second] });
    expect(await exists(path.join(h.storage, second, 'checkpoint.done'))).toBe(true);

    process.kill(-restored.pid, 'SIGKILL');
    for (let i = 0; i < 50 && (await processesOfCheckpoint(second)).length > 0; i++) await sleep(100);
    const next = (await triggerAndWait()).result;
    expect(next).toMatchObject({ outcome: 'unchanged', hash: third.hash });
    expect(next.retention).toMatchObject({ deleted: [second], inUse: [] });
    expect(await exists(path.join(h.storage, second))).toBe(false);
    expect(await exists(path.join(h.storage, '.restores', second))).toBe(false);
  });

  it('backfill runs the refresh the schedule would have run in a past window', async () => {
    const before = await h.torpor.schedules.describe(name, h.node);
    const start = new Date(Math.floor(Date.now() / HOUR_MS) * HOUR_MS - HOUR_MS);
    await h.torpor.backfillRefreshSchedule(name, h.node, { start, end: new Date(start.getTime() + HOUR_MS / 2) });
    let now = before;
    for (let i = 0; i < 100 && now.numRuns === before.numRuns; i++) {
      await sleep(200);
      now = await h.torpor.schedules.describe(name, h.node);
    }
    expect(now.numRuns).toBe(before.numRuns + 1);
    const run = now.lastRun as { workflowId: string; runId: string };
    expect(run.workflowId).not.toBe(before.lastRun?.workflowId);
    const result = await h.torpor.refreshResult(run.workflowId, run.runId);
    expect(result).toMatchObject({ outcome: 'unchanged', hash: hashes.at(-1) });
  });

  it('rejects an interval that is too short or malformed, and keep 0, with InvalidSpec before anything is created', async () => {
    const request = { name: `${name}-bad`, node: h.node, runtime: 'local' as const, workload };
    for (const [every, message] of [
      ['30s', /every must be at least 1 minute/],
      ['soon', /every must be a duration/],
      ['0m', /every must be at least 1 minute/],
    ] as const) {
      const err = await h.torpor.ensureRefreshSchedule({ ...request, every }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TorporError);
      expect(err).toMatchObject({ type: 'InvalidSpec', message });
    }
    await expect(h.torpor.ensureRefreshSchedule({ ...request, every: '1h', keep: 0 })).rejects.toMatchObject({
      type: 'InvalidSpec',
      message: /keep must keep at least 1/,
    });
    await expect(h.torpor.schedules.describe(`${name}-bad`, h.node)).rejects.toMatchObject({ type: 'ScheduleNotFound' });
  });

  it('triggering or deleting a schedule that does not exist fails with ScheduleNotFound', async () => {
    await expect(h.torpor.triggerRefreshSchedule('no-such-schedule', h.node)).rejects.toMatchObject({ type: 'ScheduleNotFound' });
    await expect(h.torpor.deleteRefreshSchedule('no-such-schedule', h.node)).rejects.toMatchObject({ type: 'ScheduleNotFound' });
  });
});
