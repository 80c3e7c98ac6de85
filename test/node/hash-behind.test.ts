import { createHash } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { trustedPrehashed, withHashBehind } from '../../activities/node/store/hash-behind.js';

// A real writer appending to a real file, as CRIU writes a pages image, and the real hashing workers.
const CHUNK = 1 << 20;
let staging: string;
let images: string;

beforeEach(async () => {
  staging = await mkdtemp(path.join(os.tmpdir(), 'torpor-hash-behind-'));
  images = path.join(staging, 'images');
  await mkdir(images);
});
afterEach(() => rm(staging, { recursive: true, force: true }));

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** 5.5 chunks of distinct bytes, appended one chunk every 300 ms. */
async function writeSlowly(file: string): Promise<void> {
  for (let i = 0; i < 6; i++) {
    const piece = Buffer.alloc(i === 5 ? CHUNK / 2 : CHUNK, i + 1);
    await appendFile(file, piece);
    await sleep(300);
  }
}

describe('hashing behind the writer', () => {
  it('hashes each finished chunk while the file is written, and never the unfinished tail', async () => {
    const file = path.join(images, 'pages-1.img');
    const { prehashed } = await withHashBehind(staging, images, CHUNK, () => writeSlowly(file), 2);
    const bytes = await readFile(file);
    const [hashed] = prehashed?.files ?? [];
    expect(hashed?.path).toBe('images/pages-1.img');
    expect(hashed?.sizeBytes).toBe(bytes.length);
    // The last whole chunk may finish too late to be hashed before the writer ends; the half chunk never is.
    expect(hashed?.chunkSha256.length).toBeGreaterThanOrEqual(3);
    expect(hashed?.chunkSha256.length).toBeLessThanOrEqual(5);
    hashed?.chunkSha256.forEach((digest, i) => {
      expect(digest).toBe(sha256(bytes.subarray(i * CHUNK, (i + 1) * CHUNK)));
    });
    expect((await trustedPrehashed(staging, prehashed, CHUNK)).get('images/pages-1.img')).toEqual(hashed?.chunkSha256);
  });

  it('leaves nothing for the commit to trust once the file changed after the writer ended', async () => {
    const file = path.join(images, 'pages-1.img');
    const { prehashed } = await withHashBehind(staging, images, CHUNK, () => writeSlowly(file), 2);
    expect(prehashed?.files).toHaveLength(1);
    await sleep(20);
    await appendFile(file, 'x');
    expect((await trustedPrehashed(staging, prehashed, CHUNK)).size).toBe(0);
  });

  it('does not trust a file replaced under the same name, even with the same bytes', async () => {
    const file = path.join(images, 'pages-1.img');
    const { prehashed } = await withHashBehind(staging, images, CHUNK, () => writeSlowly(file), 2);
    const bytes = await readFile(file);
    await rm(file);
    await writeFile(file, bytes);
    expect((await trustedPrehashed(staging, prehashed, CHUNK)).size).toBe(0);
  });

  it('hashes nothing with no lanes, and passes on the writer failure', async () => {
    const file = path.join(images, 'pages-1.img');
    expect((await withHashBehind(staging, images, CHUNK, () => writeSlowly(file), 0)).prehashed).toBeUndefined();
    await expect(withHashBehind(staging, images, CHUNK, () => Promise.reject(new Error('CRIU failed')), 2)).rejects.toThrow('CRIU failed');
  });
});
