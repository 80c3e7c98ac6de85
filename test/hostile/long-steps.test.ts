import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeActivities } from '../../activities/node/index.js';
import { stepLockFile, stepLockKey } from '../../activities/node/step-lock.js';
import { workflowIds } from '../../client/workflow-ids.js';
import { CONTROL_TASK_QUEUE, checkpointWorkflowId } from '../../contract/naming.js';
import { attemptsOf } from '../support/activity-attempts.js';
import { testAgentConfig } from '../support/agent-config.js';
import { recordHistory } from '../support/record-history.js';
import { eventually, RuncWorld, waitForStatus } from '../support/runc-containers.js';
import { useTorpor } from '../support/torpor-harness.js';

// Hostile inputs here: a dump and a restore four times as long as their heartbeat timeout (1, 2), a
// duplicate attempt of a running dump (3), the same step held by another agent process (4), a
// refresh joining a checkpoint that does not end (5).

const REAL_CRIU = path.resolve('.torpor/bin/criu');
const scratch = path.join(os.tmpdir(), `torpor-long-steps-${process.pid}`);
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/**
 * A CRIU that takes `delays[action]` seconds longer for each `criu <action>` call, logging each such
 * call (action, start and end time in ms) to `log`; then the real CRIU does the work. A real binary
 * on the agent's criuPath, slow the way a slow disk or a 12 GB image makes the step slow.
 */
function slowCriu(name: string, delays: Record<string, number>): { path: string; log: string } {
  mkdirSync(scratch, { recursive: true });
  const wrapper = path.join(scratch, `${name}.sh`);
  const log = path.join(scratch, `${name}.log`);
  const cases = Object.entries(delays).map(([action, seconds]) => `  ${action}) delay=${seconds} ;;`);
  writeFileSync(
    wrapper,
    `#!/bin/sh
delay=0
case "$1" in
${cases.join('\n')}
esac
if [ "$delay" != 0 ]; then
  start=$(date +%s%3N); sleep "$delay"; echo "$1 $start $(date +%s%3N)" >> "${log}"
fi
exec "${REAL_CRIU}" "$@"
`,
  );
  chmodSync(wrapper, 0o755);
  return { path: wrapper, log };
}

async function calls(log: string): Promise<{ action: string; start: number; end: number }[]> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [action = '', start = '0', end = '0'] = line.split(' ');
      return { action, start: Number(start), end: Number(end) };
    });
}

const sourcePod = {
  'io.kubernetes.pod.namespace': 'team-a',
  'io.kubernetes.pod.name': 'app-0',
  'io.kubernetes.container.name': 'app',
  'torpor.dev/checkpoint-source': 'true',
};

const { 'torpor.dev/checkpoint-source': _, ...placeholderPod } = sourcePod;

describe('a 20 s container dump through Temporal, with the real heartbeat timeout (5 s)', () => {
  const world = new RuncWorld(path.resolve('.torpor/test/long-dump'));
  // runc asks CRIU twice per checkpoint (`criu swrk`: its version, then the dump): 10 s each.
  const criu = slowCriu('long', { swrk: 10, restore: 20 });
  const { runcPath, runcRoot, checkpointSourceLabel } = world.config([]);
  const { h } = useTorpor({
    config: { criuPath: criu.path, containers: { runcPath, runcRoot, checkpointSourceLabel, allowedNamespaces: ['team-a'] } },
  });
  beforeAll(async () => {
    await world.createImage();
    const bundle = await world.createBundle('long-source', sourcePod);
    await world.run('long-source', bundle);
    await waitForStatus(bundle, () => true);
  }, 60_000);
  afterAll(async () => {
    await world.cleanUp();
  });

  it('completes in one attempt: one runc checkpoint, no heartbeat timeout, no retry', { timeout: 120_000 }, async () => {
    const started = Date.now();
    const result = await h.torpor.checkpointContainer({ node: h.node, containerId: 'containerd://long-source', hash: 'long-dump' });
    expect(result.outcome).toBe('created');
    expect(Date.now() - started).toBeGreaterThanOrEqual(20_000);
    expect((await calls(criu.log)).map((c) => c.action)).toEqual(['swrk', 'swrk']);
    const handle = h.client.workflow.getHandle(workflowIds.containerCheckpoint('long-dump', h.node));
    expect(await attemptsOf(handle, 'dumpContainer')).toEqual({ attempts: [1], timedOut: 0 });
    expect(await world.state('long-source')).toBe('running');
    await recordHistory(handle, 'container-checkpoint-created');
  });

  it('a 20 s CRIU restore into a placeholder completes in one attempt: one CRIU restore, no retry', { timeout: 120_000 }, async () => {
    const placeholder = await world.createBundle(
      'long-placeholder',
      { ...placeholderPod, 'io.kubernetes.pod.name': 'app-1' },
      { placeholderFor: { hash: 'long-dump', store: h.storage } },
    );
    await world.run('long-placeholder', placeholder);
    await eventually(
      async () => ((await world.output('long-placeholder')).includes('waiting for the node agent') ? true : undefined),
      'the placeholder to wait',
    );
    const handle = await h.torpor.startContainerRestore({ node: h.node, hash: 'long-dump', placeholderContainerId: 'long-placeholder' });
    const restored = await h.torpor.result(handle);
    expect(restored.alreadyRestored).toBe(false);
    expect(restored.restoreMs).toBeGreaterThanOrEqual(20_000);
    expect((await calls(criu.log)).filter((c) => c.action === 'restore')).toHaveLength(1);
    expect(await attemptsOf(handle, 'restoreIntoPlaceholder')).toEqual({ attempts: [1], timedOut: 0 });
    await waitForStatus(placeholder, (s) => s.restored);
    await recordHistory(handle, 'container-restore-restored');
  });

  it('lists, inspects, collects garbage and deletes through the store workflows (recorded for the replay guard)', async () => {
    const list = await h.torpor.startList(h.node);
    expect((await list.result()).map((c) => c.hash)).toEqual(['long-dump']);
    const inspect = await h.torpor.startInspect('long-dump', h.node);
    expect(await inspect.result()).toMatchObject({ summary: { hash: 'long-dump' } });
    const gc = await h.torpor.startGc({ node: h.node });
    await gc.result();
    const removed = await h.torpor.startDelete('long-gone', h.node);
    await expect(h.torpor.result(removed)).rejects.toMatchObject({ type: 'CheckpointNotFound' });
    for (const [handle, name] of [
      [list, 'list-checkpoints'],
      [inspect, 'inspect-checkpoint'],
      [gc, 'gc-collected'],
      [removed, 'delete-not-found'],
    ] as const) {
      await recordHistory(h.client.workflow.getHandle(handle.workflowId), name);
    }
  });
});

describe('duplicate attempts of a container dump (real runc and CRIU)', () => {
  const world = new RuncWorld(path.resolve('.torpor/test/long-steps'));
  let activities: ReturnType<typeof createNodeActivities>;
  let swrk: { path: string; log: string };

  beforeAll(async () => {
    await world.createImage();
    // runc talks to CRIU through `criu swrk`: each runc checkpoint is slowed by 3 s per CRIU call.
    swrk = slowCriu('swrk-3s', { swrk: 3 });
    const { runcPath, runcRoot, checkpointSourceLabel } = world.config([]);
    const config = testAgentConfig(world.store, {
      nodeName: 'node-a',
      criuPath: swrk.path,
      containers: { runcPath, runcRoot, checkpointSourceLabel, allowedNamespaces: ['team-a'] },
    });
    activities = createNodeActivities(config);
    const bundle = await world.createBundle('dup-source', sourcePod);
    await world.run('dup-source', bundle);
    await waitForStatus(bundle, () => true);
  }, 60_000);
  afterAll(async () => {
    await world.cleanUp();
  });

  const dump = (hash: string) => activities.dumpContainer({ containerId: 'dup-source', hash, dumpId: `${hash}.attempt` });

  it('a retry of the same dump while the first runs adopts its result: one runc checkpoint, not two racing on the staging directory', {
    timeout: 120_000,
  }, async () => {
    await dump('dup-baseline');
    const single = (await calls(swrk.log)).length;
    expect(single).toBeGreaterThan(0);
    const [first, retry] = await Promise.all([dump('dup-twice'), dump('dup-twice')]);
    expect(retry).toEqual(first);
    expect(await calls(swrk.log)).toHaveLength(2 * single);
    expect(await world.state('dup-source')).toBe('running');
  });

  it('the same dump held by another agent process on the store waits for it: CRIU starts only after that lock is released', {
    timeout: 120_000,
  }, async () => {
    const file = stepLockFile(path.join(world.store, '.locks'), stepLockKey('dumpContainer', { hash: 'dup-other' }) ?? '');
    await mkdir(path.dirname(file), { recursive: true });
    const other = execa('flock', [file, 'sh', '-c', 'echo held; sleep 4']);
    await new Promise((resolve) => other.stdout?.once('data', resolve));
    const before = (await calls(swrk.log)).length;
    const dumped = dump('dup-other');
    await other;
    const released = Date.now();
    await dumped;
    const started = (await calls(swrk.log)).slice(before);
    expect(started.length).toBeGreaterThan(0);
    // Each logged call began (start) 3 s before it was logged; none began before the other holder let go.
    for (const call of started) expect(call.start).toBeGreaterThanOrEqual(released - 100);
  });
});

describe('a refresh joining a long checkpoint (real Temporal)', () => {
  const { h } = useTorpor();

  it('backs off and continues as new, so its history does not grow with the checkpoint it waits for', { timeout: 90_000 }, async () => {
    const hash = 'long-join';
    const workload = { command: ['true'] };
    // Someone else's checkpoint of the hash stays in flight: its node has no agent, so its first step waits.
    const blocker = await h.client.workflow.start('checkpoint', {
      workflowId: checkpointWorkflowId(hash),
      taskQueue: CONTROL_TASK_QUEUE,
      args: [{ hash, node: 'no-agent-here', runtime: 'local', workload, agentTimeoutMs: 600_000 }],
    });
    const refresh = await h.client.workflow.start('refresh', {
      workflowId: workflowIds.refresh('long-join', h.node),
      taskQueue: CONTROL_TASK_QUEUE,
      args: [
        { name: 'long-join', node: h.node, runtime: 'local', workload },
        { joining: hash, pollsPerRun: 2 },
      ],
    });
    try {
      const first = h.client.workflow.getHandle(refresh.workflowId, refresh.firstExecutionRunId);
      await eventually(
        async () => ((await first.describe()).status.name === 'CONTINUED_AS_NEW' ? true : undefined),
        'the refresh to continue as new',
        60_000,
      );
      const latest = await h.client.workflow.getHandle(refresh.workflowId).describe();
      expect(latest.runId).not.toBe(refresh.firstExecutionRunId);
      expect(latest.status.name).toBe('RUNNING');
      // Two polls, 5 s then 10 s apart: the first run ended with a short history.
      const events = (await first.fetchHistory()).events ?? [];
      expect(
        events.filter((e) => e.timerStartedEventAttributes).map((e) => Number(e.timerStartedEventAttributes?.startToFireTimeout?.seconds)),
      ).toEqual([5, 10]);
      expect(events.length).toBeLessThan(60);
      await recordHistory(first, 'refresh-joining-continued-as-new');
    } finally {
      await refresh.terminate('test over').catch(() => undefined);
      await blocker.terminate('test over').catch(() => undefined);
    }
  });
});
