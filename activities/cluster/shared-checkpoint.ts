import { torporFailure } from '../../contract/failures.js';
import { HASH_PATTERN } from '../../contract/spec.js';
import type { CheckpointManifest } from '../../contract/types.js';
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
  if (!HASH_PATTERN.test(hash)) throw torporFailure('InvalidSpec', `"${hash}" is not a checkpoint hash`);
  if (store === undefined) {
    throw torporFailure(
      'SharedStoreMisconfigured',
      'The control worker has no shared store (TORPOR_S3_BUCKET and the rest, as the agents have): a restore without a node reads the checkpoint’s GPU model from it',
    );
  }
  const text = await getText(store, manifestKey(store.prefix, hash));
  if (text === null)
    throw torporFailure(
      'CheckpointNotFound',
      `Checkpoint ${hash} is not in the shared store (no manifest); checkpoint it with sharedStore first`,
    );
  let manifest: Pick<CheckpointManifest, 'gpu'>;
  try {
    manifest = JSON.parse(text);
  } catch {
    throw torporFailure('CheckpointCorrupt', `The shared store's manifest of ${hash} is not JSON`);
  }
  const gpus = manifest.gpu?.gpus ?? [];
  const name = gpus[0]?.name;
  return { hash, gpuProduct: name ? gpuProductLabelValue(name) || null : null, gpuCount: gpus.length };
}
