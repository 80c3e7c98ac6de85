import { torporFailure } from '../../../contract/failures.js';
import { ESTABLISHED_POLICIES, NETWORK_LOCK_METHODS, type NetworkLockMethod, type NetworkPolicy } from '../../../contract/network.js';
import type { CheckpointManifest, ManifestFile } from '../../../contract/types.js';
import { pathExists } from './file-digests.js';
import type { StoreLayout } from './layout.js';
import { readAuthenticManifest } from './manifest-mac.js';

export function totalBytes(files: ManifestFile[]): number {
  return files.reduce((sum, f) => sum + f.sizeBytes, 0);
}

/** Reads a manifest written by this code; anything else is refused as CheckpointCorrupt, not trusted. */
export function parseManifest(text: string): CheckpointManifest {
  let value: Partial<CheckpointManifest>;
  try {
    value = JSON.parse(text) as Partial<CheckpointManifest>;
  } catch (err) {
    throw torporFailure('CheckpointCorrupt', `manifest.json is not JSON: ${(err as Error).message}`);
  }
  const known =
    value.formatVersion === 1 || (value.formatVersion === 2 && Number.isSafeInteger(value.chunkBytes) && (value.chunkBytes ?? 0) > 0);
  if (!known || typeof value.hash !== 'string' || !Array.isArray(value.files)) {
    throw torporFailure('CheckpointCorrupt', 'manifest.json is not a Torpor manifest (formatVersion 1, or 2 with its chunkBytes)');
  }
  return value as CheckpointManifest;
}

/**
 * The manifest of committed checkpoint `hash`, or null while it is not committed (no
 * checkpoint.done marker, or no manifest). A committed manifest that cannot be read, or whose MAC
 * does not match, is CheckpointCorrupt (manifest-mac.ts).
 */
export async function readCommitted(layout: StoreLayout, hash: string): Promise<CheckpointManifest | null> {
  if (!(await pathExists(layout.doneMarker(hash)))) return null;
  if (!(await pathExists(layout.manifestFile(hash)))) return null;
  return readAuthenticManifest(layout, hash);
}

/**
 * The network policy a restore must use: the dump's. A `keep` dump left its connections locked with
 * its own method, which only that method unlocks; a manifest from before CRIU 4.2 saved none.
 */
export function restoreNetworkPolicy(manifest: CheckpointManifest, config: { networkLock: NetworkLockMethod }): NetworkPolicy {
  const recorded = manifest.network;
  if (recorded === undefined) return { established: 'close', lock: config.networkLock };
  if (!ESTABLISHED_POLICIES.includes(recorded.established) || !NETWORK_LOCK_METHODS.includes(recorded.lock)) {
    throw torporFailure(
      'CheckpointCorrupt',
      `manifest.json of ${manifest.hash} names an unknown network policy ${JSON.stringify(recorded)}`,
    );
  }
  return recorded;
}
