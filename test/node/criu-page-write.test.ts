import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { criuDumpArgs } from '../../activities/node/criu/args.js';
import { runCriu } from '../../activities/node/criu/runner.js';
import { type DumpHashing, hashWhileDumping, readCriuPageDigests } from '../../activities/node/store/criu-page-digests.js';

// Real CRIU (the set-up's build, with tools/criu-parallel/parallel-page-write.patch) dumping a real
// process: its pages images and the chunk digests CRIU writes beside them.
const CRIU = path.resolve('.torpor/bin/criu');
const CHUNK = 1 << 20;
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

let dir: string;
let workload: ChildProcess;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'torpor-page-write-'));
  // About 6 MiB of heap that is not zero (a string bash keeps), stopped so two dumps see the same
  // memory; in a session of its own (detached), as CRIU dumps a tree. On one CPU: the kernel writes
  // the CPU a task runs on into its rseq area, and CRIU's parasite runs in the task.
  workload = spawn('taskset', ['-c', '0', 'bash', '-c', 'x=$(head -c 6000000 /dev/zero | tr "\\0" a); kill -STOP $$; sleep 600'], {
    stdio: 'ignore',
    detached: true,
  });
  // Dumped only once it has stopped itself: before, its memory still changes.
  for (let i = 0; i < 200 && !/^\d+ \(.*\) T/.test(await readFile(`/proc/${workload.pid}/stat`, 'utf8')); i++) await sleep(50);
});
afterAll(async () => {
  workload.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

async function dump(
  name: string,
  writers: string,
  chunkBytes = CHUNK,
): Promise<{ hashing: DumpHashing; prehashed: Awaited<ReturnType<typeof hashWhileDumping>>['prehashed'] }> {
  const stagingDir = path.join(dir, name);
  const hashing: DumpHashing = {
    criuPath: CRIU,
    stagingDir,
    imagesDir: path.join(stagingDir, 'images'),
    digestsDir: path.join(stagingDir, 'logs', 'page-digests'),
    chunkBytes,
  };
  await mkdir(hashing.imagesDir, { recursive: true });
  // `close` leaves the process running (stopped, as it was).
  const network = { established: 'close', lock: 'nftables' } as const;
  const args = criuDumpArgs({ pid: workload.pid as number, imagesDir: hashing.imagesDir, workDir: stagingDir, network, extra: [] });
  const { value: run, prehashed } = await hashWhileDumping(
    hashing,
    (env) => runCriu(CRIU, args, { logFile: path.join(stagingDir, 'dump.log'), env }),
    { ...process.env, TORPOR_CRIU_PAGE_WRITERS: writers },
  );
  expect(run.excerpt).toBe('');
  expect(run.ok).toBe(true);
  return { hashing, prehashed };
}

describe("CRIU's parallel page write", () => {
  it('writes the same pages images as stock CRIU, and the digest of every chunk, the last shorter one too', async () => {
    const stock = await dump('stock', '0');
    const parallel = await dump('parallel', '2');
    const pages = (await readdir(parallel.hashing.imagesDir)).filter((f) => f.startsWith('pages-'));
    expect(pages.length).toBeGreaterThan(0);
    for (const name of pages) {
      const written = await readFile(path.join(parallel.hashing.imagesDir, name));
      expect(written.equals(await readFile(path.join(stock.hashing.imagesDir, name)))).toBe(true);
    }
    const [largest] = pages.sort((a, b) => b.length - a.length);
    const listed = parallel.prehashed?.files.find((f) => f.path === `images/${largest}`);
    const bytes = await readFile(path.join(parallel.hashing.imagesDir, largest as string));
    expect(bytes.length).toBeGreaterThan(5 * CHUNK);
    expect(listed?.chunkSha256).toEqual(
      Array.from({ length: Math.ceil(bytes.length / CHUNK) }, (_, i) => sha256(bytes.subarray(i * CHUNK, (i + 1) * CHUNK))),
    );
    expect(await readFile(path.join(parallel.hashing.stagingDir, 'dump.log'), 'utf8')).toMatch(/page-write: pages-\d+\.img: 2 writers/);
    // The lists went into the dump record; their directory does not stay to join the checkpoint.
    await expect(readdir(parallel.hashing.digestsDir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('writes as stock CRIU, listing nothing, when the writers cannot start', async () => {
    // A 1 TiB chunk: no buffer of that size can be mapped on this machine.
    const fallback = await dump('fallback', '2', 2 ** 40);
    const stock = path.join(dir, 'stock', 'images');
    const pages = (await readdir(fallback.hashing.imagesDir)).filter((f) => f.startsWith('pages-'));
    expect(pages.length).toBeGreaterThan(0);
    expect(pages).toEqual((await readdir(stock)).filter((f) => f.startsWith('pages-')));
    for (const name of pages) {
      const written = await readFile(path.join(fallback.hashing.imagesDir, name));
      expect(written.equals(await readFile(path.join(stock, name)))).toBe(true);
    }
    expect(fallback.prehashed).toBeUndefined();
    expect(await readFile(path.join(fallback.hashing.stagingDir, 'dump.log'), 'utf8')).toMatch(
      /page-write: pages-\d+\.img: writing pages as stock CRIU does/,
    );
  });

  it('leaves CRIU to write as stock when the chunk is not whole pages, hashing behind it instead', async () => {
    const chunk = CHUNK + 512;
    const odd = await dump('odd-chunk', '2', chunk);
    expect(await readFile(path.join(odd.hashing.stagingDir, 'dump.log'), 'utf8')).not.toMatch(/page-write:/);
    // Whatever the agent hashed behind CRIU (maybe nothing, so short a dump) is leading chunks, never the shorter last one.
    for (const file of odd.prehashed?.files ?? []) {
      const bytes = await readFile(path.join(odd.hashing.stagingDir, file.path));
      expect(file.chunkSha256.length * chunk).toBeLessThanOrEqual(bytes.length);
      file.chunkSha256.forEach((digest, i) => {
        expect(digest).toBe(sha256(bytes.subarray(i * chunk, (i + 1) * chunk)));
      });
    }
  });

  it('leaves out a list that does not describe its image whole', async () => {
    const hashing: DumpHashing = {
      criuPath: CRIU,
      stagingDir: dir,
      imagesDir: path.join(dir, 'lists', 'images'),
      digestsDir: path.join(dir, 'lists', 'digests'),
      chunkBytes: 4,
    };
    await mkdir(hashing.imagesDir, { recursive: true });
    await mkdir(hashing.digestsDir, { recursive: true });
    const d = (c: string) => c.repeat(64);
    const lists: Record<string, string> = {
      'pages-1.img': `chunk 4\n${d('a')}\n${d('b')}\n`, // whole: 5 bytes, two chunks
      'pages-2.img': `chunk 8\n${d('a')}\n`, // another chunk size
      'pages-3.img': `chunk 4\n${d('a')}\n`, // one digest short
      'pages-4.img': `chunk 4\n${d('a')}\n${'x'.repeat(64)}\n`, // not a digest
    };
    for (const [image, list] of Object.entries(lists)) {
      await writeFile(path.join(hashing.imagesDir, image), 'hello');
      await writeFile(path.join(hashing.digestsDir, `${image}.sha256`), list);
    }
    await writeFile(path.join(hashing.digestsDir, 'pages-9.img.sha256'), `chunk 4\n${d('a')}\n`); // no such image
    const files = await readCriuPageDigests(hashing);
    expect(files.map((f) => [f.path, f.sizeBytes, f.chunkSha256])).toEqual([['lists/images/pages-1.img', 5, [d('a'), d('b')]]]);
  });
});
