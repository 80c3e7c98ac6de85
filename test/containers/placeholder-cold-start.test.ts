import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContainerActivities } from '../../activities/node/container/activities.js';
import { failureOf } from '../support/failures.js';
import { checkpointedSource, eventually, RuncWorld, waitForStatus } from '../support/runc-containers.js';

const world = new RuncWorld(path.resolve('.torpor/test/placeholder-cold-start'));
const config = world.config(['team-a']);
const activities = createContainerActivities(config);
const pod = (name: string) => ({
  'io.kubernetes.pod.namespace': 'team-a',
  'io.kubernetes.pod.name': name,
  'io.kubernetes.container.name': 'main',
});
const HASH = 'app-v1';

describe('a placeholder that cold-started its own app is not restored into (real runc)', () => {
  beforeAll(async () => {
    await world.createImage();
    await checkpointedSource(world, activities, { hash: HASH, labels: pod('app-0') });
  });
  afterAll(async () => {
    await world.cleanUp();
  });

  it('refuses with a clear, non-retryable error naming the container, and never runs CRIU', async () => {
    // The node's fetch has not landed in the pod's checkpoint volume when the wait ran out.
    const emptyVolume = path.join(world.dir, 'not-yet-fetched');
    await mkdir(emptyVolume, { recursive: true });
    const bundle = await world.createBundle('cold-1', pod('cold-1-pod'), { placeholderFor: { hash: HASH, store: emptyVolume } });
    await world.run('cold-1', bundle);
    await eventually(async () => ((await world.output('cold-1')).includes('cold start') ? true : undefined), 'the cold start');
    const app = await waitForStatus(bundle, (s) => s.n >= 1);

    const failure = await failureOf(
      activities.restoreIntoPlaceholder({ hash: HASH, placeholderContainerId: 'cold-1', nodeName: 'node-a' }),
    );
    expect(failure.type).toBe('TargetNotAllowed');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain('Placeholder cold-1 has cold-started its own app');
    expect(failure.message).toContain('python3 /app/app.py');
    expect(failure.message).toContain('Raise TORPOR_CHECKPOINT_WAIT_SECONDS, or delete the pod');

    // CRIU never ran (no restore work directory) and the cold-started app goes on undisturbed.
    const work = await readdir(config.workRoot).catch(() => []);
    expect(work.filter((d) => d.startsWith('restore-cold-1-'))).toEqual([]);
    const later = await waitForStatus(bundle, (s) => s.n > app.n);
    expect(later.iid).toBe(app.iid);
    expect(later.restored).toBe(false);
  });
});
