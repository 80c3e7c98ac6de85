import { torporFailure } from '../../../../contract/failures.js';
import type { CheckpointManifest, CheckpointUse } from '../../../../contract/types.js';
import type { StoreLayout } from '../layout.js';
import { readRemoteManifest } from './download.js';
import { cacheKey, cachesPrefix, checkpointPrefix, checkpointsPrefix, manifestKey } from './keys.js';
import { type Lease, readLeases } from './leases.js';
import type { ObjectStore } from './object-store.js';

/** A checkpoint as the shared store knows it: its (MAC-checked) manifest, the nodes that cache it, the live leases on it. */
export interface SharedEntry {
  manifest: CheckpointManifest;
  nodeCaches: string[];
  leases: Lease[];
}

/** Other nodes' live leases as uses (this node's own uses are read from its records and /proc). */
export function leaseUses(leases: readonly Lease[], ownNode: string): CheckpointUse[] {
  return leases
    .filter((l) => l.node !== ownNode)
    .map((l) => ({ restoreId: l.uses.join(', '), pid: 0, state: 'leased', node: l.node, expiresAt: l.expiresAt }));
}

/** Which nodes say they cache each checkpoint: one LIST for all of them. */
export async function cachingNodes(store: ObjectStore): Promise<Map<string, string[]>> {
  const byHash = new Map<string, string[]>();
  const root = cachesPrefix(store.prefix);
  for (const key of await store.list(root)) {
    const [hash, node] = key.slice(root.length).split('/');
    if (hash && node) byHash.set(hash, [...(byHash.get(hash) ?? []), node]);
  }
  return byHash;
}

/** Says in the shared store whether this node's cache holds `hash` (after an upload or fetch; gone after a delete or eviction). */
export async function markCached(store: ObjectStore, hash: string, node: string, cached: boolean): Promise<void> {
  const key = cacheKey(store.prefix, hash, node);
  if (cached) await store.put(key, JSON.stringify({ hash, node, at: new Date().toISOString() }), {});
  else await store.delete([key]);
}

/** One checkpoint of the shared store, or null when it has no manifest (never uploaded, or deleted). */
export async function describeShared(
  layout: StoreLayout,
  store: ObjectStore,
  hash: string,
  caches?: Map<string, string[]>,
): Promise<SharedEntry | null> {
  const remote = await readRemoteManifest(layout, store, hash);
  if (remote === null) return null;
  const nodeCaches = (caches ?? (await cachingNodes(store))).get(hash) ?? [];
  return { manifest: remote.manifest, nodeCaches, leases: (await readLeases(store, hash)).live };
}

/** Every checkpoint of the shared store; one whose manifest fails its MAC is left out, as a local listing leaves out an unreadable one. */
export async function listShared(layout: StoreLayout, store: ObjectStore): Promise<SharedEntry[]> {
  const caches = await cachingNodes(store);
  const found: SharedEntry[] = [];
  for (const hash of await store.listNames(checkpointsPrefix(store.prefix))) {
    const entry = await describeShared(layout, store, hash, caches).catch(() => null);
    if (entry) found.push(entry);
  }
  return found;
}

export interface SharedRemoval {
  manifestRemoved: boolean;
  objectsRemoved: number;
}

function refuse(hash: string, leases: readonly Lease[]): never {
  const by = leases.map((l) => `node ${l.node} (${l.uses.join(', ')}; lease until ${l.expiresAt})`).join(', ');
  throw torporFailure('CheckpointInUse', `Checkpoint ${hash} in the shared store is in use: ${by}`, {
    usedBy: leaseUses(leases, ''),
  });
}

/**
 * Deletes `hash` from the shared store: refused while any node holds a live lease on it; else the
 * manifest first (from then on no reader finds the checkpoint), then every other object below its
 * name (chunks, expired leases). Idempotent: a retry after an interruption finds no manifest and
 * removes what is left. A lease taken between the look and the manifest's removal (a fetch that
 * read the manifest just before) keeps the chunks for that fetch: the delete reports it in use.
 */
export async function deleteShared(store: ObjectStore, hash: string): Promise<SharedRemoval> {
  const before = await readLeases(store, hash);
  if (before.live.length > 0) refuse(hash, before.live);
  const key = manifestKey(store.prefix, hash);
  const manifestRemoved = (await store.head(key)) !== null;
  await store.delete([key]);
  const after = await readLeases(store, hash);
  if (after.live.length > 0) refuse(hash, after.live);
  const rest = await store.list(checkpointPrefix(store.prefix, hash));
  await store.delete([...rest, ...after.expired]);
  return { manifestRemoved, objectsRemoved: rest.length + (manifestRemoved ? 1 : 0) };
}
