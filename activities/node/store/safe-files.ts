import { randomBytes } from 'node:crypto';
import { constants, type FileHandle, lstat, mkdir, open, readdir, rename, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { torporFailure } from '../../../contract/failures.js';

/**
 * File work of a root agent in directories that others can write (the signal directory, the store
 * when a pod mounts it): nothing here follows a symlink. A directory is opened one component at a
 * time, each through the descriptor of the one before with O_DIRECTORY|O_NOFOLLOW (openat-style),
 * and held open; names inside it are reached through /proc/self/fd/<fd>/<name>, which the kernel
 * resolves to that open directory even if a path component is swapped for a link afterwards.
 */
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const NEW_FILE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

const errno = (err: unknown) => (err as NodeJS.ErrnoException).code;

/** A link (ELOOP under O_NOFOLLOW) or a file where a directory belongs is refused typed; a missing one stays ENOENT. */
function notPlain(err: unknown, at: string): unknown {
  if (errno(err) === 'ELOOP') return torporFailure('TargetNotAllowed', `${at} is a symlink; it is not followed`);
  if (errno(err) === 'ENOTDIR') return torporFailure('TargetNotAllowed', `${at} is not a directory`);
  return err;
}

function checkName(name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw torporFailure('TargetNotAllowed', `"${name}" is not a plain file name`);
  }
  return name;
}

/** An open directory reached without following any link. */
export class VerifiedDir {
  private constructor(
    readonly dir: string,
    private readonly handle: FileHandle,
  ) {}

  /** Opens `dir` (absolute); with `create`, missing components are made with `mode`. Any symlink on the way is refused. */
  static async open(dir: string, create?: { mode: number }): Promise<VerifiedDir> {
    if (!path.isAbsolute(dir)) throw torporFailure('TargetNotAllowed', `${dir} is not an absolute path`);
    return VerifiedDir.openBelow('/', path.normalize(dir), create);
  }

  /**
   * Opens `rel` below `base`, one component at a time, each through the descriptor of the one
   * before and with O_NOFOLLOW: a link anywhere below `base` is refused, and a component swapped
   * after it was opened does not matter. `base` itself is trusted (for example /proc/PID/root).
   */
  static async openBelow(base: string, rel: string, create?: { mode: number }): Promise<VerifiedDir> {
    let handle = await open(base, constants.O_RDONLY | constants.O_DIRECTORY);
    let reached = base;
    try {
      for (const part of rel.split('/').filter((p) => p !== '' && p !== '.')) {
        const next = `/proc/self/fd/${handle.fd}/${checkName(part)}`;
        reached = path.join(reached, part);
        if (create) await mkdir(next, { mode: create.mode }).catch((err) => (errno(err) === 'EEXIST' ? undefined : Promise.reject(err)));
        const opened = await open(next, DIR_FLAGS).catch((err) => Promise.reject(notPlain(err, reached)));
        await handle.close();
        handle = opened;
      }
    } catch (err) {
      await handle.close();
      throw err;
    }
    return new VerifiedDir(path.join(base, rel), handle);
  }

  /** `name` inside this directory, reached through its open descriptor. */
  at(name: string): string {
    return `/proc/self/fd/${this.handle.fd}/${checkName(name)}`;
  }

  /** The names in this directory. */
  async list(): Promise<string[]> {
    return readdir(`/proc/self/fd/${this.handle.fd}`);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  /** Removes `name` if present; a link is removed as a link. */
  async unlink(name: string): Promise<void> {
    await unlink(this.at(name)).catch((err) => (errno(err) === 'ENOENT' ? undefined : Promise.reject(err)));
  }

  /** Writes a fresh file `name` (anything there before, a planted link included, is unlinked first), fsynced. */
  async writeNew(name: string, content: string | Buffer, mode = 0o600): Promise<void> {
    await this.unlink(name);
    const file = await open(this.at(name), NEW_FILE_FLAGS, mode);
    try {
      await file.writeFile(content);
      await file.sync();
    } finally {
      await file.close();
    }
  }

  /** Writes `name` through a temporary file in `tmp` (same filesystem) renamed over it: readers see all or nothing. */
  async replaceAtomically(name: string, content: string | Buffer, tmp: VerifiedDir = this, mode = 0o600): Promise<void> {
    const tmpName = `.${checkName(name)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await tmp.writeNew(tmpName, content, mode);
      await rename(tmp.at(tmpName), this.at(name));
    } catch (err) {
      await tmp.unlink(tmpName).catch(() => undefined);
      throw err;
    }
    await this.handle.sync();
  }
}

/** Runs `work` with `dir` verified and open, and closes it after. */
export async function inVerifiedDir<T>(dir: string, work: (d: VerifiedDir) => Promise<T>, create?: { mode: number }): Promise<T> {
  const verified = await VerifiedDir.open(dir, create);
  try {
    return await work(verified);
  } finally {
    await verified.close();
  }
}

/** Removes `at` (a path through an open directory) and everything below it without following a link; returns the bytes freed. */
async function removeAt(at: string, onBytes: (n: number) => void): Promise<number> {
  const info = await lstat(at).catch(() => null);
  if (info === null) return 0;
  if (!info.isDirectory()) {
    await unlink(at).catch((err) => (errno(err) === 'ENOENT' ? undefined : Promise.reject(err)));
    const freed = info.isFile() ? info.size : 0;
    onBytes(freed);
    return freed;
  }
  // Held open without following: a directory swapped for a link now fails to open (ELOOP/ENOTDIR) instead of being walked.
  const handle = await open(at, DIR_FLAGS).catch(() => null);
  if (handle === null) {
    await unlink(at).catch((err) => (errno(err) === 'ENOENT' ? undefined : Promise.reject(err)));
    return 0;
  }
  let freed = 0;
  try {
    const inside = `/proc/self/fd/${handle.fd}`;
    for (const child of await readdir(inside)) freed += await removeAt(`${inside}/${child}`, onBytes);
  } finally {
    await handle.close();
  }
  await rmdir(at).catch(async (err) => {
    if (errno(err) === 'ENOTDIR') await unlink(at);
    else if (errno(err) !== 'ENOENT') throw err;
  });
  return freed;
}

/** Removes `p` and everything below it, never through a link: a link is removed as a link. Already gone is success. */
export async function removeTreeNoFollow(p: string, onBytes: (n: number) => void = () => undefined): Promise<number> {
  const parent = await VerifiedDir.open(path.dirname(p)).catch((err) => (errno(err) === 'ENOENT' ? null : Promise.reject(err)));
  if (parent === null) return 0;
  try {
    return await removeAt(parent.at(path.basename(p)), onBytes);
  } finally {
    await parent.close();
  }
}

/** Removes `rel` below the trusted directory `base` (a container's root), through descriptors: no link on the way is followed. */
export async function removeBelow(base: string, rel: string): Promise<number> {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  const name = parts.pop();
  if (name === undefined) return 0;
  const parent = await VerifiedDir.openBelow(base, parts.join('/')).catch((err) => (errno(err) === 'ENOENT' ? null : Promise.reject(err)));
  if (parent === null) return 0;
  try {
    return await removeAt(parent.at(name), () => undefined);
  } finally {
    await parent.close();
  }
}
