import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCommitted } from '../../activities/node/store/manifest.js';
import { commitFake, fakeImages, nodeEnv, sharedKeyFile, type TestNode, testNode } from '../shared-store/fixtures.js';
import { type S3Server, startS3Server } from '../support/s3-server.js';

// A restore placed by the scheduler fetches while its placeholder starts: the kubelet may have made
// the placeholder's subPath mount point, <root>/<hash>, as an empty directory by then, and the pod
// sees that directory (its inode), not one renamed over it. Real S3 (SeaweedFS), real files.
let s3: S3Server;
let keyFile: string;
const nodes: TestNode[] = [];

beforeAll(async () => {
  s3 = await startS3Server();
  keyFile = await sharedKeyFile();
});

afterAll(async () => {
  for (const n of nodes) await rm(n.root, { recursive: true, force: true });
  if (keyFile) await rm(path.dirname(keyFile), { recursive: true, force: true });
  await s3?.stop();
});

describe('a fetch beside a starting placeholder', () => {
  it('fills the placeholder’s empty mount point in place, the marker last, so the pod sees the checkpoint', async () => {
    const a = await testNode('node-a', keyFile, nodeEnv(s3));
    const b = await testNode('node-b', keyFile, nodeEnv(s3));
    nodes.push(a, b);
    const hash = `p-${randomBytes(5).toString('hex')}`;
    const files = fakeImages();
    const manifest = await commitFake(a, hash, files);
    await a.steps.uploadCheckpoint({ hash });

    // As the kubelet makes a missing subPath before it starts the container.
    await mkdir(path.join(b.root, hash), { mode: 0o750 });
    const mountPoint = await stat(path.join(b.root, hash));
    expect(await b.steps.fetchCheckpoint({ hash })).toMatchObject({ source: 'shared-store' });

    const after = await stat(path.join(b.root, hash));
    expect(after.ino).toBe(mountPoint.ino);
    expect(after.mode & 0o777).not.toBe(0o750);
    expect(await readCommitted(b.layout, hash)).toEqual(manifest);
    for (const [rel, bytes] of Object.entries(files)) expect((await readFile(path.join(b.root, hash, rel))).equals(bytes)).toBe(true);
    expect(await b.steps.fetchCheckpoint({ hash })).toMatchObject({ source: 'cache', fetchedBytes: 0 });
  });
});
