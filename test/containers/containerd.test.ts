import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContainerActivities } from '../../activities/node/container/activities.js';
import { CONTAINERD_RUNC_ROOT, Containerd } from '../support/containerd.js';
import { buildOciArchive } from '../support/oci-image.js';
import {
  checkpointContainer,
  eventually,
  PLACEHOLDER_COMMAND,
  placeholderEnv,
  RuncWorld,
  waitForStatus,
} from '../support/runc-containers.js';

const IMAGE = 'docker.io/torpor/app:1';
const world = new RuncWorld(path.resolve('.torpor/test/containerd'));
const containerd = new Containerd('/tmp/torpor-containerd');
const cri = (pod: string) => ({
  'io.kubernetes.cri.sandbox-namespace': 'team-a',
  'io.kubernetes.cri.sandbox-name': pod,
  'io.kubernetes.cri.container-name': 'main',
});

/** A pod's volumes on the host: /data and a service-account token, bind-mounted as the kubelet does. */
async function volumes(name: string): Promise<{ data: string; binds: Array<[string, string, 'ro' | 'rw']> }> {
  const data = path.join(world.dir, 'volumes', name, 'data');
  const token = path.join(world.dir, 'volumes', name, 'token');
  await mkdir(data, { recursive: true });
  await mkdir(token, { recursive: true });
  await writeFile(path.join(token, 'token'), `token of ${name}`);
  return {
    data,
    binds: [
      ['/usr', '/usr', 'ro'],
      ['/etc', '/etc', 'ro'],
      [data, '/data', 'rw'],
      [token, '/var/run/secrets/kubernetes.io/serviceaccount', 'ro'],
    ],
  };
}

describe('containers run by containerd (real containerd 1.6, runc and CRIU)', () => {
  let activities: ReturnType<typeof createContainerActivities>;

  beforeAll(async () => {
    await world.createImage();
    await containerd.start();
    const archive = path.join(world.dir, 'image.tar');
    await buildOciArchive(world.image, IMAGE, archive);
    await containerd.importImage(archive);
    activities = createContainerActivities({ ...world.config(['team-a']), runcRoot: CONTAINERD_RUNC_ROOT });
  });
  afterAll(async () => {
    await containerd.stop();
    await world.cleanUp();
  });

  it('finds a containerd container through runc state, dumps it, and restores it into a containerd placeholder: state, volumes, log', async () => {
    const source = await volumes('llm-0');
    await containerd.run(
      'ctrd-source',
      IMAGE,
      {
        annotations: { ...cri('llm-0'), 'torpor.dev/checkpoint-source': 'true' },
        binds: source.binds,
        logFile: path.join(world.dir, 'source.log'),
      },
      ['sh', '-c', 'exec python3 /app/app.py </dev/null'],
    );
    const before = await waitForStatus(path.dirname(source.data), (s) => s.n >= 3);
    const dumped = await checkpointContainer(world, activities, { containerId: 'ctrd-source', hash: 'llm-v1', nodeName: 'node-a' });
    expect(dumped.labels).toEqual({ podNamespace: 'team-a', podName: 'llm-0', containerName: 'main' });
    await containerd.remove('ctrd-source');

    const target = await volumes('llm-1');
    const log = path.join(world.dir, 'placeholder.log');
    await containerd.run(
      'ctrd-placeholder',
      IMAGE,
      {
        annotations: cri('llm-1'),
        binds: [...target.binds, [world.store, '/checkpoints', 'ro']],
        env: placeholderEnv('llm-v1'),
        logFile: log,
      },
      PLACEHOLDER_COMMAND,
    );
    await eventually(
      async () => ((await readFile(log, 'utf8').catch(() => '')).includes('waiting for the node agent') ? true : undefined),
      'the placeholder',
    );

    const restored = await activities.restoreIntoPlaceholder({ hash: 'llm-v1', placeholderContainerId: 'ctrd-placeholder' });
    expect(restored.alreadyRestored).toBe(false);
    const after = await waitForStatus(path.dirname(target.data), (s) => s.restored && s.n > before.n);
    expect(after.iid).toBe(before.iid);
    expect(after.checksum).toBe(before.checksum);
    expect(after.token).toBe('token of llm-1');
    // containerd's shim copies the restored app's stdout into the placeholder's log.
    await eventually(
      async () => ((await readFile(log, 'utf8')).includes(`tick ${after.n} ${before.iid}`) ? true : undefined),
      'the app in the log',
    );
  });
});
