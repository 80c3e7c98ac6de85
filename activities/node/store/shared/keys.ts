import { torporFailure } from '../../../../contract/failures.js';
import { checkHash } from '../layout.js';

/**
 * Object names in the shared store. A checkpoint is `<prefix>checkpoints/<hash>/`: its chunks as
 * `chunks/<sha256>` (named by content, so two agents uploading the same hash never overwrite each
 * other's bytes with different ones) and `manifest.json`, written last, whose presence makes the
 * checkpoint exist. The manifest's MAC travels in the same object's metadata: one PUT, never a
 * manifest beside another upload's MAC.
 */
export const MAC_METADATA = 'torpor-mac';
export const SHA256_METADATA = 'sha256';

export function checkpointPrefix(prefix: string, hash: string): string {
  return `${prefix}checkpoints/${checkHash(hash)}/`;
}

export function manifestKey(prefix: string, hash: string): string {
  return `${checkpointPrefix(prefix, hash)}manifest.json`;
}

export function chunkKey(prefix: string, hash: string, sha256: string): string {
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw torporFailure('CheckpointCorrupt', `"${sha256}" is not a sha256 digest`);
  return `${checkpointPrefix(prefix, hash)}chunks/${sha256}`;
}

const FILE_PATH = /^[A-Za-z0-9_][A-Za-z0-9._-]*(\/[A-Za-z0-9_][A-Za-z0-9._-]*)*$/;

/** A manifest's file path, checked before it names anything on disk: relative, no `..`, no dot-names. */
export function checkFilePath(rel: string): string {
  if (typeof rel !== 'string' || !FILE_PATH.test(rel) || rel.split('/').some((s) => s === '..' || s === '.')) {
    throw torporFailure('CheckpointCorrupt', `The manifest names a file "${String(rel)}" outside the checkpoint directory`);
  }
  return rel;
}
