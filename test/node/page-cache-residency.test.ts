import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, readSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ChunkQueue, digestChunks, verifyThreads } from '../../activities/node/store/chunk-digests.js';
import { FADV_DONTNEED, fadvise } from '../../activities/node/store/file-advice.js';
import { openResidencyProbe, pageCacheShare } from '../../activities/node/store/page-cache-residency.js';

let root: string;

beforeAll(async () => {
  // On disk (not tmpfs), so the page cache can drop the files' pages.
  root = await mkdtemp(path.join('/var/tmp', 'torpor-residency-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function writeSynced(name: string, bytes: number): Promise<string> {
  const file = path.join(root, name);
  await writeFile(file, randomBytes(bytes));
  const fd = openSync(file, 'r');
  fsyncSync(fd);
  closeSync(fd);
  return file;
}

function drop(file: string, ranges: Array<[offset: number, length: number]>): void {
  const fd = openSync(file, 'r');
  try {
    for (const [offset, length] of ranges) expect(fadvise()?.(fd, offset, length, FADV_DONTNEED)).toBe(0);
  } finally {
    closeSync(fd);
  }
}

/** The kernel's own count (util-linux fincore), as a share of the file's bytes. */
async function fincoreShare(file: string, bytes: number): Promise<number> {
  const { stdout } = await execa('fincore', ['--bytes', '--noheadings', '--output', 'RES', file]);
  return Number(stdout.trim()) / bytes;
}

describe('how much of a checkpoint the page cache holds (mincore through koffi)', () => {
  it('tells a cached file from a dropped one and a half-dropped one, as fincore counts them', async () => {
    const size = 8 << 20;
    const file = await writeSynced('small.img', size);
    readFileSync(file);
    expect(pageCacheShare(root, ['small.img'])).toBe(1);
    drop(file, [[0, size]]);
    expect(await fincoreShare(file, size)).toBe(0);
    expect(pageCacheShare(root, ['small.img'])).toBe(0);
    readFileSync(file);
    drop(file, [[0, size / 2]]);
    expect(pageCacheShare(root, ['small.img'])).toBeCloseTo(await fincoreShare(file, size), 2);
    expect(pageCacheShare(root, ['small.img'])).toBeCloseTo(0.5, 1);
  });

  it('estimates a large file from a sample of windows, weighting files by their size', async () => {
    const size = 96 << 20;
    const big = await writeSynced('pages-1.img', size);
    const small = await writeSynced('core-1.img', 1 << 20);
    readFileSync(big);
    readFileSync(small);
    // Every other 4 MiB dropped: the sample must see the holes, not just the file's first pages.
    drop(
      big,
      Array.from({ length: 12 }, (_, i): [number, number] => [i * (8 << 20), 4 << 20]),
    );
    const kernel = await fincoreShare(big, size);
    expect(kernel).toBeCloseTo(0.5, 1);
    const both = pageCacheShare(root, ['pages-1.img', 'core-1.img', 'not-there.img']) as number;
    expect(Math.abs(both - (kernel * size + (1 << 20)) / (size + (1 << 20)))).toBeLessThan(0.05);
  });

  it('has no answer for files that are all empty or missing', async () => {
    await writeFile(path.join(root, 'empty.img'), '');
    expect(pageCacheShare(root, ['empty.img', 'missing.img'])).toBeUndefined();
  });
});

describe('lanes that follow another reader through the page cache', () => {
  it('asks the kernel, range by range, what a reader has brought in', async () => {
    const mib = 1 << 20;
    const file = await writeSynced('follow.img', 8 * mib);
    drop(file, [[0, 8 * mib]]);
    const fd = openSync(file, 'r');
    readSync(fd, Buffer.alloc(2 * mib), 0, 2 * mib, 4 * mib);
    closeSync(fd);
    // What the kernel read ahead around the read, dropped again.
    drop(file, [
      [0, 4 * mib],
      [6 * mib, 2 * mib],
    ]);
    const probe = openResidencyProbe([file, path.join(root, 'missing.img')]);
    expect(probe).toBeDefined();
    try {
      expect(probe?.cached(0, 4 * mib, 2 * mib)).toBe(true);
      expect(probe?.cached(0, 0, mib)).toBe(false);
      expect(probe?.cached(0, 6 * mib, 2 * mib)).toBe(false);
      // Half read: its last page is not cached.
      expect(probe?.cached(0, 5 * mib, 2 * mib)).toBe(false);
      expect(probe?.cached(0, 7 * mib, 2 * mib)).toBe(false);
      expect(probe?.cached(1, 0, mib)).toBe(false);
    } finally {
      probe?.close();
    }
  });

  it('takes cached chunks first, then the rest in order, each once', () => {
    const cached = new Set([5, 6, 2]);
    const queue = new ChunkQueue(8, (i) => cached.has(i));
    const order: number[] = [];
    for (let i = queue.take(); i !== undefined; i = queue.take()) order.push(i);
    expect(order).toEqual([2, 5, 6, 0, 1, 3, 4, 7]);
    expect(queue.remaining).toBe(0);
    // The search goes on from the last cached one found, wraps around, and asks a bounded number.
    const wrapped = new ChunkQueue(8, (i) => i === 1 || i === 6);
    expect([wrapped.take(), wrapped.take(), wrapped.take()]).toEqual([1, 6, 0]);
    const asked: number[] = [];
    const bounded = new ChunkQueue(
      10,
      (i) => {
        asked.push(i);
        return i === 8;
      },
      3,
    );
    expect(bounded.take()).toBe(0);
    expect(asked).toEqual([0, 1, 2]);
    const plain = new ChunkQueue(3);
    expect([plain.take(), plain.take(), plain.take(), plain.take()]).toEqual([0, 1, 2, undefined]);
  });

  it('hashes every chunk to the same digests whichever order the page cache gives', async () => {
    const mib = 1 << 20;
    const file = await writeSynced('follow-digests.img', 9 * mib + 123);
    const plain = await digestChunks(root, ['follow-digests.img'], () => undefined, { chunkBytes: mib, lanes: 2 });
    drop(file, [[0, 9 * mib + 123]]);
    const fd = openSync(file, 'r');
    readSync(fd, Buffer.alloc(3 * mib), 0, 3 * mib, 6 * mib);
    closeSync(fd);
    drop(file, [[0, 6 * mib]]);
    let bytes = 0;
    const followed = await digestChunks(
      root,
      ['follow-digests.img'],
      (n) => {
        bytes += n;
      },
      { chunkBytes: mib, lanes: 2, followPageCache: true },
    );
    expect(followed).toEqual(plain);
    expect(followed[0]?.chunkSha256).toHaveLength(10);
    expect(bytes).toBe(9 * mib + 123);
  });
});

describe('verification lanes beside a CRIU restore', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('keeps a few lanes from a cold page cache and takes every core when the checkpoint is cached', () => {
    vi.stubEnv('TORPOR_VERIFY_THREADS', '');
    expect(verifyThreads(undefined, 16)).toBe(4);
    expect(verifyThreads(0, 16)).toBe(4);
    expect(verifyThreads(0.5, 16)).toBe(4);
    expect(verifyThreads(0.95, 16)).toBe(16);
    expect(verifyThreads(1, 2)).toBe(2);
    expect(verifyThreads(0, 2)).toBe(2);
  });

  it('takes TORPOR_VERIFY_THREADS either way', () => {
    vi.stubEnv('TORPOR_VERIFY_THREADS', '6');
    expect(verifyThreads(0, 16)).toBe(6);
    expect(verifyThreads(1, 16)).toBe(6);
  });
});
