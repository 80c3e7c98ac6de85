import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { criuWritesPagesInParallel } from '../criu/runner.js';
import { wholeNumberFromEnv } from './env-tuning.js';
import { fileIdentity, type Prehashed, type PrehashedFile, withHashBehind } from './hash-behind.js';

/**
 * Writer threads of CRIU's parallel page write (TORPOR_CRIU_PAGE_WRITERS; 0: stock CRIU writes, the
 * agent hashing behind them). On 16-core GPU machines four O_DIRECT writers wrote 2.05-2.11 GB/s
 * where stock CRIU's buffered writes stopped at 1.1-1.5 GB/s once synced, and eight were no faster.
 * On two cores, writers that also hash made the checkpoint slower than stock writes (0.50 s with
 * two, 0.57 s with one, 0.42 s stock: bench/results/cpu-cycles.md), so small hosts keep stock writes.
 * Each writer holds one chunk-sized buffer, plus one the reader fills.
 */
const DEFAULT_WRITERS = os.availableParallelism() >= 8 ? 4 : 0;
const DIGEST_SUFFIX = '.sha256';
const PAGE_BYTES = 4096;

export function criuPageWriters(env: NodeJS.ProcessEnv = process.env): number {
  return wholeNumberFromEnv(env, 'TORPOR_CRIU_PAGE_WRITERS', DEFAULT_WRITERS, 32);
}

export interface DumpHashing {
  criuPath: string;
  /** The dump's staging directory: manifest paths are relative to it. */
  stagingDir: string;
  imagesDir: string;
  /** Where CRIU lists the chunks it hashed: a directory of the dump's own, outside the images. */
  digestsDir: string;
  chunkBytes: number;
}

/**
 * Runs `write` (CRIU dumping into `imagesDir`) so that the commit need not read the pages back.
 * With the set-up's CRIU, CRIU itself writes the pages images from several threads with O_DIRECT
 * and hashes each chunk as it writes it (tools/criu-parallel/parallel-page-write.patch); `write`
 * gets the variables that turn this on. With any other CRIU, the agent hashes behind it.
 */
export async function hashWhileDumping<T>(
  dump: DumpHashing,
  write: (criuEnv: Record<string, string>) => Promise<T>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ value: T; prehashed: Prehashed | undefined }> {
  const writers = criuPageWriters(env);
  // CRIU's writers take only whole pages per chunk; any other chunk size is hashed behind stock writes.
  const wholePages = dump.chunkBytes % PAGE_BYTES === 0;
  if (writers === 0 || !wholePages || !(await criuWritesPagesInParallel(dump.criuPath))) {
    return withHashBehind(dump.stagingDir, dump.imagesDir, dump.chunkBytes, () => write({}));
  }
  // Lists left by an earlier attempt describe images that no longer exist.
  await rm(dump.digestsDir, { recursive: true, force: true });
  await mkdir(dump.digestsDir, { recursive: true });
  const value = await write({
    CRIU_PARALLEL_WRITERS: String(writers),
    CRIU_PARALLEL_WRITE_CHUNK: String(dump.chunkBytes),
    CRIU_PARALLEL_WRITE_DIGESTS: dump.digestsDir,
  });
  const files = await readCriuPageDigests(dump);
  // Kept in the dump record from here on; the directory would otherwise join the checkpoint's files.
  await rm(dump.digestsDir, { recursive: true, force: true });
  return { value, prehashed: files.length > 0 ? { chunkBytes: dump.chunkBytes, files } : undefined };
}

/**
 * The chunk digests CRIU wrote beside each pages image, with each image's identity now that CRIU is
 * done. A list that is not whole (another chunk size, a digest count that does not cover the file,
 * a line that is not a digest) is left out: the commit then hashes that image itself.
 */
export async function readCriuPageDigests(dump: DumpHashing): Promise<PrehashedFile[]> {
  const names = await readdir(dump.digestsDir).catch(() => [] as string[]);
  const files: PrehashedFile[] = [];
  for (const name of names.filter((n) => n.endsWith(DIGEST_SUFFIX)).sort()) {
    const image = path.join(dump.imagesDir, name.slice(0, -DIGEST_SUFFIX.length));
    const [header, ...digests] = (await readFile(path.join(dump.digestsDir, name), 'utf8')).trimEnd().split('\n');
    const st = await stat(image, { bigint: true }).catch(() => null);
    if (st === null || !st.isFile() || header !== `chunk ${dump.chunkBytes}`) continue;
    const size = Number(st.size);
    if (digests.length !== Math.ceil(size / dump.chunkBytes) || !digests.every((d) => /^[0-9a-f]{64}$/.test(d))) continue;
    files.push({ path: path.relative(dump.stagingDir, image), ...fileIdentity(st), chunkSha256: digests });
  }
  return files;
}
