import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { startWriteback } from '../../activities/node/store/start-writeback.js';
import { withWriteBehind, writeBehindTuning } from '../../activities/node/store/write-behind.js';

describe('withWriteBehind (flushing a dump while CRIU writes it)', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'write-behind-'));
    dirs.push(dir);
    return dir;
  }

  it("returns the writer's result with its files intact while files come and go under the flusher", async () => {
    const dir = await tempDir();
    const result = await withWriteBehind(dir, async () => {
      for (let i = 0; i < 8; i++) {
        await writeFile(path.join(dir, `pages-${i}.img`), Buffer.alloc(1 << 20, i));
        if (i % 2 === 1) await rm(path.join(dir, `pages-${i - 1}.img`));
        await sleep(60);
      }
      return 'dumped';
    });
    expect(result).toBe('dumped');
    const kept = await readFile(path.join(dir, 'pages-7.img'));
    expect(kept.length).toBe(1 << 20);
    expect(kept.every((b) => b === 7)).toBe(true);
  });

  it("rethrows the writer's failure, and a directory that does not exist yet is no error", async () => {
    const missing = path.join(await tempDir(), 'not-yet');
    await expect(
      withWriteBehind(missing, async () => {
        await sleep(300);
        throw new Error('criu failed');
      }),
    ).rejects.toThrow('criu failed');
  });

  it('starts the writeback of a dirty file through sync_file_range, without waiting, and fails on a closed descriptor', async () => {
    const file = path.join(await tempDir(), 'pages-1.img');
    await writeFile(file, Buffer.alloc(8 << 20, 1));
    const handle = await open(file, 'r');
    const fd = handle.fd;
    try {
      const started = startWriteback(fd);
      expect(started).not.toBe(false);
      expect(await started).toBe(true);
    } finally {
      await handle.close();
    }
    expect(await startWriteback(fd)).toBe(false);
  });

  it('is tuned by TORPOR_WRITE_BEHIND_MS and TORPOR_WRITE_BEHIND_LAG_MIB, and refuses values that are not whole numbers in range', () => {
    expect(writeBehindTuning({})).toEqual({ intervalMs: 250, lagBytes: 64 << 20 });
    expect(writeBehindTuning({ TORPOR_WRITE_BEHIND_MS: '0', TORPOR_WRITE_BEHIND_LAG_MIB: '0' })).toEqual({ intervalMs: 0, lagBytes: 0 });
    expect(writeBehindTuning({ TORPOR_WRITE_BEHIND_MS: '1000', TORPOR_WRITE_BEHIND_LAG_MIB: '16' })).toEqual({
      intervalMs: 1000,
      lagBytes: 16 << 20,
    });
    expect(() => writeBehindTuning({ TORPOR_WRITE_BEHIND_MS: '-1' })).toThrow(
      "TORPOR_WRITE_BEHIND_MS must be an integer 0-60000 (got '-1')",
    );
    expect(() => writeBehindTuning({ TORPOR_WRITE_BEHIND_LAG_MIB: '1.5' })).toThrow(/TORPOR_WRITE_BEHIND_LAG_MIB must be an integer/);
  });

  it('with the interval 0 runs the writer alone and returns its result', async () => {
    const dir = await tempDir();
    const result = await withWriteBehind(
      dir,
      async () => {
        await writeFile(path.join(dir, 'pages-1.img'), Buffer.alloc(1 << 20, 3));
        return 'dumped';
      },
      { intervalMs: 0, lagBytes: 0 },
    );
    expect(result).toBe('dumped');
    expect((await readFile(path.join(dir, 'pages-1.img'))).length).toBe(1 << 20);
  });
});
