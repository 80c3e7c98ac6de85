/**
 * How fast the restore's verification pass reads an image from a cold page cache (issue 16), beside
 * what the disk gives: dd with direct I/O (one stream, and several at once), a buffered dd, and the
 * digest pool (activities/node/store/chunk-digests.ts) with each read strategy and lane count, alone
 * and beside a sequential buffered reader standing in for CRIU. After each pass it reports how much
 * of the file the page cache holds (fincore), since CRIU must find the pages there.
 * The file's pages are evicted with POSIX_FADV_DONTNEED (checked with fincore), not a global
 * drop_caches, so the other users of the machine keep their cache.
 *   VERIFY_BENCH_FILE (made under .torpor/verify-read/ and deleted after), VERIFY_BENCH_GIB (3),
 *   VERIFY_BENCH_LANES (1,2,4), VERIFY_BENCH_REPEATS (4), VERIFY_BENCH_READ_AHEAD_KB (unset: the device's
 *   read_ahead_kb as it is; set: the device's read_ahead_kb for the run, put back after)
 */
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { CHUNK_BYTES, DEFAULT_READS, digestChunks, PLAIN_READS, type ReadStrategy } from '../activities/node/store/chunk-digests.js';
import { FADV_DONTNEED, fadvise } from '../activities/node/store/file-advice.js';

const DIR = fileURLToPath(new URL('../.torpor/verify-read/', import.meta.url));
const gib = Number(process.env.VERIFY_BENCH_GIB ?? 3);
const laneCounts = (process.env.VERIFY_BENCH_LANES ?? '1,2,4').split(',').map(Number);
const repeats = Number(process.env.VERIFY_BENCH_REPEATS ?? 4);

const STRATEGIES: Array<[string, ReadStrategy]> = [
  ['plain 4 MiB reads (before)', PLAIN_READS],
  ['WILLNEED 16 MiB ahead, 4 MiB reads', { blockBytes: 4 << 20, aheadBytes: 16 << 20 }],
  ['WILLNEED whole chunk, 4 MiB reads', { blockBytes: 4 << 20, aheadBytes: 64 << 20 }],
];

/** Resident bytes of `file` in the page cache, from fincore(1); NaN where fincore is missing (the GPU machine). */
async function residentBytes(file: string): Promise<number> {
  const run = await execa('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { reject: false });
  if (run.failed && (run.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return Number.NaN;
  if (run.failed) throw new Error(`fincore failed: ${run.stderr}`);
  return Number(run.stdout.trim());
}

/** Writes the file's dirty pages, then drops its pages from the page cache; fails if any stay. */
async function evict(file: string): Promise<void> {
  const fd = openSync(file, 'r');
  try {
    fsyncSync(fd);
    const advise = fadvise();
    if (advise === undefined || advise(fd, 0, 0, FADV_DONTNEED) !== 0) throw new Error('posix_fadvise is not available');
  } finally {
    closeSync(fd);
  }
  const left = await residentBytes(file);
  if (left > 0) throw new Error(`${left} bytes of ${file} stayed in the page cache`);
}

async function timed<T>(run: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await run();
  return { ms: performance.now() - t, value };
}

async function dd(file: string, args: string[]): Promise<number> {
  return (await timed(() => execa('dd', [`if=${file}`, 'of=/dev/null', ...args]))).ms;
}

/** `streams` direct-I/O dd readers, each over its own contiguous share of the file. */
async function ddDirect(file: string, bytes: number, streams: number): Promise<number> {
  const blocks = Math.floor(bytes / (4 << 20) / streams);
  const parts = Array.from({ length: streams }, (_, i) => dd(file, ['bs=4M', 'iflag=direct', `skip=${i * blocks}`, `count=${blocks}`]));
  return (await timed(() => Promise.all(parts))).ms;
}

async function makeFile(file: string, bytes: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  // Random bytes: nothing below the page cache may shortcut zeros.
  await execa('dd', ['if=/dev/urandom', `of=${file}`, 'bs=4M', `count=${bytes / (4 << 20)}`, 'conv=fsync']);
}

async function verifyPass(file: string, lanes: number, reads: ReadStrategy): Promise<number> {
  const { ms, value } = await timed(() =>
    digestChunks(path.dirname(file), [path.basename(file)], () => undefined, { chunkBytes: CHUNK_BYTES, lanes, reads }),
  );
  if (value[0]?.chunkSha256?.length !== Math.ceil((value[0]?.sizeBytes ?? 0) / CHUNK_BYTES)) throw new Error('a chunk was not hashed');
  return ms;
}

/** Samples (GB/s) of each row, printed as medians after all repeats: the disk here is shared and noisy. */
class Table {
  private readonly rows = new Map<string, number[][]>();
  constructor(private readonly header: string[]) {}
  add(label: string, values: number[]): void {
    this.rows.set(label, [...(this.rows.get(label) ?? []), values]);
  }
  print(): void {
    console.log(`\n| ${this.header.join(' | ')} | runs |\n|${'---|'.repeat(this.header.length + 1)}`);
    for (const [label, samples] of this.rows) {
      const cells = this.header.slice(1).map((_, i) => {
        const sorted = samples.map((s) => s[i] as number).sort((x, y) => x - y);
        const median = sorted[Math.floor(sorted.length / 2)] as number;
        return `${median.toFixed(2)} (${(sorted[0] as number).toFixed(2)}–${(sorted.at(-1) as number).toFixed(2)})`;
      });
      console.log(`| ${label} | ${cells.join(' | ')} | ${samples.length} |`);
    }
  }
}

const rate = (bytes: number, ms: number) => bytes / ms / 1e6;

async function diskRows(file: string, bytes: number, table: Table): Promise<void> {
  for (const streams of [1, 4]) {
    await evict(file);
    table.add(`dd direct I/O, bs=4M, ${streams} stream(s)`, [rate(bytes, await ddDirect(file, bytes, streams))]);
  }
  await evict(file);
  table.add('dd buffered, bs=4M, 1 stream', [rate(bytes, await dd(file, ['bs=4M']))]);
}

async function poolRows(file: string, bytes: number, table: Table): Promise<void> {
  for (const [name, reads] of STRATEGIES) {
    for (const lanes of laneCounts) {
      await evict(file);
      const ms = await verifyPass(file, lanes, reads);
      table.add(`${name}, ${lanes} lane(s)`, [rate(bytes, ms), (100 * (await residentBytes(file))) / bytes]);
    }
  }
}

/** The verification beside a buffered sequential reader of the same file (CRIU's part at restore). */
async function besideRows(file: string, bytes: number, table: Table): Promise<void> {
  for (const [name, reads] of STRATEGIES) {
    for (const lanes of laneCounts.filter((n) => n > 1)) {
      await evict(file);
      const t = performance.now();
      const [reader, verify] = await Promise.all([dd(file, ['bs=1M']), verifyPass(file, lanes, reads)]);
      table.add(`${name}, ${lanes} lanes`, [rate(bytes, verify), rate(bytes, reader), (performance.now() - t) / 1000]);
    }
  }
}

/** The device's read_ahead_kb, set to `kb` for the run when given; returns how to put it back. */
async function readAhead(file: string, kb: string | undefined): Promise<{ was: string; restore: () => Promise<void> }> {
  const device = (await execa('findmnt', ['-n', '-o', 'SOURCE', '--target', file], { reject: false })).stdout.trim();
  const knob = `/sys/block/${path.basename(device)}/queue/read_ahead_kb`;
  const was = device ? (await readFile(knob, 'utf8').catch(() => 'unknown')).trim() : 'unknown';
  if (was === 'unknown' && kb !== undefined) throw new Error(`cannot find read_ahead_kb for ${file} (device '${device}')`);
  if (kb === undefined) return { was, restore: async () => undefined };
  await writeFile(knob, kb);
  return { was, restore: () => writeFile(knob, was) };
}

async function main(): Promise<void> {
  const given = process.env.VERIFY_BENCH_FILE;
  const file = given ?? path.join(DIR, 'pages-1.img');
  if (given === undefined || !(await stat(given).catch(() => undefined))) await makeFile(file, gib * 2 ** 30);
  const ra = await readAhead(file, process.env.VERIFY_BENCH_READ_AHEAD_KB);
  try {
    const bytes = (await stat(file)).size;
    const kb = process.env.VERIFY_BENCH_READ_AHEAD_KB ?? ra.was;
    console.log(
      `${file}: ${(bytes / 1e9).toFixed(2)} GB, read_ahead_kb ${kb} (was ${ra.was}), 64 MiB chunks; default ${JSON.stringify(DEFAULT_READS)}`,
    );
    await verifyPass(file, Math.max(...laneCounts), PLAIN_READS); // starts the pool's workers
    const disk = new Table(['reader, cold cache', 'GB/s']);
    const pool = new Table(['verification, cold cache', 'GB/s', '% cached after']);
    const beside = new Table(['verification beside a buffered dd bs=1M, cold cache', 'verification GB/s', 'dd GB/s', 'both done, s']);
    for (let r = 0; r < repeats; r++) {
      await diskRows(file, bytes, disk);
      await poolRows(file, bytes, pool);
      await besideRows(file, bytes, beside);
    }
    for (const table of [disk, pool, beside]) table.print();
    const warm = await dd(file, ['bs=4M']);
    console.log(`\nsecond buffered read right after (page cache): ${rate(bytes, warm).toFixed(2)} GB/s`);
  } finally {
    await ra.restore();
    if (given === undefined) await rm(DIR, { recursive: true, force: true });
  }
}

await main();
