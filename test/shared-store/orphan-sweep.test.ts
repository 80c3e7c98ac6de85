import { createHash, randomBytes } from 'node:crypto';
import { lutimes, mkdir, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { garbageActivities } from '../../activities/node/store/garbage.js';
import { SHA256_METADATA } from '../../activities/node/store/shared/keys.js';
import { openSharedStore } from '../../activities/node/store/shared/open-store.js';
import { beginSweep, endSweep, underUploadClaim } from '../../activities/node/store/shared/upload-claims.js';
import type { GarbageReport } from '../../contract/types.js';
import { commitFake, fakeImages, type SharedStores, startSharedStores, type TestNode } from './fixtures.js';

/** The grace of these tests (gc's tmpMaxAgeMs); its floor is lowered to 0 here, as no real dump runs. */
const GRACE_MS = 5000;
const activity = new MockActivityEnvironment();
const hashOf = () => `t-${randomBytes(5).toString('hex')}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let stores: SharedStores;

beforeAll(async () => {
  stores = await startSharedStores();
});

afterAll(async () => {
  await stores?.stop();
});

describe.each(['s3', 'directory'] as const)('gc sweeps orphan chunk objects from the shared store (%s)', (backend) => {
  let a: TestNode;
  let b: TestNode;
  const store = () => openSharedStore(a.config, a.layout)?.store as NonNullable<ReturnType<typeof openSharedStore>>['store'];
  const gc = async (n: TestNode) =>
    (await activity.run(garbageActivities(n.layout, { minAgeMs: 0, config: n.config }).collectGarbage, {
      tmpMaxAgeMs: GRACE_MS,
      runMaxAgeMs: GRACE_MS,
    })) as GarbageReport;
  /** A chunk object of `hash` as an upload writes one, named by its content. */
  const plantChunk = async (hash: string, bytes = randomBytes(4096)) => {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const key = `checkpoints/${hash}/chunks/${sha256}`;
    await store().put(key, bytes, { [SHA256_METADATA]: sha256 });
    return key;
  };
  const keysOf = async (hash: string) => (await store().list(`checkpoints/${hash}/`)).sort();

  beforeAll(async () => {
    a = await stores.node('a', backend);
    b = await stores.node('b', backend);
  });

  it('removes orphans older than the grace, keeps a fresh one and every chunk a manifest names however old', async () => {
    const uploaded = hashOf();
    await commitFake(a, uploaded, fakeImages());
    await a.steps.uploadCheckpoint({ hash: uploaded });
    const named = await keysOf(uploaded);
    const interrupted = hashOf();
    const oldOrphan = await plantChunk(interrupted);
    const unnamed = await plantChunk(uploaded);
    await sleep(GRACE_MS + 1500);
    const fresh = hashOf();
    const freshOrphan = await plantChunk(fresh);

    const report = await gc(a);
    expect(report.sharedOrphans).toMatchObject({ removed: 2, busy: [] });
    expect(report.sharedOrphans?.freedBytes).toBeGreaterThanOrEqual(2 * 4096);
    expect(await keysOf(interrupted)).toEqual([]);
    expect(await keysOf(uploaded)).toEqual(named);
    expect(named).not.toContain(unnamed);
    expect(await keysOf(fresh)).toEqual([freshOrphan]);
    expect(await store().head(oldOrphan)).toBeNull();
    // Every named chunk is still there: another node fetches and verifies the whole checkpoint.
    expect(await b.steps.fetchCheckpoint({ hash: uploaded })).toMatchObject({ source: 'shared-store' });
  });

  it('keeps the orphans of a checkpoint while an upload of it runs, and sweeps them once it has ended', async () => {
    const hash = hashOf();
    const orphan = await plantChunk(hash);
    await sleep(GRACE_MS + 1500);
    let finish: () => void = () => undefined;
    const running = underUploadClaim(store(), hash, b.config.nodeName, () => new Promise<void>((resolve) => (finish = resolve)));
    await expect.poll(async () => (await store().list(`uploads/${hash}/`)).length).toBe(1);

    const during = await gc(a);
    expect(during.sharedOrphans?.busy).toEqual([hash]);
    expect(await keysOf(hash)).toEqual([orphan]);

    finish();
    await running;
    expect(await store().list(`uploads/${hash}/`)).toEqual([]);
    expect((await gc(a)).sharedOrphans).toMatchObject({ removed: 1, busy: [] });
    expect(await keysOf(hash)).toEqual([]);
  });

  it('makes an upload that meets a sweep in progress wait (retryable SharedStoreBusy), then upload every chunk afresh', async () => {
    const hash = hashOf();
    const manifest = await commitFake(a, hash, fakeImages());
    expect(await beginSweep(store(), hash, b.config.nodeName)).toBe(true);
    await expect(a.steps.uploadCheckpoint({ hash })).rejects.toMatchObject({ type: 'SharedStoreBusy', nonRetryable: false });
    expect(await keysOf(hash)).toEqual([]);
    await endSweep(store(), hash);
    expect(await a.steps.uploadCheckpoint({ hash })).toMatchObject({ uploaded: true, uploadedBytes: manifest.totalBytes });
    expect(await store().list(`uploads/${hash}/`)).toEqual([]);
  });
});

describe('gc removes the partial writes a killed writer left in a shared directory', () => {
  it('removes .tmp/ entries older than the grace without following a link, and keeps a fresh one (a put in flight)', async () => {
    const a = await stores.node('tmp-a', 'directory');
    const tmp = path.join(stores.sharedDir, '.tmp');
    await mkdir(tmp, { recursive: true });
    const old = Date.now() / 1000 - (2 * GRACE_MS) / 1000;
    await writeFile(path.join(tmp, 'killed-put'), randomBytes(8192));
    await utimes(path.join(tmp, 'killed-put'), old, old);
    const outside = path.join(stores.sharedDir, '..', `outside-${randomBytes(4).toString('hex')}`);
    await writeFile(outside, 'not the store’s');
    await symlink(outside, path.join(tmp, 'planted-link'));
    await lutimes(path.join(tmp, 'planted-link'), old, old);
    await writeFile(path.join(tmp, 'put-in-flight'), randomBytes(4096));

    const report = (await activity.run(garbageActivities(a.layout, { minAgeMs: 0, config: a.config }).collectGarbage, {
      tmpMaxAgeMs: GRACE_MS,
      runMaxAgeMs: GRACE_MS,
    })) as GarbageReport;
    expect(report.sharedOrphans?.leftovers).toEqual({ removed: 2, freedBytes: 8192 });
    expect((await readdir(tmp)).sort()).toEqual(['put-in-flight']);
    expect(await readFile(outside, 'utf8')).toBe('not the store’s');
    await rm(outside);
  });
});

describe('gc aborts the multipart uploads a killed agent left in S3', () => {
  it('aborts one started before the grace and keeps one just started (an upload in flight), counting its parts', async () => {
    const a = await stores.node('mp-a', 's3');
    const store = openSharedStore(a.config, a.layout)?.store as NonNullable<ReturnType<typeof openSharedStore>>['store'];
    const client = stores.s3.client();
    const bucket = stores.s3.bucket;
    const start = async (key: string) => {
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: randomBytes(5 << 20) }));
      return UploadId as string;
    };
    const uploadsBelow = async () =>
      ((await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: store.prefix }))).Uploads ?? []).map((u) => u.UploadId);
    const gc = async () =>
      (await activity.run(garbageActivities(a.layout, { minAgeMs: 0, config: a.config }).collectGarbage, {
        tmpMaxAgeMs: GRACE_MS,
        runMaxAgeMs: GRACE_MS,
      })) as GarbageReport;

    const killed = await start(`${store.prefix}checkpoints/${hashOf()}/chunks/${'a'.repeat(64)}`);
    expect((await gc()).sharedOrphans?.leftovers).toEqual({ removed: 0, freedBytes: 0 });
    await sleep(GRACE_MS + 1500);
    const inFlightKey = `${store.prefix}checkpoints/${hashOf()}/chunks/${'b'.repeat(64)}`;
    const inFlight = await start(inFlightKey);
    expect((await gc()).sharedOrphans?.leftovers).toEqual({ removed: 1, freedBytes: 5 << 20 });
    const left = await uploadsBelow();
    expect(left).toEqual([inFlight]);
    expect(left).not.toContain(killed);
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: inFlightKey, UploadId: inFlight }));
  });
});
