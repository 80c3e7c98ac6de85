import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { torporFailure } from '../../../../contract/failures.js';
import { inParallel } from './chunks.js';
import type { ObjectStore, StoredObject } from './object-store.js';

/** TORPOR_SHARED_DIR: a shared filesystem (an RWX volume) mounted at the same path on every node. */
export interface DirectoryStoreConfig {
  dir: string;
  prefix: string;
  parallel: number;
}

const HEADER_MAX = 64 * 1024;
const TMP = '.tmp';

/** A key as a path below the directory: `/`-separated names, none empty, `.`, `..` or hidden. */
function keyPath(root: string, key: string): string {
  if (key.split('/').some((s) => s === '' || s.startsWith('.'))) {
    throw torporFailure('InvalidSpec', `"${key}" is not a shared-store key`);
  }
  return path.join(root, key);
}

const isMissing = (err: unknown) => ['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '');

/**
 * The shared store as files: each object one file, its metadata as a JSON first line and its body
 * after, so body and metadata are replaced together by one rename (a manifest never sits beside
 * another upload's MAC). Written under `.tmp/` and renamed into place, so a reader on any node sees
 * the old file, none, or the new one; the manifest renamed last publishes a checkpoint as the S3
 * PUT does. Walks never follow a link.
 */
export class DirectoryStore implements ObjectStore {
  readonly prefix: string;
  readonly parallel: number;
  readonly where: string;

  constructor(readonly config: DirectoryStoreConfig) {
    this.prefix = config.prefix;
    this.parallel = config.parallel;
    this.where = `directory ${config.dir}`;
  }

  /** Opens `key` (never through a link) and reads its metadata line; null when there is no such object. */
  private async openObject(key: string) {
    const handle = await open(keyPath(this.config.dir, key), constants.O_RDONLY | constants.O_NOFOLLOW).catch((err) => {
      if (isMissing(err)) return null;
      if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
        throw torporFailure('CheckpointCorrupt', `${this.where}: ${key} is a link, which the shared store never follows`);
      }
      throw err;
    });
    if (handle === null) return null;
    try {
      const buffer = Buffer.alloc(HEADER_MAX);
      const { bytesRead } = await handle.read(buffer, 0, HEADER_MAX, 0);
      const end = buffer.subarray(0, bytesRead).indexOf(0x0a);
      if (end < 0) throw torporFailure('CheckpointCorrupt', `${this.where}: ${key} has no metadata line`);
      const metadata = JSON.parse(buffer.subarray(0, end).toString('utf8')) as Record<string, string>;
      return { handle, metadata, bodyStart: end + 1, sizeBytes: (await handle.stat()).size - end - 1 };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async head(key: string) {
    const found = await this.openObject(key);
    await found?.handle.close();
    return found && { sizeBytes: found.sizeBytes, metadata: found.metadata };
  }

  async put(key: string, body: Buffer | string, metadata: Record<string, string>): Promise<void> {
    const target = keyPath(this.config.dir, key);
    const tmp = path.join(this.config.dir, TMP, randomUUID());
    await mkdir(path.dirname(tmp), { recursive: true });
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(Buffer.concat([Buffer.from(`${JSON.stringify(metadata)}\n`), Buffer.from(body)]));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await mkdir(path.dirname(target), { recursive: true });
    await rename(tmp, target);
  }

  /** Body and metadata from one open file: a rename meanwhile (a renewed lease) cannot mix two versions. */
  async get(key: string) {
    const found = await this.openObject(key);
    if (found === null) return null;
    // The stream closes the handle when it ends or is destroyed.
    return { body: found.handle.createReadStream({ start: found.bodyStart }) as AsyncIterable<Uint8Array>, metadata: found.metadata };
  }

  private async walk(dir: string, key: string, into: StoredObject[]): Promise<void> {
    const names = await readdir(dir).catch((err) => (isMissing(err) ? [] : Promise.reject(err)));
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const stat = await lstat(path.join(dir, name)).catch(() => null);
      if (stat?.isDirectory()) await this.walk(path.join(dir, name), `${key}${name}/`, into);
      else if (stat?.isFile()) into.push({ key: `${key}${name}`, sizeBytes: stat.size, modifiedMs: stat.mtimeMs });
    }
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.listObjects(prefix)).map((o) => o.key);
  }

  async listObjects(prefix: string): Promise<StoredObject[]> {
    const found: StoredObject[] = [];
    await this.walk(keyPath(this.config.dir, prefix.replace(/\/$/, '')), prefix, found);
    return found;
  }

  async listNames(prefix: string): Promise<string[]> {
    const dir = keyPath(this.config.dir, prefix.replace(/\/$/, ''));
    const names = await readdir(dir).catch((err) => (isMissing(err) ? [] : Promise.reject(err)));
    const found: string[] = [];
    for (const name of names)
      if (!name.startsWith('.') && (await lstat(path.join(dir, name)).catch(() => null))?.isDirectory()) found.push(name);
    return found;
  }

  /**
   * Files a `put` killed before its rename left in `.tmp/`, written before `cutoffMs` (a put in
   * flight writes its file moments before renaming it). Entries are removed, never followed.
   */
  async sweepLeftovers(cutoffMs: number): Promise<{ removed: number; freedBytes: number }> {
    const dir = path.join(this.config.dir, TMP);
    const swept = { removed: 0, freedBytes: 0 };
    for (const name of await readdir(dir).catch((err) => (isMissing(err) ? [] : Promise.reject(err)))) {
      const stat = await lstat(path.join(dir, name)).catch(() => null);
      if (stat === null || stat.isDirectory() || stat.mtimeMs > cutoffMs) continue;
      await rm(path.join(dir, name), { force: true });
      swept.removed += 1;
      swept.freedBytes += stat.isFile() ? stat.size : 0;
    }
    return swept;
  }

  /** Removes the files, then their directories once empty, so a deleted checkpoint leaves no name behind. */
  async delete(keys: readonly string[]): Promise<void> {
    const dirs = new Set<string>();
    await inParallel([...keys], this.parallel, async (key) => {
      const file = keyPath(this.config.dir, key);
      await rm(file, { force: true });
      dirs.add(path.dirname(file));
    });
    for (const dir of [...dirs].sort((a, b) => b.length - a.length)) {
      for (let d = dir; d.startsWith(`${this.config.dir}/`); d = path.dirname(d)) {
        if (
          !(await rmdir(d).then(
            () => true,
            () => false,
          ))
        )
          break;
      }
    }
  }
}
