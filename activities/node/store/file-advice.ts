import { createRequire } from 'node:module';
import { runInThisContext } from 'node:vm';

/** posix_fadvise(2) advice numbers on Linux (s390x differs, and gets no binding). */
export const FADV_SEQUENTIAL = 2;
export const FADV_WILLNEED = 3;
export const FADV_DONTNEED = 4;

/**
 * Linux caps one WILLNEED at max(read_ahead_kb, max_sectors_kb) and silently drops the rest, so a
 * range is advised in steps no larger than the smallest cap devices commonly have.
 */
export const ADVICE_STEP_BYTES = 512 * 1024;

/** posix_fadvise(fd, offset, length, advice): 0, or the error number. */
export type Fadvise = (fd: number, offset: number, length: number, advice: number) => number;

const require = createRequire(import.meta.url);

/**
 * Where koffi loads from, for the hashing workers: an eval worker resolves `require` from the working
 * directory, not from this module. Undefined where there is no binding to load (then reads are plain).
 */
export function koffiEntry(): string | undefined {
  if (process.platform !== 'linux' || process.arch === 's390x') return undefined;
  try {
    return require.resolve('koffi');
  } catch {
    return undefined;
  }
}

type Koffi = typeof import('koffi');

/**
 * libc functions bound through koffi on first use: `bind` gets koffi and libc and returns the
 * bindings. Undefined where they cannot be bound (no koffi, a libc other than glibc); callers then
 * fall back or go without.
 */
export function lazyLibcBinding<T>(bind: (koffi: Koffi, libc: ReturnType<Koffi['load']>) => T): () => T | undefined {
  let bound: T | null | undefined;
  return () => {
    if (bound === undefined) {
      const entry = koffiEntry();
      try {
        const koffi = entry === undefined ? undefined : (require(entry) as Koffi);
        bound = koffi ? bind(koffi, koffi.load('libc.so.6')) : null;
      } catch {
        bound = null;
      }
    }
    return bound ?? undefined;
  };
}

/**
 * CommonJS source of `bindFadvise(koffi)`, run by the hashing workers (eval source) and by `fadvise`
 * here: posix_fadvise from libc through koffi (Node has none), or undefined where it cannot be bound
 * (no koffi, a libc other than glibc).
 */
export const BIND_FADVISE_SOURCE = `function bindFadvise(koffi) {
  try {
    return koffi && koffi.load('libc.so.6').func('int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)');
  } catch {
    return undefined;
  }
}`;

/**
 * CommonJS source of `adviseWillNeed(fadvise, fd, offset, length)`: asks the kernel to read the range
 * in the background (large asynchronous reads, many in flight), in steps under the kernel's cap.
 * Advice is only a hint: an error leaves the plain reads to bring the pages in.
 */
export const ADVISE_WILLNEED_SOURCE = `function adviseWillNeed(fadvise, fd, offset, length) {
  if (!fadvise) return;
  for (let at = offset; at < offset + length; at += ${ADVICE_STEP_BYTES}) {
    if (fadvise(fd, at, Math.min(${ADVICE_STEP_BYTES}, offset + length - at), ${FADV_WILLNEED}) !== 0) return;
  }
}`;

type AdviseWillNeed = (fadvise: Fadvise | undefined, fd: number, offset: number, length: number) => void;

/** The workers' own `adviseWillNeed`, on this thread (the same source text, so tests prove theirs). */
export const adviseWillNeed = runInThisContext(`(${ADVISE_WILLNEED_SOURCE})`) as AdviseWillNeed;

let bound: Fadvise | null | undefined;

/** posix_fadvise on this thread, bound by the workers' own source text; undefined where unbound. */
export function fadvise(): Fadvise | undefined {
  if (bound === undefined) {
    const entry = koffiEntry();
    const bind = runInThisContext(`(${BIND_FADVISE_SOURCE})`) as (koffi: unknown) => Fadvise | undefined;
    bound = (entry === undefined ? undefined : bind(require(entry))) ?? null;
  }
  return bound ?? undefined;
}
