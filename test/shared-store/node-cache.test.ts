import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identify } from '../../activities/node/proc/identity.js';
import { writeRecord } from '../../activities/node/store/run-records.js';
import { type S3Server, startS3Server } from '../support/s3-server.js';
import { CHUNK, commitFake, nodeEnv, sharedKeyFile, type TestNode, testNode } from './fixtures.js';

let s3: S3Server;
let keyFile: string;
const nodes: TestNode[] = [];
const sleepers: Array<ReturnType<typeof spawn>> = [];

/** A checkpoint of `mib` MiB made on node A and uploaded to the shared store. */
async function sharedCheckpoint(a: TestNode, mib: number): Promise<string> {
  const hash = `t-${randomBytes(5).toString('hex')}`;
  await commitFake(a, hash, { 'images/pages-1.img': randomBytes(mib * CHUNK) });
  await a.steps.uploadCheckpoint({ hash });
  return hash;
}

async function cacheNode(maxMiB: number): Promise<TestNode> {
  const n = await testNode('node-c', keyFile, nodeEnv(s3, { TORPOR_NODE_CACHE_BYTES: String(maxMiB * CHUNK) }));
  nodes.push(n);
  return n;
}

const committed = async (n: TestNode) => (await readdir(n.root)).filter((e) => !e.startsWith('.')).sort();

beforeAll(async () => {
  s3 = await startS3Server();
  keyFile = await sharedKeyFile();
  nodes.push(await testNode('node-a', keyFile, nodeEnv(s3)));
});

afterAll(async () => {
  for (const p of sleepers) p.kill('SIGKILL');
  for (const n of nodes) await rm(n.root, { recursive: true, force: true });
  await rm(path.dirname(keyFile), { recursive: true, force: true });
  await s3?.stop();
});

describe('the node cache (TORPOR_NODE_CACHE_BYTES): LRU over checkpoints the shared store holds', () => {
  it('evicts the least recently used shared copy to make room for a fetch', async () => {
    const a = nodes[0] as TestNode;
    const [one, two, three] = [await sharedCheckpoint(a, 2), await sharedCheckpoint(a, 2), await sharedCheckpoint(a, 2)];
    const c = await cacheNode(5);
    await c.steps.fetchCheckpoint({ hash: one });
    await c.steps.fetchCheckpoint({ hash: two });
    // `one` used again: `two` is now the least recently used.
    await new Promise((r) => setTimeout(r, 20));
    expect(await c.steps.fetchCheckpoint({ hash: one })).toMatchObject({ source: 'cache' });
    const third = await c.steps.fetchCheckpoint({ hash: three });
    expect(third).toMatchObject({ source: 'shared-store', evicted: [two] });
    expect(await committed(c)).toEqual([one, three].sort());
  });

  it('never evicts a copy in use by a running restore, nor one never uploaded; refuses with NodeCacheFull naming sizes', async () => {
    const a = nodes[0] as TestNode;
    const [inUse, wanted] = [await sharedCheckpoint(a, 2), await sharedCheckpoint(a, 2)];
    const c = await cacheNode(5);
    await c.steps.fetchCheckpoint({ hash: inUse });
    const sleeper = spawn('sleep', ['600']);
    sleepers.push(sleeper);
    const id = await identify(sleeper.pid as number);
    await writeRecord(c.layout.restoreFiles(inUse, 'r1').record, { ...id, hash: inUse, restoreId: 'r1', logFile: '', criuMs: 0 });
    const localOnly = `t-${randomBytes(5).toString('hex')}`;
    await commitFake(c, localOnly, { 'images/pages-1.img': randomBytes(2 * CHUNK) });

    const failure = await c.steps.fetchCheckpoint({ hash: wanted }).catch((err: unknown) => err);
    expect(failure).toMatchObject({ type: 'NodeCacheFull', nonRetryable: true, message: expect.stringContaining('2.0 MiB') });
    expect(await committed(c)).toEqual([inUse, localOnly].sort());

    sleeper.kill('SIGKILL');
    await new Promise((r) => sleeper.once('exit', r));
    expect(await c.steps.fetchCheckpoint({ hash: wanted })).toMatchObject({ evicted: [inUse] });
    expect(await committed(c)).toEqual([localOnly, wanted].sort());
  });

  it('counts the bytes an interrupted fetch of another checkpoint left behind as used', async () => {
    const a = nodes[0] as TestNode;
    const [one, two, other] = [await sharedCheckpoint(a, 2), await sharedCheckpoint(a, 2), `t-${randomBytes(5).toString('hex')}`];
    const c = await cacheNode(5);
    await c.steps.fetchCheckpoint({ hash: one });
    const leftover = path.join(c.layout.fetchDir(other), 'images');
    await mkdir(leftover, { recursive: true });
    await writeFile(path.join(leftover, 'pages-1.img'), randomBytes(2 * CHUNK));
    // 2 MiB cached + 2 MiB left behind + 2 MiB wanted > 5 MiB: only counting the leftover makes this evict.
    expect(await c.steps.fetchCheckpoint({ hash: two })).toMatchObject({ source: 'shared-store', evicted: [one] });
  });
});
