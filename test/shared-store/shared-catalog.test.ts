import { randomBytes } from 'node:crypto';
import { readdir, rename, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retentionActivities } from '../../activities/node/store/catalog.js';
import { openSharedStore } from '../../activities/node/store/shared/open-store.js';
import type { RemovedCheckpoint } from '../../contract/types.js';
import { commitFake, fakeImages, type SharedStores, startSharedStores } from './fixtures.js';

const LEASE_MS = 1500;
const activity = new MockActivityEnvironment();
const hashOf = () => `t-${randomBytes(5).toString('hex')}`;

let stores: SharedStores;

beforeAll(async () => {
  stores = await startSharedStores();
});

afterAll(async () => {
  await stores?.stop();
});

/** Two nodes with their own stores and one shared store (S3 or a shared directory); each node's catalog steps. */
async function twoNodes(backend: 's3' | 'directory') {
  const make = async (name: string) => {
    const n = await stores.node(name, backend, { sharedLeaseMs: LEASE_MS });
    const catalog = retentionActivities(n.config, n.layout);
    const shared = openSharedStore(n.config, n.layout);
    if (!shared) throw new Error('no shared store configured');
    return { ...n, catalog, store: shared.store, leases: shared.leases };
  };
  return { a: await make('a'), b: await make('b') };
}

const objectsOf = async (store: TwoNodes['a']['store'], hash: string) => store.list(`checkpoints/${hash}/`);
type TwoNodes = Awaited<ReturnType<typeof twoNodes>>;

describe.each(['s3', 'directory'] as const)('the catalog reads the shared store (%s), and leases hold across nodes', (backend) => {
  let a: TwoNodes['a'];
  let b: TwoNodes['b'];
  let hash: string;

  beforeAll(async () => {
    ({ a, b } = await twoNodes(backend));
    hash = hashOf();
    await commitFake(a, hash, fakeImages());
    await a.steps.uploadCheckpoint({ hash });
  });

  it('lists and inspects on node B a checkpoint that is only in the shared store, marked by where it is', async () => {
    expect(await readdir(b.root)).not.toContain(hash);
    const listed = (await b.catalog.listCommitted({})).find((c) => c.hash === hash);
    expect(listed).toMatchObject({ node: a.config.nodeName, location: { shared: true, nodeCaches: [a.config.nodeName] }, usedBy: [] });
    const described = await b.catalog.describeCheckpoint({ hash });
    expect(described?.manifest.hash).toBe(hash);
    expect(described?.summary.location).toEqual({ shared: true, nodeCaches: [a.config.nodeName] });
  });

  it('refuses, on node A, to delete a checkpoint node B holds a lease on, saying so; nothing is removed', async () => {
    await b.steps.fetchCheckpoint({ hash });
    // B uses it (as a fetch does) while A looks: its lease lives throughout.
    await b.leases.forFetch(hash, async () => {
      const listed = (await a.catalog.listCommitted({})).find((c) => c.hash === hash);
      expect(listed?.location?.nodeCaches).toEqual([a.config.nodeName, b.config.nodeName].sort());
      expect(listed?.usedBy).toEqual([expect.objectContaining({ state: 'leased', node: b.config.nodeName })]);
      const before = await objectsOf(a.store, hash);
      await expect(activity.run(a.catalog.removeCheckpoint, { hash })).rejects.toMatchObject({
        type: 'CheckpointInUse',
        message: expect.stringContaining(`node ${b.config.nodeName}`),
      });
      expect(await objectsOf(a.store, hash)).toEqual(before);
      expect(await readdir(a.root)).toContain(hash);
    });
  });

  it('deletes the manifest and every chunk once the lease has ended; node B keeps its cached copy, no longer shared', async () => {
    await expect.poll(async () => (await a.store.list(`leases/${hash}/`)).length, { timeout: 30_000, interval: 200 }).toBe(0);
    const removed = (await activity.run(a.catalog.removeCheckpoint, { hash })) as RemovedCheckpoint;
    expect(removed).toMatchObject({ removed: true, shared: { manifestRemoved: true } });
    expect(removed.shared?.objectsRemoved).toBeGreaterThan(1);
    expect(await objectsOf(a.store, hash)).toEqual([]);
    expect(await readdir(a.root)).not.toContain(hash);
    expect((await a.catalog.listCommitted({})).map((c) => c.hash)).not.toContain(hash);
    const onB = (await b.catalog.listCommitted({})).find((c) => c.hash === hash);
    expect(onB?.location).toEqual({ shared: false, nodeCaches: [b.config.nodeName] });
  });

  it('resumes an interrupted delete: with the manifest already gone, the chunks left are removed', async () => {
    const other = hashOf();
    await commitFake(a, other, fakeImages());
    await a.steps.uploadCheckpoint({ hash: other });
    await a.store.delete([`checkpoints/${other}/manifest.json`]);
    expect((await objectsOf(a.store, other)).length).toBeGreaterThan(0);
    const removed = await activity.run(a.catalog.removeCheckpoint, { hash: other });
    expect(removed).toMatchObject({ removed: true, shared: { manifestRemoved: false } });
    expect(await objectsOf(a.store, other)).toEqual([]);
  });

  it('ignores and removes the lease of a node that stopped renewing it (expired)', async () => {
    const other = hashOf();
    await commitFake(a, other, fakeImages());
    await a.steps.uploadCheckpoint({ hash: other });
    const expiresAt = new Date(Date.now() - 1000).toISOString();
    await a.store.put(`leases/${other}/gone-node`, JSON.stringify({ hash: other, node: 'gone-node', expiresAt, uses: ['fetching'] }), {});
    expect((await a.catalog.describeCheckpoint({ hash: other }))?.summary.usedBy).toEqual([]);
    await activity.run(a.catalog.removeCheckpoint, { hash: other });
    expect(await a.store.list(`leases/${other}/`)).toEqual([]);
  });
});

describe('the shared directory store follows no link (hostile)', () => {
  it('refuses a manifest planted as a link (CheckpointCorrupt), lists nothing through it, and fetches nothing', async () => {
    const { a, b } = await twoNodes('directory');
    const hash = hashOf();
    await commitFake(a, hash, fakeImages());
    await a.steps.uploadCheckpoint({ hash });
    const { sharedDir } = stores;
    const manifest = path.join(sharedDir, 'checkpoints', hash, 'manifest.json');
    const elsewhere = path.join(sharedDir, '..', `${path.basename(sharedDir)}-outside.json`);
    await rename(manifest, elsewhere);
    await symlink(elsewhere, manifest);
    try {
      await expect(b.catalog.describeCheckpoint({ hash })).rejects.toMatchObject({
        type: 'CheckpointCorrupt',
        message: expect.stringContaining('is a link'),
      });
      expect((await b.catalog.listCommitted({})).map((c) => c.hash)).not.toContain(hash);
      await expect(b.steps.fetchCheckpoint({ hash })).rejects.toMatchObject({ type: 'CheckpointCorrupt' });
      expect(await readdir(b.root)).not.toContain(hash);
    } finally {
      await rm(elsewhere, { force: true });
    }
  });
});
