import type { BigIntStats } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hashChunk } from './chunk-digests.js';
import { wholeNumberFromEnv } from './env-tuning.js';

/** How often the images written so far are looked at for chunks to hash (a listing and a stat each). */
const POLL_MS = 50;
/**
 * Lanes hashing behind the writer (TORPOR_HASH_BEHIND_THREADS; 0: the commit hashes everything). CRIU
 * writes on one core at 1-1.6 GB/s, and one lane hashes about as fast: two keep up, leaving it a core.
 */
const DEFAULT_LANES = Math.max(1, Math.min(2, os.availableParallelism() - 1));

/** The leading whole chunks of one image, hashed while CRIU wrote it, and the file they belong to. */
export interface PrehashedFile {
  /** Relative to the dump's staging directory, as in the manifest. */
  path: string;
  dev: number;
  ino: number;
  /** The file's ctime when the dump ended, in nanoseconds: any later write changes it. */
  ctimeNs: string;
  sizeBytes: number;
  chunkSha256: string[];
}

/** What ties prehashed digests to one file: any later write, rename over it or truncation changes it. */
export type FileIdentity = Pick<PrehashedFile, 'dev' | 'ino' | 'ctimeNs' | 'sizeBytes'>;

export function fileIdentity(st: BigIntStats): FileIdentity {
  return { dev: Number(st.dev), ino: Number(st.ino), ctimeNs: st.ctimeNs.toString(), sizeBytes: Number(st.size) };
}

function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.ctimeNs === b.ctimeNs && a.sizeBytes === b.sizeBytes;
}

/** What a dump hashed behind CRIU; kept in the dump record for the commit. */
export interface Prehashed {
  chunkBytes: number;
  files: PrehashedFile[];
}

export function hashBehindLanes(env: NodeJS.ProcessEnv = process.env): number {
  return wholeNumberFromEnv(env, 'TORPOR_HASH_BEHIND_THREADS', DEFAULT_LANES, 64);
}

interface Hashed {
  ino: number;
  digests: Array<string | undefined>;
}

/**
 * Runs `write` (CRIU writing images into `imagesDir`) while hashing every chunk of `chunkBytes` that
 * it has finished, so the commit hashes only what was written last. CRIU writes each image from its
 * start to its end and never goes back, so a chunk below the file's size is final: it is read from
 * the page cache the writer just filled. The commit still decides what it trusts (`trustedPrehashed`).
 */
export async function withHashBehind<T>(
  stagingDir: string,
  imagesDir: string,
  chunkBytes: number,
  write: () => Promise<T>,
  lanes = hashBehindLanes(),
): Promise<{ value: T; prehashed: Prehashed | undefined }> {
  if (lanes === 0) return { value: await write(), prehashed: undefined };
  const hashed = new Map<string, Hashed>();
  const queue: Array<{ file: string; ino: number; index: number }> = [];
  const done = new AbortController();
  let failed = false;
  const lane = async (laneIndex: number) => {
    while (!done.signal.aborted || queue.length > 0) {
      const task = queue.shift();
      if (task === undefined) {
        await sleep(POLL_MS / 2, undefined, { signal: done.signal }).catch(() => undefined);
        continue;
      }
      const answer = await hashChunk(laneIndex, task.file, task.index * chunkBytes, chunkBytes);
      const entry = hashed.get(task.file);
      if (answer.error !== undefined || answer.bytes !== chunkBytes || entry?.ino !== task.ino) failed = true;
      else entry.digests[task.index] = answer.sha256;
    }
  };
  const look = async () => {
    while (!done.signal.aborted) {
      await queueFinishedChunks(imagesDir, chunkBytes, hashed, queue);
      await sleep(POLL_MS, undefined, { signal: done.signal }).catch(() => undefined);
    }
  };
  const workers = [look(), ...Array.from({ length: lanes }, (_, i) => lane(i))];
  let value: T;
  try {
    value = await write();
  } finally {
    queue.length = 0;
    done.abort();
    // A chunk still being hashed is not waited for: the commit, on every core, hashes it anyway.
    void Promise.allSettled(workers);
  }
  return { value, prehashed: failed ? undefined : await describe(stagingDir, chunkBytes, hashed) };
}

async function queueFinishedChunks(
  imagesDir: string,
  chunkBytes: number,
  hashed: Map<string, Hashed>,
  queue: Array<{ file: string; ino: number; index: number }>,
): Promise<void> {
  const entries = await readdir(imagesDir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const file = path.join(imagesDir, entry.name);
    const st = await stat(file).catch(() => null);
    if (st === null || st.size < chunkBytes) continue;
    let known = hashed.get(file);
    // A file replaced under the same name starts over; its chunks hashed before are not its own.
    if (known === undefined || known.ino !== st.ino) {
      known = { ino: st.ino, digests: [] };
      hashed.set(file, known);
    }
    for (let index = known.digests.length; (index + 1) * chunkBytes <= st.size; index++) {
      known.digests[index] = undefined;
      queue.push({ file, ino: st.ino, index });
    }
  }
}

/** The files' leading hashed chunks, each with the identity the file has now that the writer is done. */
async function describe(stagingDir: string, chunkBytes: number, hashed: Map<string, Hashed>): Promise<Prehashed> {
  const files: PrehashedFile[] = [];
  for (const [file, { ino, digests }] of hashed) {
    const leading = digests.slice(0, leadingCount(digests));
    const st = await stat(file, { bigint: true }).catch(() => null);
    if (leading.length === 0 || st === null || Number(st.ino) !== ino) continue;
    files.push({ path: path.relative(stagingDir, file), ...fileIdentity(st), chunkSha256: leading as string[] });
  }
  return { chunkBytes, files };
}

function leadingCount(digests: Array<string | undefined>): number {
  const gap = digests.indexOf(undefined);
  return gap === -1 ? digests.length : gap;
}

/**
 * The prehashed chunks the commit may use, by path (the leading ones, or all of them with the last,
 * shorter one), only of a file that is still the one hashed,
 * unchanged since the dump ended (device, inode, ctime and size), with the commit's chunk size.
 */
export async function trustedPrehashed(
  stagingDir: string,
  prehashed: Prehashed | undefined,
  chunkBytes: number,
): Promise<Map<string, string[]>> {
  const trusted = new Map<string, string[]>();
  if (prehashed === undefined || prehashed.chunkBytes !== chunkBytes) return trusted;
  for (const file of prehashed.files) {
    const full = path.join(stagingDir, file.path);
    if (path.relative(stagingDir, full).startsWith('..')) continue;
    const st = await stat(full, { bigint: true }).catch(() => null);
    if (st === null || !st.isFile()) continue;
    if (sameIdentity(fileIdentity(st), file) && file.chunkSha256.length <= Math.ceil(file.sizeBytes / chunkBytes))
      trusted.set(file.path, file.chunkSha256);
  }
  return trusted;
}
