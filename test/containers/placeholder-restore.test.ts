import { cp, mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContainerActivities } from '../../activities/node/container/activities.js';
import type { RestoreIntoPlaceholderInput } from '../../activities/node/container/types.js';
import { StoreLayout } from '../../activities/node/store/layout.js';
import { writeManifest } from '../../activities/node/store/manifest-mac.js';
import { failureOf } from '../support/failures.js';
import { type AppStatus, checkpointContainer, eventually, RuncWorld, verifyCheckpoint, waitForStatus } from '../support/runc-containers.js';

const world = new RuncWorld(path.resolve('.torpor/test/placeholders'));
const activities = createContainerActivities(world.config(['team-a', 'team-b']));
const pod = (namespace: string, name: string) => ({
  'io.kubernetes.pod.namespace': namespace,
  'io.kubernetes.pod.name': name,
  'io.kubernetes.container.name': 'main',
});
const HASH = 'app-v1';
const MARKER = '/app/state/restored';

/** A restore pod's container: the image's command behind ChReK's smart entrypoint, the checkpoint volume at /checkpoints. */
async function startPlaceholder(id: string, namespace: string, image?: string): Promise<string> {
  const bundle = await world.createBundle(id, pod(namespace, `${id}-pod`), {
    placeholderFor: { hash: HASH, store: world.store },
    ...(image ? { image } : {}),
  });
  await world.run(id, bundle);
  await eventually(async () => ((await world.output(id)).includes('waiting for the node agent') ? true : undefined), `${id} to wait`);
  return bundle;
}

async function statusField(pid: number, name: string): Promise<string | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(status)?.[1];
}

/** Refused before anything was touched: the placeholder still only waits, and has no restore marker. */
async function expectStillWaiting(id: string): Promise<void> {
  expect(await world.state(id)).toBe('running');
  expect((await world.exec(id, ['test', '-e', MARKER])).exitCode).not.toBe(0);
  const ps = await world.exec(id, ['ps', '-eo', 'args']);
  expect(ps.stdout).not.toMatch(/^python3 \/app\/app\.py/m);
}

describe('restore into a running placeholder container (real runc and CRIU)', () => {
  let before: AppStatus;

  beforeAll(async () => {
    await world.createImage();
    // The app looks for the restore marker where its own environment says; the agent writes it there.
    const source = await world.createBundle(
      'source',
      { ...pod('team-a', 'app-0'), 'torpor.dev/checkpoint-source': 'true' },
      { env: [`DYN_RESTORE_MARKER_FILE=${MARKER}`] },
    );
    await world.run('source', source);
    before = await waitForStatus(source, (s) => s.n >= 3);
    await checkpointContainer(world, activities, { containerId: 'source', hash: HASH, nodeName: 'node-a' });
    await world.deleteContainer('source');
  });
  afterAll(async () => {
    await world.cleanUp();
  });

  it('restores the process tree into the placeholder: its memory, files, /dev/shm and the placeholder’s own mounts, namespaces, cgroups and log', async () => {
    const bundle = await startPlaceholder('restore-1', 'team-a');
    const init = await world.initPid('restore-1');
    // What a readiness probe of the app checks is not there before the restore.
    expect((await world.exec('restore-1', ['test', '-f', '/app/serving'])).exitCode).not.toBe(0);

    const input: RestoreIntoPlaceholderInput = { hash: HASH, placeholderContainerId: 'restore-1', nodeName: 'node-a' };
    const restored = await activities.restoreIntoPlaceholder(input);
    expect(restored.alreadyRestored).toBe(false);

    const first = await waitForStatus(bundle, () => true);
    const later = await waitForStatus(bundle, (s) => s.n > first.n + 2);
    // Same process state: the instance drawn at start, the table's checksum, the counter going on.
    expect(later.iid).toBe(before.iid);
    expect(later.checksum).toBe(before.checksum);
    expect(first.n).toBeGreaterThanOrEqual(before.n);
    // Its rootfs file and /dev/shm file came back; the token it reads now is the placeholder's own.
    expect(later.written).toBe(`written by ${before.iid}`);
    expect(later.shm).toBe(`shm of ${before.iid}`);
    expect(later.token).toBe('token of restore-1');
    // It saw ChReK's restore marker, and the exec probe passes inside the placeholder.
    expect(later.restored).toBe(true);
    expect((await world.exec('restore-1', ['test', '-f', '/app/serving'])).exitCode).toBe(0);

    // Inside the placeholder: its network, IPC and UTS namespaces and its cgroups; a PID namespace
    // nested in the placeholder's, adopted by the placeholder's init.
    for (const ns of ['net', 'ipc', 'uts']) {
      expect(await readlink(`/proc/${restored.hostPid}/ns/${ns}`)).toBe(await readlink(`/proc/${init}/ns/${ns}`));
    }
    expect(await readFile(`/proc/${restored.hostPid}/cgroup`, 'utf8')).toBe(await readFile(`/proc/${init}/cgroup`, 'utf8'));
    expect(Number(await statusField(restored.hostPid, 'PPid'))).toBe(init);
    expect(await readlink(`/proc/${restored.hostPid}/ns/pid`)).not.toBe(await readlink(`/proc/${init}/ns/pid`));
    const ps = await world.exec('restore-1', ['ps', '-eo', 'pid,args']);
    expect(ps.stdout).toMatch(new RegExp(`\\b${restored.placeholderPid} python3 /app/app.py`));
    // The container's log (its stdout pipe) now carries the restored app's output.
    await eventually(
      async () => ((await world.output('restore-1')).includes(`tick ${later.n} ${before.iid}`) ? true : undefined),
      'the app in the log',
    );

    // Run again (Temporal retries activities): the restored tree is found, not restored twice.
    const again = await activities.restoreIntoPlaceholder(input);
    expect(again).toMatchObject({ alreadyRestored: true, hostPid: restored.hostPid });
    expect((await world.exec('restore-1', ['ps', '-eo', 'args'])).stdout.match(/^python3 \/app\/app\.py/gm)).toHaveLength(1);

    // When the restored app exits, the smart entrypoint reaps it and the container stops (once it
    // has seen the restored tree: it looks five times a second).
    await eventually(
      async () => ((await world.output('restore-1')).includes('restored process running') ? true : undefined),
      'the smart entrypoint to see the restored tree',
    );
    process.kill(restored.hostPid, 'SIGKILL');
    await eventually(async () => ((await world.state('restore-1')) === 'stopped' ? true : undefined), 'the placeholder to stop');
    expect(await world.output('restore-1')).toContain('the restored process tree has exited');
  });

  it('refuses, before touching the placeholder: another node, an unknown container, a disallowed or different namespace, another image, an unknown or damaged checkpoint', async () => {
    await startPlaceholder('waiting', 'team-a');
    const refusals: Array<[Partial<RestoreIntoPlaceholderInput>, string, string]> = [
      [{ nodeName: 'node-b' }, 'TargetNotAllowed', 'node-b'],
      [{ placeholderContainerId: 'no-such-placeholder' }, 'TargetNotAllowed', 'no-such-placeholder'],
      [{ hash: 'never-taken' }, 'CheckpointNotFound', 'never-taken'],
      [{ hash: '../etc' }, 'TargetNotAllowed', 'not a valid checkpoint hash'],
      [{ restoreMarkerFile: '../escape' }, 'InvalidSpec', 'Restore marker'],
    ];
    for (const [change, type, text] of refusals) {
      const failure = await failureOf(activities.restoreIntoPlaceholder({ hash: HASH, placeholderContainerId: 'waiting', ...change }));
      expect(failure.type, JSON.stringify(change)).toBe(type);
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toContain(text);
    }
    await expectStillWaiting('waiting');

    // A damaged checkpoint (one byte of its rootfs diff changed, in a copy): the restore's first step refuses it.
    const damagedDir = path.join(world.store, 'damaged');
    await cp(path.join(world.store, HASH), damagedDir, { recursive: true });
    const manifest = JSON.parse(await readFile(path.join(damagedDir, 'manifest.json'), 'utf8'));
    // Signed with the agent's key, as a commit would: only the changed byte is wrong.
    await writeManifest(new StoreLayout(world.store), damagedDir, { ...manifest, hash: 'damaged' });
    const diff = path.join(damagedDir, 'rootfs-diff.tar');
    const bytes = await readFile(diff);
    bytes[100] = (bytes[100] ?? 0) ^ 0xff;
    await writeFile(diff, bytes);
    const damaged = await failureOf(verifyCheckpoint(world, 'damaged'));
    expect(damaged.type).toBe('CheckpointCorrupt');
    expect(damaged.message).toContain('rootfs-diff.tar');
    await expectStillWaiting('waiting');

    // A process checkpoint is not a container checkpoint.
    await mkdir(path.join(world.store, 'process-ckpt'));
    await writeManifest(new StoreLayout(world.store), path.join(world.store, 'process-ckpt'), { ...manifest, hash: 'process-ckpt' });
    await writeFile(path.join(world.store, 'process-ckpt', 'checkpoint.done'), '');
    const notContainer = await failureOf(activities.restoreIntoPlaceholder({ hash: 'process-ckpt', placeholderContainerId: 'waiting' }));
    expect(notContainer.message).toContain('not a container checkpoint');
    await expectStillWaiting('waiting');

    // team-b is allowed on this agent, but a team-a checkpoint must not be restored into a team-b pod.
    await startPlaceholder('other-team', 'team-b');
    const crossNamespace = await failureOf(activities.restoreIntoPlaceholder({ hash: HASH, placeholderContainerId: 'other-team' }));
    expect(crossNamespace.type).toBe('TargetNotAllowed');
    expect(crossNamespace.message).toContain('team-b');
    await expectStillWaiting('other-team');
    const strict = createContainerActivities(world.config(['team-a']));
    const disallowed = await failureOf(strict.restoreIntoPlaceholder({ hash: HASH, placeholderContainerId: 'other-team' }));
    expect(disallowed.type).toBe('TargetNotAllowed');

    // A placeholder of another image (a copy of it with one more file).
    const otherImage = path.join(world.dir, 'other-image');
    await cp(world.image, otherImage, { recursive: true, verbatimSymlinks: true });
    await writeFile(path.join(otherImage, 'app', 'extra.txt'), 'another build');
    await startPlaceholder('other-image', 'team-a', otherImage);
    const wrongImage = await failureOf(activities.restoreIntoPlaceholder({ hash: HASH, placeholderContainerId: 'other-image' }));
    expect(wrongImage.type).toBe('TargetNotAllowed');
    expect(wrongImage.message).toContain('another image');
    await expectStillWaiting('other-image');
  });
});
