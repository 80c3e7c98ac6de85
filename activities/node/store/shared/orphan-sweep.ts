import { HASH_PATTERN } from '../../../../contract/spec.js';
import type { SharedOrphanReport } from '../../../../contract/types.js';
import type { StoreLayout } from '../layout.js';
import { manifestChunks } from './chunks.js';
import { readRemoteManifest } from './download.js';
import { checkpointPrefix, checkpointsPrefix, chunkKey } from './keys.js';
import type { ObjectStore, StoredObject } from './object-store.js';
import { beginSweep, endSweep, SWEEP_MARKER_TTL_MS } from './upload-claims.js';

const CHUNK_KEY = /\/chunks\/[0-9a-f]{64}$/;
const DELETE_BATCH = 64;

/**
 * The chunk keys the manifest of `hash` names: none without a manifest; null when the manifest
 * cannot be read (a bad MAC, another node's key, an old format), and then nothing of it is swept.
 */
async function namedChunks(layout: StoreLayout, store: ObjectStore, hash: string): Promise<Set<string> | null> {
  try {
    const remote = await readRemoteManifest(layout, store, hash);
    if (remote === null) return new Set();
    return new Set(manifestChunks(remote.manifest).map((c) => chunkKey(store.prefix, hash, c.sha256)));
  } catch {
    return null;
  }
}

/** Chunk objects of `hash` written before `cutoffMs` that its manifest (if any) does not name. */
async function orphansOf(layout: StoreLayout, store: ObjectStore, hash: string, cutoffMs: number): Promise<StoredObject[]> {
  const objects = await store.listObjects(checkpointPrefix(store.prefix, hash));
  const old = objects.filter((o) => CHUNK_KEY.test(o.key) && o.modifiedMs <= cutoffMs);
  if (old.length === 0) return [];
  const named = await namedChunks(layout, store, hash);
  return named === null ? [] : old.filter((o) => !named.has(o.key));
}

/** Deletes `orphans` in batches, stopping well inside the sweep marker's life (the next gc finishes). */
async function deleteOrphans(store: ObjectStore, orphans: StoredObject[], report: SharedOrphanReport, beat: () => void): Promise<void> {
  const deadline = Date.now() + SWEEP_MARKER_TTL_MS / 2;
  for (let i = 0; i < orphans.length && Date.now() < deadline; i += DELETE_BATCH) {
    const batch = orphans.slice(i, i + DELETE_BATCH);
    await store.delete(batch.map((o) => o.key));
    report.removed += batch.length;
    report.freedBytes += batch.reduce((sum, o) => sum + o.sizeBytes, 0);
    beat();
  }
}

/**
 * Sweeps chunk objects no manifest names from the shared store: those an upload interrupted before
 * its manifest left, a delete interrupted between its manifest and its chunks, or an upload that
 * lost the race for a hash to another node's manifest. Only objects written more than `graceMs` ago,
 * and only while no upload of that checkpoint runs (upload-claims.ts): a chunk an upload in
 * progress is about to name is never taken. A checkpoint whose manifest cannot be read keeps all.
 * Also what killed writers left in the backend's staging, older than the same grace.
 */
export async function sweepOrphanChunks(
  layout: StoreLayout,
  store: ObjectStore,
  node: string,
  graceMs: number,
  beat: () => void = () => undefined,
): Promise<SharedOrphanReport> {
  const report: SharedOrphanReport = { removed: 0, freedBytes: 0, busy: [] };
  const cutoffMs = Date.now() - graceMs;
  if (store.sweepLeftovers) report.leftovers = await store.sweepLeftovers(cutoffMs);
  const hashes = (await store.listNames(checkpointsPrefix(store.prefix))).filter((h) => HASH_PATTERN.test(h));
  for (const hash of hashes) {
    if ((await orphansOf(layout, store, hash, cutoffMs)).length === 0) continue;
    if (!(await beginSweep(store, hash, node))) {
      report.busy.push(hash);
      continue;
    }
    try {
      // Read again under the marker: an upload that ended since has its manifest in place now.
      await deleteOrphans(store, await orphansOf(layout, store, hash, cutoffMs), report, beat);
    } finally {
      await endSweep(store, hash);
    }
  }
  return report;
}
