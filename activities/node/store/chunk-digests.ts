import { stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ManifestFile } from '../../../contract/types.js';
import { wholeNumberFromEnv } from './env-tuning.js';
import { ADVISE_WILLNEED_SOURCE, BIND_FADVISE_SOURCE, koffiEntry } from './file-advice.js';
import { openResidencyProbe, pageCacheShare } from './page-cache-residency.js';

/** Files are hashed in chunks of this size, each on its own core: a restore verifies at storage speed. */
export const CHUNK_BYTES = 64 * 1024 * 1024;

/**
 * How a worker reads a chunk: the size of its blocking reads, and how far ahead of them it keeps the
 * kernel reading (POSIX_FADV_WILLNEED), whatever the device's read_ahead_kb; 0 leaves readahead to the kernel.
 */
export interface ReadStrategy {
  blockBytes: number;
  aheadBytes: number;
}

/** The reads before issue 16: 4 MiB blocks, the kernel's own readahead only. */
export const PLAIN_READS: ReadStrategy = { blockBytes: 4 << 20, aheadBytes: 0 };

/**
 * Each lane keeps 16 MiB of reads in flight while it hashes, so few lanes keep the disk busy whatever
 * read_ahead_kb is. Measured from a cold cache beside a sequential reader standing in for CRIU, 2 lanes:
 * 1.6-1.7 GB/s instead of 0.9-1.0 with plain reads (bench/results/verify-read.md).
 */
export const DEFAULT_READS: ReadStrategy = { blockBytes: 4 << 20, aheadBytes: 16 << 20 };

/** DEFAULT_READS, or TORPOR_VERIFY_READ_AHEAD_MIB's read-ahead per lane (0: the kernel's readahead only). */
export function readStrategy(env: NodeJS.ProcessEnv = process.env): ReadStrategy {
  const mib = wholeNumberFromEnv(env, 'TORPOR_VERIFY_READ_AHEAD_MIB', DEFAULT_READS.aheadBytes >> 20, 1024);
  return { blockBytes: DEFAULT_READS.blockBytes, aheadBytes: mib << 20 };
}

/**
 * A hashing worker: sha256 of one byte range of one file per message. Kept as source text (a
 * CommonJS eval worker) so it runs the same from TypeScript sources, from dist/ and from a bundle.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { openSync, readSync, closeSync } = require('node:fs');
const { createHash } = require('node:crypto');
let koffi;
try {
  koffi = workerData.koffi && require(workerData.koffi);
} catch {}
const fadvise = (${BIND_FADVISE_SOURCE})(koffi);
const adviseWillNeed = ${ADVISE_WILLNEED_SOURCE};
let block = Buffer.alloc(0);
function hashRange(fd, offset, length, blockBytes, aheadBytes) {
  if (block.length !== blockBytes) block = Buffer.allocUnsafe(blockBytes);
  const hash = createHash('sha256');
  const end = offset + length;
  let advised = offset;
  let done = 0;
  while (done < length) {
    const ahead = Math.min(end, offset + done + blockBytes + aheadBytes);
    if (aheadBytes > 0 && ahead > advised) {
      adviseWillNeed(fadvise, fd, advised, ahead - advised);
      advised = ahead;
    }
    const n = readSync(fd, block, 0, Math.min(block.length, length - done), offset + done);
    if (n === 0) break;
    hash.update(n === block.length ? block : block.subarray(0, n));
    done += n;
  }
  return { sha256: hash.digest('hex'), bytes: done };
}
parentPort.on('message', ({ id, file, offset, length, blockBytes, aheadBytes }) => {
  let fd;
  try {
    fd = openSync(file, 'r');
    parentPort.postMessage({ id, ...hashRange(fd, offset, length, blockBytes, aheadBytes) });
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message || err) });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
});
`;

interface ChunkTask extends ReadStrategy {
  file: string;
  offset: number;
  length: number;
}

export interface ChunkAnswer {
  id: number;
  sha256?: string;
  bytes?: number;
  error?: string;
}

/** Hashing workers, one per lane, created on first use and kept for the agent's life, unreferenced. */
class DigestPool {
  private readonly workers: Worker[] = [];
  private readonly waiting = new Map<number, (answer: ChunkAnswer) => void>();
  private readonly inFlight: number[] = [];
  private nextId = 0;

  private worker(lane: number): Worker {
    let worker = this.workers[lane];
    if (worker === undefined) {
      worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { koffi: koffiEntry() } });
      worker.on('message', (answer: ChunkAnswer) => {
        this.waiting.get(answer.id)?.(answer);
        this.waiting.delete(answer.id);
      });
      // An idle worker must not keep the agent (or a CLI, a test, the demo) from exiting.
      worker.unref();
      this.workers[lane] = worker;
    }
    return worker;
  }

  /** Hashes one chunk on the worker of `lane`; a lane has one chunk in flight at a time. */
  hash(lane: number, task: ChunkTask): Promise<ChunkAnswer> {
    const id = this.nextId++;
    const worker = this.worker(lane);
    // Referenced while a chunk is in flight on it (two verifications may share a lane's worker),
    // so the process waits for the answers.
    this.inFlight[lane] = (this.inFlight[lane] ?? 0) + 1;
    worker.ref();
    return new Promise<ChunkAnswer>((resolve) => {
      this.waiting.set(id, resolve);
      worker.postMessage({ id, ...task });
    }).finally(() => {
      this.inFlight[lane] = (this.inFlight[lane] ?? 1) - 1;
      if (this.inFlight[lane] === 0) worker.unref();
    });
  }
}

let pool: DigestPool | undefined;

function threadsFromEnv(name: string, fallback: number): number {
  const wanted = Number(process.env[name]);
  return Number.isInteger(wanted) && wanted > 0 ? wanted : fallback;
}

/** Hashing files that are in the page cache (a commit, right after CRIU wrote them): one worker per core (TORPOR_DIGEST_THREADS). */
export function digestThreads(): number {
  return threadsFromEnv('TORPOR_DIGEST_THREADS', os.availableParallelism());
}

/** At least this share of a checkpoint in the page cache counts as cached: its verification is then CPU-bound. */
export const CACHED_SHARE = 0.9;

/**
 * Lanes hashing beside a CRIU restore. From a cold page cache a few readers already keep the disk
 * busy, and more compete with CRIU for it (measured on the GPU machine: 16 made CRIU's restore 17.5 s
 * instead of 9.9 s with 4). With the checkpoint cached (a second replica on the node), hashing is
 * the limit: one lane per core (measured on an H100: with 4 lanes CRIU had placed 11.9 GB at 1.0 s
 * and waited for the verdict until 3.1 s). TORPOR_VERIFY_THREADS overrides both.
 */
export function verifyThreads(cachedShare?: number, cores = os.availableParallelism()): number {
  const cold = Math.min(4, cores);
  return threadsFromEnv('TORPOR_VERIFY_THREADS', cachedShare !== undefined && cachedShare >= CACHED_SHARE ? Math.max(cold, cores) : cold);
}

/**
 * How to verify the files `relPaths` of `dir` beside CRIU, by how much of them the page cache holds
 * now (ask before CRIU reads them): the lanes (verifyThreads), and whether they count as cached.
 */
export function verifyPlanFor(dir: string, relPaths: string[]): { lanes: number; cached: boolean } {
  const share = pageCacheShare(dir, relPaths);
  return { lanes: verifyThreads(share), cached: share !== undefined && share >= CACHED_SHARE };
}

/** The chunk tasks of one file: [0, CHUNK), [CHUNK, 2·CHUNK), ..., the last one shorter; one empty chunk for an empty file. */
export function chunkRanges(sizeBytes: number, chunkBytes = CHUNK_BYTES): Array<{ offset: number; length: number }> {
  if (!(chunkBytes > 0)) throw new RangeError(`chunk size must be positive, not ${chunkBytes}`);
  const ranges = [];
  for (let offset = 0; offset < sizeBytes || ranges.length === 0; offset += chunkBytes) {
    ranges.push({ offset, length: Math.max(0, Math.min(chunkBytes, sizeBytes - offset)) });
  }
  return ranges;
}

/** One chunk's sha256 on the shared workers (`lane` picks one), read as a commit reads: from the page cache. */
export function hashChunk(lane: number, file: string, offset: number, length: number): Promise<ChunkAnswer> {
  pool ??= new DigestPool();
  return pool.hash(lane, { file, offset, length, ...readStrategy() });
}

export interface DigestOptions {
  /** With Infinity each file is one chunk: its whole-file sha256 (manifests of format 1). */
  chunkBytes?: number | undefined;
  lanes?: number | undefined;
  reads?: ReadStrategy | undefined;
  /** When it settles, lanes are added up to its number for the chunks not yet taken. */
  widenTo?: Promise<number> | undefined;
  /** Leading chunks' digests already known by path (hashed behind the writer): not read again. */
  known?: Map<string, string[]> | undefined;
  /**
   * Beside another reader of the same files (CRIU restoring): a lane takes a chunk the page cache
   * already holds before the next one in order, so the lanes hash behind that reader, wherever it
   * reads, instead of reading the disk beside it.
   */
  followPageCache?: boolean | undefined;
}

/**
 * The order lanes take chunk tasks in: an untaken one `cached` says is in the page cache, else the
 * first untaken one. Each task is taken once. The search for a cached one starts after the last
 * one found (the reader ahead of it likely reads on) and asks at most `scanLimit` tasks, so a
 * take costs the same on an image of any size.
 */
export class ChunkQueue {
  private readonly taken: boolean[];
  private lowest = 0;
  private cursor = 0;
  private left: number;

  constructor(
    count: number,
    private readonly cached?: (task: number) => boolean,
    private readonly scanLimit = 512,
  ) {
    this.taken = new Array<boolean>(count).fill(false);
    this.left = count;
  }

  get remaining(): number {
    return this.left;
  }

  take(): number | undefined {
    while (this.lowest < this.taken.length && this.taken[this.lowest]) this.lowest++;
    if (this.lowest >= this.taken.length) return undefined;
    const pick = this.findCached() ?? this.lowest;
    this.taken[pick] = true;
    this.left--;
    return pick;
  }

  private findCached(): number | undefined {
    if (!this.cached) return undefined;
    const count = this.taken.length;
    for (let asked = 0, seen = 0; asked < this.scanLimit && seen < count; seen++) {
      const i = (this.cursor + seen) % count;
      if (this.taken[i]) continue;
      asked++;
      if (this.cached(i)) {
        this.cursor = i + 1;
        return i;
      }
    }
    return undefined;
  }
}

/**
 * Size and per-chunk sha256 of every file, all chunks of all files hashed in parallel (at most one
 * in flight per worker, so memory stays one 4 MiB block per core). `onBytes` is told as chunks finish.
 */
export async function digestChunks(
  dir: string,
  relPaths: string[],
  onBytes: (n: number) => void,
  { chunkBytes = CHUNK_BYTES, lanes = digestThreads(), reads = readStrategy(), widenTo, known, followPageCache }: DigestOptions = {},
): Promise<ManifestFile[]> {
  pool ??= new DigestPool();
  const files = await Promise.all(relPaths.map(async (rel) => ({ rel, sizeBytes: (await stat(path.join(dir, rel))).size })));
  const digests = files.map(({ rel, sizeBytes }) => {
    const chunks = new Array<string>(chunkRanges(sizeBytes, chunkBytes).length);
    const leading = known?.get(rel) ?? [];
    for (let i = 0; i < Math.min(leading.length, chunks.length); i++) chunks[i] = leading[i] as string;
    return chunks;
  });
  const tasks = files.flatMap(({ rel, sizeBytes }, fileIndex) =>
    chunkRanges(sizeBytes, chunkBytes)
      .map((range, chunkIndex) => ({ fileIndex, chunkIndex, file: path.join(dir, rel), ...range }))
      .filter(({ chunkIndex }) => (digests[fileIndex] as string[])[chunkIndex] === undefined),
  );
  const active = pool;
  const probe = followPageCache ? openResidencyProbe(files.map(({ rel }) => path.join(dir, rel))) : undefined;
  const task = (i: number) => tasks[i] as (typeof tasks)[number];
  const queue = new ChunkQueue(tasks.length, probe && ((i) => probe.cached(task(i).fileIndex, task(i).offset, task(i).length)));
  const lane = async (_: unknown, laneIndex: number) => {
    for (let i = queue.take(); i !== undefined; i = queue.take()) {
      const { fileIndex, chunkIndex, file, offset, length } = task(i);
      const answer = await active.hash(laneIndex, { file, offset, length, ...reads });
      if (answer.error !== undefined) throw new Error(`cannot read ${file}: ${answer.error}`);
      // A file shorter than when it was listed hashes fewer bytes: its digest cannot match.
      (digests[fileIndex] as string[])[chunkIndex] = answer.sha256 as string;
      onBytes(answer.bytes ?? 0);
    }
  };
  const first = Array.from({ length: Math.min(lanes, tasks.length) }, lane);
  // More lanes join once the rest is cached (a restore's CRIU has read it all): they take the chunks left.
  const joined: Array<Promise<void>> = [];
  void widenTo?.then((wanted) => {
    for (let i = first.length + joined.length; i < Math.min(wanted, tasks.length) && queue.remaining > 0; i++)
      joined.push(lane(undefined, i));
  });
  try {
    await Promise.all(first);
  } finally {
    await Promise.allSettled(joined);
    probe?.close();
  }
  await Promise.all(joined);
  return files.map(({ rel, sizeBytes }, i) => ({ path: rel, sizeBytes, chunkSha256: digests[i] as string[] }));
}
