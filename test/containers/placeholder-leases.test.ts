import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { placeholderRestoreId } from '../../activities/node/container/placeholder-record.js';
import { createNodeActivities, type NodeAgentConfig } from '../../activities/node/index.js';
import { StoreLayout } from '../../activities/node/store/layout.js';
import { DirectoryStore } from '../../activities/node/store/shared/directory-store.js';
import { manifestKey } from '../../activities/node/store/shared/keys.js';
import { readLeases } from '../../activities/node/store/shared/leases.js';
import { openSharedStore } from '../../activities/node/store/shared/open-store.js';
import { sharedKeyFile } from '../shared-store/fixtures.js';
import { testAgentConfig } from '../support/agent-config.js';
import { failureOf } from '../support/failures.js';
import { eventually, RuncWorld, waitForStatus } from '../support/runc-containers.js';

// Two node agents on this host (their activities called as Temporal would, CRIU and runc real),
// sharing only a directory as the shared store: node A checkpoints a runc container, node B fetches
// it and restores it into a placeholder container. The lease B holds on the shared copy must last
// as long as that restored container runs, not one lease life after the fetch.
const world = new RuncWorld(path.resolve('.torpor/test/placeholder-leases'));
const TORPOR_BIN = path.resolve('.torpor/bin');
const HASH = 'leased-app-v1';
const LEASE_MS = 1000;
const pod = (name: string) => ({
  'io.kubernetes.pod.namespace': 'team-a',
  'io.kubernetes.pod.name': name,
  'io.kubernetes.container.name': 'main',
});

let keyFile: string;
let sharedDir: string;
let configA: NodeAgentConfig;
let configB: NodeAgentConfig;
let a: ReturnType<typeof createNodeActivities>;
let b: ReturnType<typeof createNodeActivities>;
let store: DirectoryStore;

function agentConfig(nodeName: string, storageRoot: string): NodeAgentConfig {
  return testAgentConfig(storageRoot, {
    nodeName,
    criuPath: path.join(TORPOR_BIN, 'criu'),
    manifestKeyFile: keyFile,
    sharedDir: { dir: sharedDir, prefix: '', parallel: 4 },
    sharedLeaseMs: LEASE_MS,
    containers: {
      runcPath: path.join(TORPOR_BIN, 'runc'),
      runcRoot: world.runcRoot,
      allowedNamespaces: ['team-a'],
      checkpointSourceLabel: 'torpor.dev/checkpoint-source',
    },
  });
}

/** Runs an agent step as Temporal runs it (an activity context, for its heartbeats). */
const step = <I, R>(fn: (input: I) => Promise<R>, input: I): Promise<R> => new MockActivityEnvironment().run(fn, input) as Promise<R>;

const liveLeaseOf = async (node: string) => (await readLeases(store, HASH)).live.find((l) => l.node === node);

beforeAll(async () => {
  await world.createImage();
  keyFile = await sharedKeyFile();
  sharedDir = await mkdtemp(path.join(os.tmpdir(), 'torpor-rwx-'));
  store = new DirectoryStore({ dir: sharedDir, prefix: '', parallel: 1 });
  const storeB = path.join(world.dir, 'store-b');
  await mkdir(storeB, { recursive: true });
  configA = agentConfig('node-a', world.store);
  configB = agentConfig('node-b', storeB);
  a = createNodeActivities(configA);
  b = createNodeActivities(configB);

  // As ChReK's checkpoint Job runs it: the hash in its environment, which the restored tree keeps.
  const source = await world.createBundle(
    'source',
    { ...pod('app-0'), 'torpor.dev/checkpoint-source': 'true' },
    { env: [`DYN_CHECKPOINT_HASH=${HASH}`] },
  );
  await world.run('source', source);
  await waitForStatus(source, (s) => s.n >= 3);
  const dumped = await step(a.dumpContainer, { containerId: 'source', hash: HASH, dumpId: `${HASH}.test`, nodeName: 'node-a' });
  await step(a.commitCheckpoint, { hash: HASH, dumpId: dumped.dumpId, startToReadyMs: 0, dumpMs: dumped.dumpMs, gpu: null });
  await world.deleteContainer('source');
  await step(a.uploadCheckpoint, { hash: HASH });
}, 120_000);

afterAll(async () => {
  for (const config of [configA, configB]) if (config) openSharedStore(config, new StoreLayout(config.storageRoot))?.leases.stop();
  await world.cleanUp();
  for (const dir of [sharedDir, keyFile && path.dirname(keyFile)]) if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a checkpoint restored into a placeholder container on node B stays leased while the container runs (real runc, CRIU, shared directory)', () => {
  let hostPid: number;

  it('keeps B’s lease past its life after the fetch: retention on node A refuses with CheckpointInUse naming node B', async () => {
    expect(await step(b.fetchCheckpoint, { hash: HASH })).toMatchObject({ source: 'shared-store' });
    const bundle = await world.createBundle('restore-b', pod('restore-b-pod'), {
      placeholderFor: { hash: HASH, store: configB.storageRoot },
    });
    await world.run('restore-b', bundle);
    await eventually(async () => ((await world.output('restore-b')).includes('waiting for the node agent') ? true : undefined), 'to wait');
    const restored = await step(b.restoreIntoPlaceholder, { hash: HASH, placeholderContainerId: 'restore-b', nodeName: 'node-b' });
    hostPid = restored.hostPid;
    await waitForStatus(bundle, (s) => s.restored);

    // Three lease lives after the fetch and the restore: only the running container can hold the lease now.
    await sleep(3 * LEASE_MS);
    const lease = await liveLeaseOf('node-b');
    expect(lease?.uses).toEqual([`restore ${placeholderRestoreId('restore-b')} (pid ${hostPid}, running)`]);
    const refused = await failureOf(step(a.removeCheckpoint, { hash: HASH }));
    expect(refused.type).toBe('CheckpointInUse');
    expect(refused.message).toContain('node node-b');
    expect(await store.head(manifestKey('', HASH))).not.toBeNull();

    // On node B itself the restored container counts as a use of its cached copy, as a local restore does.
    const onB = await failureOf(step(b.removeCheckpoint, { hash: HASH }));
    expect(onB.type).toBe('CheckpointInUse');
    expect(onB.message).toContain(`pid ${hostPid}`);
  });

  it('leaves the restored container to its pod: the local runtime’s steps under its restore ID refuse it or do nothing', async () => {
    const restoreId = placeholderRestoreId('restore-b');
    expect(await step(b.stopRestored, { hash: HASH, restoreId })).toEqual({ stopped: false });
    const waited = await failureOf(
      step(b.waitRestoredReady, { hash: HASH, restoreId, readiness: { kind: 'process-alive' }, timeoutMs: 1000 }),
    );
    expect(waited).toMatchObject({ type: 'TargetNotAllowed', nonRetryable: true });
    expect(waited.message).toContain('placeholder container restore-b');
    const again = await failureOf(step(b.restoreCheckpoint, { hash: HASH, restoreId }));
    expect(again.type).toBe('TargetNotAllowed');
    expect(await world.state('restore-b')).toBe('running');
    expect(process.kill(hostPid, 0)).toBe(true);
  });

  it('lets the lease go once the restored container is gone: node A deletes the shared copy, node B its copy and the restore record', async () => {
    process.kill(hostPid, 'SIGKILL');
    await eventually(async () => ((await world.state('restore-b')) === 'stopped' ? true : undefined), 'the placeholder to stop');
    await eventually(async () => ((await liveLeaseOf('node-b')) === undefined ? true : undefined), 'node B to release its lease');

    const removed = await step(a.removeCheckpoint, { hash: HASH });
    expect(removed).toMatchObject({ removed: true, shared: { manifestRemoved: true } });
    expect(await store.head(manifestKey('', HASH))).toBeNull();
    expect(await step(b.removeCheckpoint, { hash: HASH })).toMatchObject({ removed: true });
    expect(await readdir(path.join(configB.storageRoot, '.restores')).catch(() => [])).not.toContain(HASH);
  });
});
