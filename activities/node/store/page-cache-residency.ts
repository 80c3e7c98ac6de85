import { closeSync, fstatSync, openSync } from 'node:fs';
import path from 'node:path';
import { lazyLibcBinding } from './file-advice.js';

const PROT_READ = 1;
const MAP_SHARED = 1;
const SC_PAGESIZE = 30;

/** Up to this many windows of WINDOW_PAGES pages are probed per file: a sample, cheap for any size. */
const SAMPLES_PER_FILE = 256;
const WINDOW_PAGES = 16;

interface Libc {
  mmap(addr: null, length: number, prot: number, flags: number, fd: number, offset: number): unknown;
  mincore(addr: bigint, length: number, vec: Buffer): number;
  munmap(addr: bigint, length: number): number;
  pageBytes: number;
  address(pointer: unknown): bigint;
}

const libc = lazyLibcBinding(
  (koffi, lib): Libc => ({
    mmap: lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
    mincore: lib.func('int mincore(uint64_t addr, size_t length, _Out_ uint8_t *vec)'),
    munmap: lib.func('int munmap(uint64_t addr, size_t length)'),
    pageBytes: Number(lib.func('long sysconf(int name)')(SC_PAGESIZE)),
    address: (pointer) => koffi.address(pointer) as bigint,
  }),
);

/** A read-only shared mapping of the open file's `sizeBytes`, or undefined where mmap(2) refuses. */
function mapReadOnly(c: Libc, fd: number, sizeBytes: number): bigint | undefined {
  const mapped = c.mmap(null, sizeBytes, PROT_READ, MAP_SHARED, fd, 0);
  const addr = mapped === null ? 0n : c.address(mapped);
  return addr === 0n || addr === BigInt.asUintN(64, -1n) ? undefined : addr;
}

/**
 * Bytes of one open file the page cache holds, estimated from evenly spaced windows (mincore(2)
 * over a read-only shared mapping); exact for files of at most SAMPLES_PER_FILE windows.
 */
function residentBytes(c: Libc, fd: number, sizeBytes: number): number {
  const addr = mapReadOnly(c, fd, sizeBytes);
  if (addr === undefined) return 0;
  try {
    const window = WINDOW_PAGES * c.pageBytes;
    const windows = Math.ceil(sizeBytes / window);
    const stride = Math.ceil(windows / SAMPLES_PER_FILE) * window;
    const vec = Buffer.alloc(WINDOW_PAGES);
    let probed = 0;
    let resident = 0;
    for (let at = 0; at < sizeBytes; at += stride) {
      const length = Math.min(window, sizeBytes - at);
      if (c.mincore(addr + BigInt(at), length, vec) !== 0) return 0;
      const pages = Math.ceil(length / c.pageBytes);
      for (let i = 0; i < pages; i++) resident += (vec[i] as number) & 1;
      probed += pages;
    }
    return probed === 0 ? 0 : (resident / probed) * sizeBytes;
  } finally {
    c.munmap(addr, sizeBytes);
  }
}

/**
 * The share (0-1) of the files' bytes already in the page cache, by mincore(2) on a sample of each
 * file; undefined where it cannot be asked (no koffi binding). Synchronous and cheap (a few hundred
 * probes a file, whatever its size), so it runs before CRIU starts reading the same files.
 */
export function pageCacheShare(dir: string, relPaths: string[]): number | undefined {
  const c = libc();
  if (c === undefined) return undefined;
  let total = 0;
  let resident = 0;
  for (const rel of relPaths) {
    let fd: number;
    try {
      fd = openSync(path.join(dir, rel), 'r');
    } catch {
      continue;
    }
    try {
      const { size } = fstatSync(fd);
      if (size === 0) continue;
      total += size;
      resident += residentBytes(c, fd, size);
    } finally {
      closeSync(fd);
    }
  }
  return total === 0 ? undefined : resident / total;
}

/** Asks, again and again, whether byte ranges of a set of files are in the page cache; the files stay mapped until close(). */
export interface ResidencyProbe {
  /** Whether the first, middle and last pages of the range are cached: enough to tell a range a reader has passed from one it has not. */
  cached(fileIndex: number, offset: number, length: number): boolean;
  close(): void;
}

/** A ResidencyProbe over `files` (mincore(2) on read-only shared mappings); undefined without the koffi binding. */
export function openResidencyProbe(files: string[]): ResidencyProbe | undefined {
  const c = libc();
  if (c === undefined) return undefined;
  const maps = files.map((file) => {
    let fd: number | undefined;
    try {
      fd = openSync(file, 'r');
      const { size } = fstatSync(fd);
      if (size === 0) return undefined;
      const addr = mapReadOnly(c, fd, size);
      return addr === undefined ? undefined : { addr, size };
    } catch {
      return undefined;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  });
  const vec = Buffer.alloc(1);
  const pageCached = (addr: bigint, at: number) => c.mincore(addr + BigInt(at), 1, vec) === 0 && ((vec[0] as number) & 1) === 1;
  return {
    cached(fileIndex, offset, length) {
      const map = maps[fileIndex];
      if (map === undefined || length <= 0 || offset + length > map.size) return false;
      const page = (at: number) => at - (at % c.pageBytes);
      return [offset, offset + Math.floor(length / 2), offset + length - 1].every((at) => pageCached(map.addr, page(at)));
    },
    close() {
      for (const map of maps) if (map) c.munmap(map.addr, map.size);
      maps.length = 0;
    },
  };
}
