import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULT_READS, digestChunks, PLAIN_READS, type ReadStrategy } from '../../activities/node/store/chunk-digests.js';
import { adviseWillNeed, FADV_DONTNEED, fadvise, koffiEntry } from '../../activities/node/store/file-advice.js';

let root: string;

beforeAll(async () => {
  // On disk (not tmpfs), so the page cache can drop the file's pages and read them back.
  root = await mkdtemp(path.join('/var/tmp', 'torpor-read-ahead-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function residentBytes(file: string): Promise<number> {
  const { stdout } = await execa('fincore', ['--bytes', '--noheadings', '--output', 'RES', file]);
  return Number(stdout.trim());
}

async function writeSynced(file: string, data: Buffer): Promise<void> {
  await writeFile(file, data);
  const fd = openSync(file, 'r');
  fsyncSync(fd);
  closeSync(fd);
}

describe('reading ahead for the verification', () => {
  it('binds posix_fadvise, and the workers advice brings a cold range into the page cache with no read', async () => {
    expect(koffiEntry()).toMatch(/koffi/);
    const advise = fadvise();
    expect(advise).toBeDefined();
    const file = path.join(root, 'cold.img');
    const size = 8 << 20;
    await writeSynced(file, randomBytes(size));
    const fd = openSync(file, 'r');
    try {
      expect(advise?.(fd, 0, 0, FADV_DONTNEED)).toBe(0);
      expect(await residentBytes(file)).toBe(0);
      adviseWillNeed(advise, fd, 0, size);
      await vi.waitFor(async () => expect(await residentBytes(file)).toBe(size), { timeout: 20_000, interval: 50 });
    } finally {
      closeSync(fd);
    }
  });

  it('hashes every chunk the same whatever the reads, the short last one included; a flipped byte changes only its chunk', async () => {
    const chunk = 1 << 20;
    const data = randomBytes(3 * chunk + 12_345);
    const file = path.join(root, 'pages-1.img');
    await writeSynced(file, data);
    const expected = [0, 1, 2, 3].map((i) =>
      createHash('sha256')
        .update(data.subarray(i * chunk, (i + 1) * chunk))
        .digest('hex'),
    );
    const odd: ReadStrategy = { blockBytes: 65_539, aheadBytes: 700_001 };
    for (const reads of [PLAIN_READS, DEFAULT_READS, odd]) {
      const [digested] = await digestChunks(root, ['pages-1.img'], () => undefined, { chunkBytes: chunk, lanes: 2, reads });
      expect(digested?.chunkSha256).toEqual(expected);
    }
    data[data.length - 1] = (data.at(-1) as number) ^ 1;
    await writeSynced(file, data);
    const [flipped] = await digestChunks(root, ['pages-1.img'], () => undefined, { chunkBytes: chunk, lanes: 2, reads: DEFAULT_READS });
    expect(flipped?.chunkSha256?.slice(0, 3)).toEqual(expected.slice(0, 3));
    expect(flipped?.chunkSha256?.[3]).not.toBe(expected[3]);
  });

  it('hashes every chunk once and right when lanes join part-way (a restore widens once CRIU holds the tree)', async () => {
    const chunk = 256 << 10;
    const data = randomBytes(40 * chunk + 777);
    await writeSynced(path.join(root, 'pages-2.img'), data);
    const expected = Array.from({ length: 41 }, (_, i) =>
      createHash('sha256')
        .update(data.subarray(i * chunk, (i + 1) * chunk))
        .digest('hex'),
    );
    let widen = (_: number) => undefined as unknown;
    const widenTo = new Promise<number>((resolve) => {
      widen = resolve;
    });
    let hashed = 0;
    const onBytes = (n: number) => {
      hashed += n;
      if (hashed >= 3 * chunk) widen(6);
    };
    const [digested] = await digestChunks(root, ['pages-2.img'], onBytes, { chunkBytes: chunk, lanes: 1, reads: DEFAULT_READS, widenTo });
    expect(digested?.chunkSha256).toEqual(expected);
    expect(hashed).toBe(data.length);
  });
});
