import { torporFailure } from '../../contract/failures.js';
import { HASH_PATTERN } from '../../contract/spec.js';
import type { CheckpointManifest } from '../../contract/types.js';
import { parseManifest } from '../node/store/manifest.js';
import { manifestKey } from '../node/store/shared/keys.js';
import { getText, type ObjectStore } from '../node/store/shared/object-store.js';
import { gpuProductLabelValue } from './manifests.js';

export interface SharedCheckpointInput {
  hash: string;
}

/** What placing a restore needs to know of a checkpoint in the shared store. */
export interface SharedCheckpointPlacement {
  hash: string;
  /** The `nvidia.com/gpu.product` value of the GPUs it was checkpointed on; null for a CPU-only checkpoint. */
  gpuProduct: string | null;
  /** How many GPUs it held. */
  gpuCount: number;
}

function requireStore(store: ObjectStore | undefined, why: string): ObjectStore {
  if (store === undefined) {
    throw torporFailure(
      'SharedStoreMisconfigured',
      `The control worker has no shared store (TORPOR_S3_BUCKET and the rest, or TORPOR_SHARED_DIR, as the agents have): ${why}`,
    );
  }
  return store;
}

/** The shared store's manifest of `hash`, or null when it has none (never uploaded, or deleted). */
async function readSharedManifest(store: ObjectStore, hash: string): Promise<CheckpointManifest | null> {
  if (!HASH_PATTERN.test(hash)) throw torporFailure('InvalidSpec', `"${hash}" is not a checkpoint hash`);
  const text = await getText(store, manifestKey(store.prefix, hash));
  if (text === null) return null;
  const manifest = parseManifest(text);
  if (manifest.hash !== hash)
    throw torporFailure('CheckpointCorrupt', `The shared store's manifest of ${hash} is that of ${manifest.hash}`);
  return manifest;
}

/**
 * Reads the checkpoint's manifest from the shared store for its GPU model only. The control worker
 * has no manifest key, so it cannot check the manifest's MAC: what it reads only chooses where the
 * placeholder may be scheduled; the node's agent verifies the manifest and every chunk it fetches,
 * and checks the placeholder's GPUs against the manifest, before anything is restored.
 */
export async function describeSharedCheckpoint(
  store: ObjectStore | undefined,
  { hash }: SharedCheckpointInput,
): Promise<SharedCheckpointPlacement> {
  const from = requireStore(store, 'a restore without a node reads the checkpoint’s GPU model from it');
  const manifest = await readSharedManifest(from, hash);
  if (manifest === null)
    throw torporFailure(
      'CheckpointNotFound',
      `Checkpoint ${hash} is not in the shared store (no manifest); checkpoint it with sharedStore first`,
    );
  const gpus = manifest.gpu?.gpus ?? [];
  const name = gpus[0]?.name;
  return { hash, gpuProduct: name ? gpuProductLabelValue(name) || null : null, gpuCount: gpus.length };
}

/**
 * The committed checkpoint `hash` of the shared store (its manifest, written last, is the commit),
 * or null: a checkpoint without a node returns it instead of dumping again wherever the scheduler
 * would place the Job. Unverified here (no manifest key, as above): every restore verifies the
 * manifest's MAC and every chunk on its node before anything runs.
 */
export async function findSharedCheckpoint(
  store: ObjectStore | undefined,
  { hash }: SharedCheckpointInput,
): Promise<CheckpointManifest | null> {
  return readSharedManifest(requireStore(store, 'a checkpoint without a node looks for the checkpoint there first'), hash);
}
