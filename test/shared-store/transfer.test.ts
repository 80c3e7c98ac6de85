import { randomBytes } from 'node:crypto';
import { readdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCommitted } from '../../activities/node/store/manifest.js';
import { type S3Server, startS3Server } from '../support/s3-server.js';
import { CHUNK, commitFake, fakeImages, nodeEnv, sharedKeyFile, type TestNode, testNode } from './fixtures.js';

let s3: S3Server;
let keyFile: string;
const nodes: TestNode[] = [];
const hashOf = () => `t-${randomBytes(5).toString('hex')}`;

async function node(name: string, env = nodeEnv(s3), overrides = {}): Promise<TestNode> {
  const n = await testNode(name, keyFile, env, overrides);
  nodes.push(n);
  return n;
}

async function objectKeys(hash: string): Promise<string[]> {
  const out = await s3.client().send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `checkpoints/${hash}/` }));
  return (out.Contents ?? []).map((o) => o.Key as string).sort();
}

/** A checkpoint on node A, uploaded; returns A, its files and the manifest. */
async function uploaded() {
  const a = await node('node-a');
  const hash = hashOf();
  const files = fakeImages();
  const manifest = await commitFake(a, hash, files);
  const result = await a.steps.uploadCheckpoint({ hash });
  return { a, hash, files, manifest, result };
}

async function chunkObjectKey(hash: string, sha256: string) {
  return `checkpoints/${hash}/chunks/${sha256}`;
}

beforeAll(async () => {
  s3 = await startS3Server();
  keyFile = await sharedKeyFile();
});

afterAll(async () => {
  for (const n of nodes) await rm(n.root, { recursive: true, force: true });
  await rm(path.dirname(keyFile), { recursive: true, force: true });
  await s3?.stop();
});

describe('upload to and fetch from a real S3 server (SeaweedFS)', () => {
  it('uploads every chunk as its own object and the manifest last; another node fetches exactly the local layout', async () => {
    const { hash, files, manifest, result } = await uploaded();
    expect(result).toMatchObject({ uploaded: true, skippedBytes: 0 });
    expect(result.uploadedBytes).toBe(manifest.totalBytes);
    const keys = await objectKeys(hash);
    expect(keys).toContain(`checkpoints/${hash}/manifest.json`);
    // 4 chunks of pages, core, empty, log: every distinct chunk once.
    expect(keys.filter((k) => k.includes('/chunks/'))).toHaveLength(new Set(manifest.files.flatMap((f) => f.chunkSha256)).size);

    const b = await node('node-b');
    const fetched = await b.steps.fetchCheckpoint({ hash });
    expect(fetched).toMatchObject({ source: 'shared-store', fetchedBytes: manifest.totalBytes, keptBytes: 0, evicted: [] });
    expect(await readCommitted(b.layout, hash)).toEqual(manifest);
    for (const [rel, bytes] of Object.entries(files)) expect((await readFile(path.join(b.root, hash, rel))).equals(bytes)).toBe(true);
    expect(await readdir(b.layout.tmpRoot()).catch(() => [])).toEqual([]);
    expect(await b.steps.fetchCheckpoint({ hash })).toMatchObject({ source: 'cache', fetchedBytes: 0 });
  });

  it('sends nothing twice: an upload of a shared checkpoint is a no-op, and one retried before its manifest skips the chunks there', async () => {
    const { a, hash, manifest } = await uploaded();
    expect(await a.steps.uploadCheckpoint({ hash })).toMatchObject({ uploaded: false, uploadedBytes: 0 });
    await s3.client().send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: `checkpoints/${hash}/manifest.json` }));
    const again = await a.steps.uploadCheckpoint({ hash });
    expect(again).toMatchObject({ uploaded: true, uploadedBytes: 0 });
    expect(again.skippedBytes).toBeGreaterThanOrEqual(manifest.totalBytes - CHUNK);
  });

  it('uploads a chunk of TORPOR_S3_MULTIPART_BYTES or more in parts, and another node fetches it verified', async () => {
    const env = nodeEnv(s3, { TORPOR_S3_MULTIPART_BYTES: String(6 * CHUNK) });
    const a = await node('node-a', env);
    const hash = hashOf();
    const bigChunk = 20 * CHUNK;
    const files = { 'images/pages-1.img': randomBytes(bigChunk + 3 * CHUNK) };
    const manifest = await commitFake(a, hash, files, bigChunk);
    expect(await a.steps.uploadCheckpoint({ hash })).toMatchObject({ uploaded: true, uploadedBytes: manifest.totalBytes });
    const [big, small] = manifest.files[0]?.chunkSha256 ?? [];
    const etag = async (sha256: string | undefined) =>
      (await s3.client().send(new HeadObjectCommand({ Bucket: s3.bucket, Key: await chunkObjectKey(hash, sha256 ?? '') }))).ETag;
    // A multipart object's ETag ends in "-<number of parts>": 20 MiB in 8 MiB parts; the 3 MiB chunk went in one PUT.
    expect(await etag(big)).toMatch(/-3"?$/);
    expect(await etag(small)).not.toMatch(/-\d+"?$/);
    const b = await node('node-b', env);
    expect(await b.steps.fetchCheckpoint({ hash })).toMatchObject({ source: 'shared-store', fetchedBytes: manifest.totalBytes });
    expect((await readFile(path.join(b.root, hash, 'images/pages-1.img'))).equals(files['images/pages-1.img'])).toBe(true);
  });

  it('keeps a checkpoint whose manifest object is missing invisible: CheckpointNotFound, nothing in the cache', async () => {
    const { hash } = await uploaded();
    await s3.client().send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: `checkpoints/${hash}/manifest.json` }));
    const b = await node('node-b');
    await expect(b.steps.fetchCheckpoint({ hash })).rejects.toMatchObject({ type: 'CheckpointNotFound', nonRetryable: true });
    expect(await readdir(b.root)).not.toContain(hash);
  });

  it('catches a flipped byte in one chunk object: CheckpointCorrupt naming file and chunk, nothing committed', async () => {
    const { hash, manifest } = await uploaded();
    const pages = manifest.files.find((f) => f.path === 'images/pages-1.img');
    const key = await chunkObjectKey(hash, pages?.chunkSha256?.[2] as string);
    const got = await s3.client().send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    const bytes = Buffer.from(await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
    bytes[1000] = (bytes[1000] as number) ^ 0xff;
    await s3.client().send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: bytes, Metadata: got.Metadata }));
    const b = await node('node-b');
    const failure = await b.steps.fetchCheckpoint({ hash }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({
      type: 'CheckpointCorrupt',
      nonRetryable: true,
      message: expect.stringContaining('images/pages-1.img chunk 2'),
    });
    expect(await readCommitted(b.layout, hash)).toBeNull();
  });

  it('refuses a checkpoint with a missing chunk object, and one whose manifest was edited in the store', async () => {
    const { hash, manifest } = await uploaded();
    const core = manifest.files.find((f) => f.path === 'images/core-1.img');
    await s3
      .client()
      .send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: await chunkObjectKey(hash, core?.chunkSha256?.[0] as string) }));
    const b = await node('node-b');
    await expect(b.steps.fetchCheckpoint({ hash })).rejects.toMatchObject({
      type: 'CheckpointCorrupt',
      message: expect.stringContaining('lacks'),
    });

    const edited = await uploaded();
    const key = `checkpoints/${edited.hash}/manifest.json`;
    const got = await s3.client().send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    const text = (await (got.Body as { transformToString(): Promise<string> }).transformToString()).replace('"pid": 1', '"pid": 2');
    await s3.client().send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: text, Metadata: got.Metadata }));
    await expect(b.steps.fetchCheckpoint({ hash: edited.hash })).rejects.toMatchObject({
      type: 'CheckpointCorrupt',
      message: expect.stringContaining('MAC'),
    });
  });

  it('refuses wrong credentials and a missing bucket with clear non-retryable errors', async () => {
    const { hash } = await uploaded();
    const wrong = await node('node-w', nodeEnv(s3, { TORPOR_S3_SECRET_ACCESS_KEY: 'not-the-secret' }));
    await expect(wrong.steps.fetchCheckpoint({ hash })).rejects.toMatchObject({
      type: 'SharedStoreMisconfigured',
      nonRetryable: true,
      message: expect.stringContaining('credentials'),
    });
    const noBucket = await node('node-x', nodeEnv(s3, { TORPOR_S3_BUCKET: 'no-such-bucket' }));
    await expect(noBucket.steps.fetchCheckpoint({ hash })).rejects.toMatchObject({
      type: 'SharedStoreMisconfigured',
      message: expect.stringContaining('no-such-bucket'),
    });
    await commitFake(noBucket, hash, fakeImages());
    await expect(noBucket.steps.uploadCheckpoint({ hash })).rejects.toMatchObject({ type: 'SharedStoreMisconfigured', nonRetryable: true });
  });

  it('fails retryably while the store is down and completes once it is back (Temporal retries the step)', async () => {
    const { hash, manifest } = await uploaded();
    const b = await node('node-b');
    await s3.pause();
    try {
      const failure = await b.steps.fetchCheckpoint({ hash }).catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(Error);
      expect(failure).not.toBeInstanceOf(ApplicationFailure);
    } finally {
      await s3.start();
    }
    expect(await b.steps.fetchCheckpoint({ hash })).toMatchObject({ source: 'shared-store', fetchedBytes: manifest.totalBytes });
  });

  it('survives the store going down mid-download: the retry keeps the verified chunks and fetches fewer bytes', async () => {
    const a = await node('node-a');
    const hash = hashOf();
    const manifest = await commitFake(a, hash, { 'images/pages-1.img': randomBytes(64 * CHUNK) });
    await a.steps.uploadCheckpoint({ hash });
    const b = await node('node-b', nodeEnv(s3, { TORPOR_S3_PARALLEL: '1' }));
    const first = b.steps.fetchCheckpoint({ hash }).catch((err: unknown) => err);
    const pages = path.join(b.layout.fetchDir(hash), 'images/pages-1.img');
    // Stopped once 8 of the 64 chunks are on disk (allocated blocks: the file is sparse until written).
    for (let written = 0; written < 8 * CHUNK; ) written = ((await stat(pages).catch(() => null))?.blocks ?? 0) * 512;
    await s3.pause();
    await s3.start();
    const failure = await first;
    expect(failure).toBeInstanceOf(Error);
    expect(failure).not.toBeInstanceOf(ApplicationFailure);
    const retried = await b.steps.fetchCheckpoint({ hash });
    expect(retried.source).toBe('shared-store');
    expect(retried.keptBytes).toBeGreaterThanOrEqual(7 * CHUNK);
    expect(retried.fetchedBytes).toBeLessThan(manifest.totalBytes);
    expect(retried.fetchedBytes + retried.keptBytes).toBe(manifest.totalBytes);
    expect(await readCommitted(b.layout, hash)).toEqual(manifest);
  });

  it('resumes an interrupted download: verified chunks are kept, only damaged or missing ones are fetched again', async () => {
    const { hash, files, manifest } = await uploaded();
    const b = await node('node-b');
    await b.steps.fetchCheckpoint({ hash });
    // What a kill leaves: the fetch directory, no manifest, one chunk half-written, one file not begun.
    const fetchDir = b.layout.fetchDir(hash);
    await rename(b.layout.checkpointDir(hash), fetchDir);
    for (const f of ['manifest.json', 'manifest.hmac', 'checkpoint.done']) await rm(path.join(fetchDir, f), { force: true });
    const pages = path.join(fetchDir, 'images/pages-1.img');
    const bytes = await readFile(pages);
    await writeFile(pages, Buffer.concat([bytes.subarray(0, CHUNK + 100), Buffer.alloc(bytes.length - CHUNK - 100)]));
    await rm(path.join(fetchDir, 'images/core-1.img'));
    await truncate(path.join(fetchDir, 'logs/dump.log'), 0);

    const resumed = await b.steps.fetchCheckpoint({ hash });
    const refetched = 3 * CHUNK + 12345 - CHUNK + 700 + 9; // pages chunks 1-3, core, the log
    expect(resumed).toMatchObject({ source: 'shared-store', fetchedBytes: refetched, keptBytes: manifest.totalBytes - refetched });
    expect(await readCommitted(b.layout, hash)).toEqual(manifest);
    for (const [rel, want] of Object.entries(files)) expect((await readFile(path.join(b.root, hash, rel))).equals(want)).toBe(true);
  });
});
