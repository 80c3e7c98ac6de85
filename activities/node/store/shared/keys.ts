import { torporFailure } from '../../../../contract/failures.js';
import { checkHash } from '../layout.js';

/**
 * Object names in the shared store. A checkpoint is `<prefix>checkpoints/<hash>/`: its chunks as
 * `chunks/<sha256>` (named by content, so two agents uploading the same hash never overwrite each
 * other's bytes with different ones) and `manifest.json`, written last, whose presence makes the
 * checkpoint exist. The manifest's MAC travels in the same object's metadata: one PUT, never a
 * manifest beside another upload's MAC. Chunk keys lie below their checkpoint's name, so no other
 * checkpoint's manifest can name them: deleting a checkpoint deletes every object below its name.
 *
 * Beside the checkpoints, one small object per (checkpoint, node): `leases/<hash>/<node>`, held while
 * that node uses the checkpoint (fetching, restoring, running a restored copy), and
 * `caches/<hash>/<node>`, present while that node's cache holds a copy. Uploads and gc's sweep of
 * orphan chunks exclude each other through `uploads/` and `sweeps/` (upload-claims.ts).
 */
export const MAC_METADATA = 'torpor-mac';
export const SHA256_METADATA = 'sha256';

export function checkpointsPrefix(prefix: string): string {
  return `${prefix}checkpoints/`;
}

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

const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

function checkNode(node: string): string {
  if (!NODE_NAME.test(node)) throw torporFailure('InvalidSpec', `"${node}" is not a node name`);
  return node;
}

export function leasesPrefix(prefix: string, hash: string): string {
  return `${prefix}leases/${checkHash(hash)}/`;
}

export function leaseKey(prefix: string, hash: string, node: string): string {
  return `${leasesPrefix(prefix, hash)}${checkNode(node)}`;
}

export function cachesPrefix(prefix: string): string {
  return `${prefix}caches/`;
}

export function cacheKey(prefix: string, hash: string, node: string): string {
  return `${cachesPrefix(prefix)}${checkHash(hash)}/${checkNode(node)}`;
}

/** `uploads/<hash>/<node>.<id>`: held while an upload of `hash` runs; gc sweeps no chunk of `hash` meanwhile. */
export function uploadsPrefix(prefix: string, hash: string): string {
  return `${prefix}uploads/${checkHash(hash)}/`;
}

export function uploadClaimKey(prefix: string, hash: string, node: string, id: string): string {
  return `${uploadsPrefix(prefix, hash)}${checkNode(node)}.${id}`;
}

/** `sweeps/<hash>`: written by a gc before it deletes orphan chunks of `hash`; an upload that finds it waits. */
export function sweepKey(prefix: string, hash: string): string {
  return `${prefix}sweeps/${checkHash(hash)}`;
}

const FILE_PATH = /^[A-Za-z0-9_][A-Za-z0-9._-]*(\/[A-Za-z0-9_][A-Za-z0-9._-]*)*$/;

/** A manifest's file path, checked before it names anything on disk: relative, no `..`, no dot-names. */
export function checkFilePath(rel: string): string {
  if (typeof rel !== 'string' || !FILE_PATH.test(rel) || rel.split('/').some((s) => s === '..' || s === '.')) {
    throw torporFailure('CheckpointCorrupt', `The manifest names a file "${String(rel)}" outside the checkpoint directory`);
  }
  return rel;
}
