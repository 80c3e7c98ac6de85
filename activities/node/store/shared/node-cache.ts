import { lstat, mkdir, rm, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import { torporFailure } from '../../../../contract/failures.js';
import { HASH_PATTERN } from '../../../../contract/spec.js';
import { trashCheckpoint } from '../catalog.js';
import { writeFileAtomic } from '../file-digests.js';
import type { StoreLayout } from '../layout.js';
import { readCommitted } from '../manifest.js';
import { criuProcesses, entries, liveUses, removeTree } from '../scan.js';

export interface NodeCacheLimits {
  /** TORPOR_NODE_CACHE_BYTES; undefined: unlimited. */
  maxBytes?: number;
  /** A copy used (fetched, found by a fetch, uploaded) this recently is held: the restore that fetched it comes next. */
  holdMs: number;
}

interface CachedCheckpoint {
  hash: string;
  bytes: number;
  /** In the shared store too (uploaded or fetched): only such a copy may be evicted. */
  shared: boolean;
  lastUsedMs: number;
}

/** Records that this node's copy of `hash` is in the shared store, and marks it used now. */
export async function recordShared(layout: StoreLayout, hash: string, how: 'uploaded' | 'fetched'): Promise<void> {
  await mkdir(layout.sharedRecordsRoot(), { recursive: true, mode: 0o700 });
  await writeFileAtomic(layout.sharedRecord(hash), `${JSON.stringify({ hash, [how]: new Date().toISOString() })}\n`, {
    tmpDir: layout.tmpRoot(),
  });
}

/** Marks the cached copy of `hash` used now (LRU). */
export async function touchCached(layout: StoreLayout, hash: string): Promise<void> {
  const now = new Date();
  await utimes(layout.sharedRecord(hash), now, now).catch(() => undefined);
}

async function cachedCheckpoints(layout: StoreLayout): Promise<CachedCheckpoint[]> {
  const found: CachedCheckpoint[] = [];
  for (const hash of (await entries(layout.root)).filter((e) => HASH_PATTERN.test(e))) {
    const manifest = await readCommitted(layout, hash).catch(() => null);
    if (manifest === null) continue;
    const record = await stat(layout.sharedRecord(hash)).catch(() => null);
    found.push({ hash, bytes: manifest.totalBytes, shared: record !== null, lastUsedMs: record?.mtimeMs ?? 0 });
  }
  return found;
}

/** Bytes the files below `p` take on disk (sparse files count what is written), links not followed. */
async function allocatedBytes(p: string): Promise<number> {
  const own = await lstat(p).catch(() => null);
  if (own === null) return 0;
  if (!own.isDirectory()) return own.isFile() ? own.blocks * 512 : 0;
  let total = 0;
  for (const child of await entries(p)) total += await allocatedBytes(path.join(p, child));
  return total;
}

/** What interrupted fetches of other checkpoints left in `.tmp/` (this fetch's own leftovers are part of its need). */
async function leftoverFetchBytes(layout: StoreLayout, ownDir: string | undefined): Promise<number> {
  let total = 0;
  for (const entry of (await entries(layout.tmpRoot())).filter((e) => e.endsWith('.fetch'))) {
    const dir = path.join(layout.tmpRoot(), entry);
    if (dir !== ownDir) total += await allocatedBytes(dir);
  }
  return total;
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

/**
 * Makes room for `needBytes` more in the node cache, evicting least recently used copies that the
 * shared store also holds, never one in use (a restored copy runs from it, CRIU reads it, or it was
 * used within `holdMs`) and never one that exists only here. Returns the hashes evicted; refuses
 * with NodeCacheFull, naming the sizes, when not even that makes room. Bytes that interrupted
 * fetches of other checkpoints left (resumed when asked again, removed by gc) count as used.
 */
export async function makeRoom(layout: StoreLayout, limits: NodeCacheLimits, needBytes: number, fetchDir?: string): Promise<string[]> {
  if (limits.maxBytes === undefined) return [];
  const cached = await cachedCheckpoints(layout);
  let used = cached.reduce((sum, c) => sum + c.bytes, 0) + (await leftoverFetchBytes(layout, fetchDir));
  if (used + needBytes <= limits.maxBytes) return [];
  const criu = await criuProcesses();
  const now = Date.now();
  const candidates = [];
  for (const c of cached.filter((c) => c.shared && now - c.lastUsedMs >= limits.holdMs).sort((a, b) => a.lastUsedMs - b.lastUsedMs)) {
    if ((await liveUses(layout, c.hash, criu)).length === 0) candidates.push(c);
  }
  const evictable = candidates.reduce((sum, c) => sum + c.bytes, 0);
  if (used - evictable + needBytes > limits.maxBytes) {
    throw torporFailure(
      'NodeCacheFull',
      `The node cache cannot take ${mib(needBytes)}: it holds ${mib(used)} of its ${mib(limits.maxBytes)}, and only ${mib(evictable)} of that may be evicted (the rest is in use or not in the shared store)`,
      { needBytes, usedBytes: used, maxBytes: limits.maxBytes, evictableBytes: evictable },
    );
  }
  const evicted: string[] = [];
  for (const c of candidates) {
    if (used + needBytes <= limits.maxBytes) break;
    const trashed = await trashCheckpoint(layout, c.hash);
    if (trashed) await removeTree(trashed);
    await rm(layout.sharedRecord(c.hash), { force: true });
    used -= c.bytes;
    evicted.push(c.hash);
  }
  return evicted;
}
