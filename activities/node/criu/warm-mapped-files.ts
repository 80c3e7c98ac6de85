import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { IMAGES_DIR } from '../../../contract/chrek.js';
import type { ManifestFile } from '../../../contract/types.js';
import { adviseWillNeed, fadvise, lazyLibcBinding } from '../store/file-advice.js';
import { bytesMatchEntry } from '../store/verify-contents.js';
import { copiedOnWrite, dumpedRanges, privateFileMappings, type RegularFile, regularFiles } from './criu-images.js';

/** Where CRIU lists the tree's regular files (mapped libraries among them), relative to the checkpoint. */
export const FILES_IMAGE = `${IMAGES_DIR}/files.img`;
/** Each process's memory map; its pagemap-<id>.img lies beside it. */
const MM_IMAGE = new RegExp(`^${IMAGES_DIR}/mm-\\d+\\.img$`);

/**
 * CRIU checks each mapped file's build-id before it maps it, looking for the note through at most
 * this much of the file's start (BUILD_ID_MAP_SIZE in criu/files-reg.c): that much is read ahead.
 */
export const HEAD_BYTES = 1024 * 1024;
/** The images read here are a few hundred KiB even for large trees; a bigger one is not read into memory. */
const MAX_IMAGE_BYTES = 64 * 1024 * 1024;
/** At most this much of the mapped files is read ahead for the pages the restore copies on write. */
const MAX_COPIED_BYTES = 1024 * 1024 * 1024;
/** The verification lanes wait at most this long for the warming to end. */
const BUDGET_MS = 2000;

/** openat2(2), x86-64 and arm64 numbering (the generic table); struct open_how is three u64. */
const SYS_OPENAT2 = 437;
const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;
const RESOLVE_NO_MAGICLINKS = 0x02;
const RESOLVE_NO_SYMLINKS = 0x04;
const RESOLVE_BENEATH = 0x08;

/** An O_PATH descriptor of `rel` below `dirFd`, reached without any link and without leaving it; -1 when there is none. */
type OpenPathBeneath = (dirFd: number, rel: string) => number;

const openPathBeneath = lazyLibcBinding((_koffi, libc): OpenPathBeneath => {
  if (process.arch !== 'x64' && process.arch !== 'arm64') throw new Error('openat2 numbering unknown here');
  const syscall = libc.func('long syscall(long number, ...)');
  return (dirFd, rel) => {
    const how = Buffer.alloc(24);
    how.writeBigUInt64LE(BigInt(O_PATH | O_CLOEXEC), 0);
    how.writeBigUInt64LE(BigInt(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), 16);
    return Number(syscall(SYS_OPENAT2, 'int', dirFd, 'const char *', rel, 'void *', how, 'size_t', how.length));
  };
});

export interface MappedFilesWarmth {
  /** Regular files the checkpoint's files image names. */
  files: number;
  /** Of those, the ones read ahead, and the bytes asked for. */
  warmed: number;
  bytes: number;
  ms: number;
  /** Why nothing was warmed, when nothing could be. */
  skipped?: string;
}

/** TORPOR_WARM_MAPPED_FILES=0 switches the warming off (to measure a restore without it). */
export function warmingMappedFiles(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.TORPOR_WARM_MAPPED_FILES !== '0';
}

/** An image's bytes, if they match the manifest: what it names then comes from the agent's own dump. */
async function trustedImage(dir: string, manifestFiles: ManifestFile[], rel: string, chunkBytes: number): Promise<Buffer | string> {
  const entry = manifestFiles.find((f) => f.path === rel);
  if (entry === undefined) return `the checkpoint has no ${rel}`;
  if (entry.sizeBytes > MAX_IMAGE_BYTES) return `its ${rel} is ${entry.sizeBytes} bytes`;
  const bytes = await readFile(path.join(dir, rel)).catch(() => null);
  if (bytes === null) return `its ${rel} could not be read`;
  return bytesMatchEntry(entry, bytes, chunkBytes) ? bytes : `its ${rel} does not match the manifest`;
}

/**
 * Per mapped file id, the byte ranges the restore will copy on write, from each process's mm and
 * pagemap images; a process whose images do not match the manifest adds none.
 */
async function copiedRanges(dir: string, manifestFiles: ManifestFile[], chunkBytes: number): Promise<Map<number, Array<[number, number]>>> {
  const all = new Map<number, Array<[number, number]>>();
  const mmImages = manifestFiles.map((f) => f.path).filter((p) => MM_IMAGE.test(p));
  for (const mm of mmImages) {
    const mmBytes = await trustedImage(dir, manifestFiles, mm, chunkBytes);
    const pagemap = await trustedImage(dir, manifestFiles, mm.replace('/mm-', '/pagemap-'), chunkBytes);
    if (typeof mmBytes === 'string' || typeof pagemap === 'string') continue;
    try {
      for (const [id, ranges] of copiedOnWrite(privateFileMappings(mmBytes), dumpedRanges(pagemap))) {
        all.set(id, [...(all.get(id) ?? []), ...ranges]);
      }
    } catch {
      // An image this reader does not understand only leaves its process's files unwarmed.
    }
  }
  return all;
}

/**
 * Reads ahead the head of the regular file `rel` below `rootFd` and the `ranges` the restore copies
 * on write: the bytes asked for, or undefined when there is no such file.
 */
function warmFile(open: OpenPathBeneath, rootFd: number, rel: string, ranges: Array<[number, number]>): number | undefined {
  let pathFd = -1;
  try {
    pathFd = open(rootFd, rel);
    if (pathFd < 0) return undefined;
    const stats = fstatSync(pathFd);
    if (!stats.isFile() || stats.size === 0) return undefined;
    // Reopened through the O_PATH descriptor: the very file checked above, never a device swapped in.
    const fd = openSync(`/proc/self/fd/${pathFd}`, constants.O_RDONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
    const wanted: Array<[number, number]> = [[0, HEAD_BYTES], ...ranges];
    let asked = 0;
    try {
      for (const [from, to] of wanted) {
        const length = Math.min(to, stats.size) - from;
        if (length <= 0) continue;
        adviseWillNeed(fadvise(), fd, from, length);
        asked += length;
      }
    } finally {
      closeSync(fd);
    }
    return asked;
  } catch {
    return undefined;
  } finally {
    if (pathFd >= 0) closeSync(pathFd);
  }
}

/** Each file once, with the ranges the restore copies on write of any of its ids, capped in all at MAX_COPIED_BYTES. */
function filesToWarm(files: RegularFile[], copied: Map<number, Array<[number, number]>>): Map<string, Array<[number, number]>> {
  const byName = new Map<string, Array<[number, number]>>();
  let budget = MAX_COPIED_BYTES;
  for (const { id, name } of files) {
    const ranges = byName.get(name) ?? [];
    for (const [from, to] of copied.get(id) ?? []) {
      if (to - from > budget) continue;
      budget -= to - from;
      ranges.push([from, to]);
    }
    byName.set(name, ranges);
  }
  return byName;
}

/**
 * Asks the kernel to read ahead, before the verification lanes fill the disk's queue, what CRIU
 * reads of the files the checkpoint's tree had mapped (its libraries), as seen from `root` (the
 * restored tree's root): each file's head, where CRIU checks its build-id, and the pages the
 * restore copies on write. CRIU makes those reads one after another, and from a cold cache behind
 * the lanes' reads its build-id checks took 4.7 s for 300 libraries on an H100 machine.
 * Only manifest-checked images name the files; each is reached below `root` without following any
 * link, and only a regular file is opened. Never throws: warming is a hint.
 */
export async function warmMappedFiles(
  dir: string,
  manifestFiles: ManifestFile[],
  chunkBytes: number,
  root: string,
): Promise<MappedFilesWarmth> {
  const started = performance.now();
  const done = (warmth: Omit<MappedFilesWarmth, 'ms'>): MappedFilesWarmth => ({ ...warmth, ms: Math.round(performance.now() - started) });
  const nothing = { files: 0, warmed: 0, bytes: 0 };
  const image = await trustedImage(dir, manifestFiles, FILES_IMAGE, chunkBytes);
  if (typeof image === 'string') return done({ ...nothing, skipped: image });
  let files: Map<string, Array<[number, number]>>;
  try {
    files = filesToWarm(regularFiles(image), await copiedRanges(dir, manifestFiles, chunkBytes));
  } catch (err) {
    return done({ ...nothing, skipped: (err as Error).message });
  }
  const open = openPathBeneath();
  if (open === undefined) return done({ ...nothing, files: files.size, skipped: 'openat2 cannot be called here' });
  let rootFd: number;
  try {
    rootFd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (err) {
    return done({ ...nothing, files: files.size, skipped: `${root} cannot be opened: ${(err as Error).message}` });
  }
  let warmed = 0;
  let bytes = 0;
  try {
    for (const [name, ranges] of files) {
      if (performance.now() - started > BUDGET_MS) break;
      const rel = name.replace(/^\/+/, '');
      const asked = rel === '' ? undefined : warmFile(open, rootFd, rel, ranges);
      if (asked !== undefined) {
        warmed++;
        bytes += asked;
      }
      await nextTurn();
    }
  } finally {
    closeSync(rootFd);
  }
  return done({ files: files.size, warmed, bytes });
}

/** A restore result's figures for the warming: files read ahead, bytes asked for, how long it took, and why nothing was, if so. */
export function warmthFigures(warmth: MappedFilesWarmth | undefined): {
  mappedFilesWarmed?: number;
  warmedBytes?: number;
  warmMs?: number;
  warmSkipped?: string;
} {
  if (warmth === undefined) return {};
  const figures = { mappedFilesWarmed: warmth.warmed, warmedBytes: warmth.bytes, warmMs: warmth.ms };
  return warmth.skipped === undefined ? figures : { ...figures, warmSkipped: warmth.skipped };
}
