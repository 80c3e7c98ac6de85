import { createHash, timingSafeEqual } from 'node:crypto';
import { chmod, lstat, mkdir, open, readdir, rename, rmdir, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MANIFEST_FILE } from '../../../../contract/chrek.js';
import { torporFailure } from '../../../../contract/failures.js';
import type { CheckpointManifest } from '../../../../contract/types.js';
import { reportProgress } from '../../heartbeat.js';
import { trashCheckpoint } from '../catalog.js';
import { digestChunks } from '../chunk-digests.js';
import { fsyncPath, writeFileAtomic } from '../file-digests.js';
import { MANIFEST_MAC_FILE, type StoreLayout } from '../layout.js';
import { parseManifest } from '../manifest.js';
import { manifestKey as agentKey, manifestMac } from '../manifest-mac.js';
import { removeTree } from '../scan.js';
import { type Chunk, inParallel } from './chunks.js';
import { chunkKey, MAC_METADATA, manifestKey } from './keys.js';
import type { ObjectStore } from './object-store.js';

export interface RemoteManifest {
  manifest: CheckpointManifest;
  text: string;
  mac: string;
}

/** The manifest of `hash` in the shared store once its MAC matches this agent's key; null when the store has none. */
export async function readRemoteManifest(layout: StoreLayout, store: ObjectStore, hash: string): Promise<RemoteManifest | null> {
  const got = await store.get(manifestKey(store.prefix, hash));
  if (got === null) return null;
  const chunks: Uint8Array[] = [];
  for await (const part of got.body) chunks.push(part);
  const text = Buffer.concat(chunks).toString('utf8');
  const mac = got.metadata[MAC_METADATA] ?? '';
  const expected = Buffer.from(manifestMac(await agentKey(layout), hash, text), 'hex');
  const given = Buffer.from(mac, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw torporFailure(
      'CheckpointCorrupt',
      `Checkpoint ${hash} in the shared store: its manifest does not match its MAC (edited, or made by a node with another TORPOR_MANIFEST_KEY_FILE)`,
    );
  }
  const manifest = parseManifest(text);
  if (manifest.hash !== hash)
    throw torporFailure('CheckpointCorrupt', `The shared store's manifest of ${hash} is that of ${manifest.hash}`);
  return { manifest, text, mac };
}

const chunkId = (c: Pick<Chunk, 'path' | 'index'>) => `${c.path}#${c.index}`;

/** The chunks an interrupted download left in `dir` that hash to their digests: kept, not fetched again. */
export async function verifiedChunks(dir: string, manifest: CheckpointManifest, chunkBytes: number): Promise<Set<string>> {
  const present = [];
  for (const file of manifest.files) {
    const size = await stat(path.join(dir, file.path)).then(
      (s) => s.size,
      () => -1,
    );
    if (size === file.sizeBytes) present.push(file);
  }
  const hashed = await digestChunks(
    dir,
    present.map((f) => f.path),
    () => undefined,
    { chunkBytes },
  );
  const good = new Set<string>();
  for (const [i, file] of present.entries()) {
    for (const [index, sha256] of (hashed[i]?.chunkSha256 ?? []).entries()) {
      if (sha256 === file.chunkSha256?.[index]) good.add(chunkId({ path: file.path, index }));
    }
  }
  return good;
}

/** Every file at its final size (sparse until its chunks arrive); an existing one keeps its bytes. */
export async function prepareFiles(dir: string, manifest: CheckpointManifest): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const file of manifest.files) {
    const p = path.join(dir, file.path);
    await mkdir(path.dirname(p), { recursive: true, mode: 0o700 });
    await (await open(p, 'a', 0o600)).close();
    await truncate(p, file.sizeBytes);
  }
}

/** GETs one chunk object into its place in the file, hashing it while it is written; a mismatch is CheckpointCorrupt. */
export async function fetchChunk(store: ObjectStore, dir: string, hash: string, chunk: Chunk, onBytes: (n: number) => void) {
  const key = chunkKey(store.prefix, hash, chunk.sha256);
  const got = await store.get(key);
  if (got === null) {
    throw torporFailure('CheckpointCorrupt', `Checkpoint ${hash} in the shared store lacks ${key} (${chunk.path} chunk ${chunk.index})`);
  }
  const handle = await open(path.join(dir, chunk.path), 'r+');
  try {
    const hasher = createHash('sha256');
    let written = 0;
    for await (const part of got.body) {
      if (written + part.length > chunk.length) break;
      await handle.write(part, 0, part.length, chunk.offset + written);
      hasher.update(part);
      written += part.length;
      onBytes(part.length);
    }
    const sha256 = hasher.digest('hex');
    if (written !== chunk.length || sha256 !== chunk.sha256) {
      throw torporFailure(
        'CheckpointCorrupt',
        `Checkpoint ${hash} in the shared store: ${chunk.path} chunk ${chunk.index} (${key}) has ${written === chunk.length ? `sha256 ${sha256}` : `${written}+ bytes`}, expected ${chunk.length} bytes with sha256 ${chunk.sha256}`,
      );
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Fetches the chunks not yet kept, in parallel, heartbeating the bytes. */
export async function fetchChunks(store: ObjectStore, dir: string, remote: RemoteManifest, chunks: Chunk[], kept: Set<string>) {
  const totals = { fetchedBytes: 0, keptBytes: 0 };
  const missing = chunks.filter((c) => !kept.has(chunkId(c)));
  for (const c of chunks) if (kept.has(chunkId(c))) totals.keptBytes += c.length;
  const totalBytes = remote.manifest.totalBytes;
  await inParallel(missing, store.parallel, (chunk) =>
    fetchChunk(store, dir, remote.manifest.hash, chunk, (n) => {
      totals.fetchedBytes += n;
      reportProgress({ phase: 'downloading', ...totals, totalBytes });
    }),
  );
  return totals;
}

/**
 * The download becomes a checkpoint as a local commit does: manifest and MAC beside the files, one
 * rename into place, the marker last. A directory of the hash without its marker (a commit that
 * never finished) is moved out of the way first.
 */
export async function publishFetched(layout: StoreLayout, dir: string, remote: RemoteManifest): Promise<void> {
  const { hash } = remote.manifest;
  await writeFile(path.join(dir, MANIFEST_FILE), remote.text, { mode: 0o644 });
  await writeFile(path.join(dir, MANIFEST_MAC_FILE), `${remote.mac}\n`, { mode: 0o600 });
  await fsyncPath(dir);
  if (await fillMountPoint(layout, hash, dir)) {
    await writeFileAtomic(layout.doneMarker(hash), `${remote.manifest.createdAt}\n`, { tmpDir: layout.tmpRoot(), mode: 0o644 });
    return;
  }
  const stale = await trashCheckpoint(layout, hash);
  if (stale) await removeTree(stale);
  await rename(dir, layout.checkpointDir(hash));
  await fsyncPath(layout.root);
  await writeFileAtomic(layout.doneMarker(hash), `${remote.manifest.createdAt}\n`, { tmpDir: layout.tmpRoot(), mode: 0o644 });
}

/**
 * A restore placed by the scheduler fetches while its placeholder starts, and the kubelet makes the
 * placeholder's subPath mount point, `<root>/<hash>`, as an empty directory before the fetch ends.
 * The placeholder sees that directory (by inode), not whatever is renamed over it later: so an empty
 * real directory (never a link) is filled in place, its entries renamed in; the marker still comes last.
 */
async function fillMountPoint(layout: StoreLayout, hash: string, dir: string): Promise<boolean> {
  const target = layout.checkpointDir(hash);
  const info = await lstat(target).catch(() => null);
  if (!info?.isDirectory() || (await readdir(target)).length > 0) return false;
  await chmod(target, (await stat(dir)).mode & 0o777);
  for (const entry of await readdir(dir)) await rename(path.join(dir, entry), path.join(target, entry));
  await fsyncPath(target);
  await rmdir(dir);
  return true;
}
