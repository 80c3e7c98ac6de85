import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { nodeContainerActivities } from '../../activities/node/container/node-config.js';
import { TorporError } from '../../client/index.js';
import { failureOf } from '../support/failures.js';
import { eventually, RuncWorld, waitForStatus } from '../support/runc-containers.js';
import { startTorpor, type TorporHarness } from '../support/torpor-harness.js';

const CLI = path.resolve('cli/torpor.mjs');
const world = new RuncWorld(path.resolve('.torpor/test/container-workflows'));
const pod = { 'io.kubernetes.pod.namespace': 'team-a', 'io.kubernetes.pod.name': 'llm-0', 'io.kubernetes.container.name': 'main' };

describe('container checkpoint and restore as Temporal workflows (real Temporal, runc and CRIU)', () => {
  let h: TorporHarness;

  beforeAll(async () => {
    await world.createImage();
    const { runcPath, runcRoot, criuPath, checkpointSourceLabel } = world.config([]);
    h = await startTorpor({
      config: { criuPath, containers: { runcPath, runcRoot, checkpointSourceLabel, allowedNamespaces: ['team-a'] } },
    });
  });
  afterAll(async () => {
    await world.cleanUp();
    await h?.stop();
  });

  it('checkpoints a running container by the ID its pod status reports, and restores it into a placeholder started by the smart entrypoint', async () => {
    const source = await world.createBundle('wf-source', { ...pod, 'torpor.dev/checkpoint-source': 'true' });
    await world.run('wf-source', source);
    const before = await waitForStatus(source, (s) => s.n >= 3);

    const checkpoint = await h.torpor.checkpointContainer({ node: h.node, containerId: 'containerd://wf-source', hash: 'llm-v1' });
    expect(checkpoint).toMatchObject({ hash: 'llm-v1', containerId: 'wf-source', labels: { podNamespace: 'team-a', podName: 'llm-0' } });
    expect(checkpoint.outcome).toBe('created');
    expect(checkpoint.manifest).toMatchObject({ hash: 'llm-v1', runtime: 'kubernetes' });
    // It is a checkpoint of the store like any other: listed, with its size.
    const listed = await h.torpor.listCheckpoints({ node: h.node });
    expect(listed.map((c) => c.hash)).toContain('llm-v1');
    await world.deleteContainer('wf-source');

    const placeholder = await world.createBundle(
      'wf-placeholder',
      { ...pod, 'io.kubernetes.pod.name': 'llm-1' },
      { placeholderFor: { hash: 'llm-v1', store: h.storage } },
    );
    await world.run('wf-placeholder', placeholder);
    await eventually(
      async () => ((await world.output('wf-placeholder')).includes('waiting for the node agent') ? true : undefined),
      'the placeholder to wait',
    );

    const handle = await h.torpor.startContainerRestore({ node: h.node, hash: 'llm-v1', placeholderContainerId: 'wf-placeholder' });
    const restored = await h.torpor.result(handle);
    expect(restored.alreadyRestored).toBe(false);
    const status = await waitForStatus(placeholder, (s) => s.restored);
    expect(status.iid).toBe(before.iid);
    expect(status.checksum).toBe(before.checksum);

    // The history reads as a story in the UI: one step, named.
    const history = await handle.fetchHistory();
    const scheduled = (history.events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    expect(scheduled).toEqual(['verifyCheckpoint', 'restoreIntoPlaceholder']);
    expect(await h.torpor.progress(handle.workflowId)).toMatchObject({ phase: 'done' });
  });

  it('fails typed through the workflow: an unknown container, bad input before any workflow, an agent without a container runtime', async () => {
    const unknown = await h.torpor.checkpointContainer({ node: h.node, containerId: 'nope', hash: 'llm-v2' }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(TorporError);
    expect((unknown as TorporError).type).toBe('TargetNotAllowed');
    const bad = await h.torpor.restoreContainer({ node: h.node, hash: 'llm-v1', placeholderContainerId: '../x' }).catch((e: unknown) => e);
    expect((bad as TorporError).type).toBe('InvalidSpec');
    expect((bad as TorporError).workflowId).toBeUndefined();

    // The CLI reports the same refusal, as JSON with its exit code.
    const cli = await execa(
      process.execPath,
      [CLI, '--address', inject('temporalAddress'), '--node', h.node, '--json', 'container', 'checkpoint', 'nope', 'llm-v3'],
      {
        reject: false,
      },
    );
    expect(cli.exitCode).not.toBe(0);
    expect(JSON.parse(cli.stdout).error.type).toBe('TargetNotAllowed');

    const { containers: _, ...withoutContainers } = h.config;
    const refused = await failureOf(
      nodeContainerActivities(withoutContainers).dumpContainer({ containerId: 'x', hash: 'y', dumpId: 'y.t' }),
    );
    expect(refused.type).toBe('TargetNotAllowed');
    expect(refused.message).toContain('TORPOR_RUNC_ROOT');
  });
});
