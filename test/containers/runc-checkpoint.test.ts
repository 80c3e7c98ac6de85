import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContainerActivities } from '../../activities/node/container/activities.js';
import { failureOf } from '../support/failures.js';
import { checkpointContainer, RuncWorld, verifyCheckpoint, waitForStatus } from '../support/runc-containers.js';

const world = new RuncWorld(path.resolve('.torpor/test/containers'));
const activities = createContainerActivities(world.config(['team-a']));
const allowed = {
  'io.kubernetes.pod.namespace': 'team-a',
  'io.kubernetes.pod.name': 'app-0',
  'io.kubernetes.container.name': 'app',
  'torpor.dev/checkpoint-source': 'true',
};

async function filesIn(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

/** Refused before anything is frozen: nothing in the store, the container still running and counting. */
async function expectUntouched(id: string, bundle: string, hash: string): Promise<void> {
  expect(await filesIn(path.join(world.store, hash))).toEqual([]);
  expect(await world.state(id)).toBe('running');
  const before = await waitForStatus(bundle, () => true);
  await waitForStatus(bundle, (s) => s.n > before.n);
}

describe('runc containers (real runc and CRIU)', () => {
  beforeAll(async () => {
    await world.createImage();
  });
  afterAll(async () => {
    await world.cleanUp();
  });

  it('refuses a container ID that runc does not know on this node, typed and non-retryable', async () => {
    const failure = await failureOf(
      activities.dumpContainer({ containerId: 'no-such-container', hash: 'ck-unknown', dumpId: 'ck-unknown.t' }),
    );
    expect(failure.type).toBe('TargetNotAllowed');
    expect(failure.nonRetryable).toBe(true);
    expect(await filesIn(path.join(world.store, 'ck-unknown'))).toEqual([]);
  });

  it('refuses a container whose pod namespace the agent does not allow, before freezing it', async () => {
    const bundle = await world.createBundle('other-ns', { ...allowed, 'io.kubernetes.pod.namespace': 'team-b' });
    await world.run('other-ns', bundle);
    await waitForStatus(bundle, () => true);
    const failure = await failureOf(activities.dumpContainer({ containerId: 'other-ns', hash: 'ck-other-ns', dumpId: 'ck-other-ns.t' }));
    expect(failure.type).toBe('TargetNotAllowed');
    expect(failure.message).toContain('team-b');
    await expectUntouched('other-ns', bundle, 'ck-other-ns');
    await world.deleteContainer('other-ns');
  });

  it('refuses a container without the checkpoint-source label, and a request meant for another node, before freezing it', async () => {
    const { 'torpor.dev/checkpoint-source': _, ...unlabelled } = allowed;
    const bundle = await world.createBundle('unlabelled', unlabelled);
    await world.run('unlabelled', bundle);
    await waitForStatus(bundle, () => true);
    const failure = await failureOf(
      activities.dumpContainer({ containerId: 'unlabelled', hash: 'ck-unlabelled', dumpId: 'ck-unlabelled.t' }),
    );
    expect(failure.type).toBe('TargetNotAllowed');
    expect(failure.message).toContain('torpor.dev/checkpoint-source');
    await expectUntouched('unlabelled', bundle, 'ck-unlabelled');

    const elsewhere = await failureOf(
      activities.dumpContainer({ containerId: 'unlabelled', hash: 'ck-unlabelled', dumpId: 'ck-unlabelled.t', nodeName: 'node-b' }),
    );
    expect(elsewhere.type).toBe('TargetNotAllowed');
    expect(elsewhere.message).toContain('node-b');
    await expectUntouched('unlabelled', bundle, 'ck-unlabelled');
    await world.deleteContainer('unlabelled');
  });

  it('commits a container dump to the store as an ordinary checkpoint, leaves the container running, and does not dump a committed hash again', async () => {
    const source = await world.createBundle('source', allowed);
    await world.run('source', source);
    const before = await waitForStatus(source, (s) => s.n >= 3);

    const dumped = await checkpointContainer(world, activities, { containerId: 'source', hash: 'ck-source', nodeName: 'node-a' });
    expect(dumped.labels).toEqual({ podNamespace: 'team-a', podName: 'app-0', containerName: 'app' });
    expect(dumped.rootfsDiffBytes).toBeGreaterThan(0);
    // An ordinary checkpoint of the store: manifest with every file's sha256, marker, container record.
    const committed = await filesIn(path.join(world.store, 'ck-source'));
    expect(committed).toEqual(
      expect.arrayContaining(['checkpoint.done', 'manifest.json', 'container.json', 'images', 'rootfs-diff.tar', 'dev-shm.tar']),
    );
    expect(dumped.manifest).toMatchObject({ hash: 'ck-source', runtime: 'kubernetes', node: 'node-a' });
    expect(dumped.manifest.files.map((f) => f.path)).toEqual(
      expect.arrayContaining(['images/pages-1.img', 'container.json', 'rootfs-diff.tar']),
    );
    expect((await verifyCheckpoint(world, 'ck-source')).verifiedBytes).toBe(dumped.manifest.totalBytes);
    // --leave-running: the source keeps counting after its dump.
    await waitForStatus(source, (s) => s.n > before.n + 2);
    // The same hash again is the committed checkpoint, not a second dump.
    const again = await checkpointContainer(world, activities, { containerId: 'source', hash: 'ck-source' });
    expect(again.alreadyCommitted).toBe(true);
    expect(again.manifest.createdAt).toBe(dumped.manifest.createdAt);
    await world.deleteContainer('source');
  });
});
