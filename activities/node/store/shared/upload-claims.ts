import { randomUUID } from 'node:crypto';
import { torporFailure } from '../../../../contract/failures.js';
import { sweepKey, uploadClaimKey, uploadsPrefix } from './keys.js';
import { getText, type ObjectStore } from './object-store.js';

/**
 * An upload and gc's sweep of orphan chunks exclude each other through two small objects: the
 * upload writes its claim, then looks for a sweep marker; the sweep writes its marker, then looks
 * for claims. With a store that reads its own writes (S3 and a shared filesystem do), at least one
 * of the two sees the other: either the sweep skips the checkpoint, or the upload waits (retried)
 * until the sweep has ended, and then heads every chunk afresh. Without this, a retried upload could
 * skip a chunk an earlier attempt left, which a gc then deletes as an orphan before the manifest
 * names it. Both objects expire, so a crashed agent or gc blocks nothing for long.
 */
export const UPLOAD_CLAIM_TTL_MS = 5 * 60 * 1000;
export const SWEEP_MARKER_TTL_MS = 10 * 60 * 1000;

interface Mark {
  node: string;
  expiresAt: string;
}

function mark(node: string, ttlMs: number): string {
  return JSON.stringify({ node, expiresAt: new Date(Date.now() + ttlMs).toISOString() } satisfies Mark);
}

/** The mark's node while it lives; null when it is absent, expired or unreadable. */
async function liveMark(store: ObjectStore, key: string): Promise<Mark | null> {
  try {
    const found = JSON.parse((await getText(store, key)) ?? 'null') as Mark | null;
    return found && Date.parse(found.expiresAt) > Date.now() ? found : null;
  } catch {
    return null;
  }
}

/** Runs `upload` of `hash` under a claim (renewed while it runs, removed after); a sweep in progress fails it, retryable. */
export async function underUploadClaim<T>(store: ObjectStore, hash: string, node: string, upload: () => Promise<T>): Promise<T> {
  const key = uploadClaimKey(store.prefix, hash, node, randomUUID());
  await store.put(key, mark(node, UPLOAD_CLAIM_TTL_MS), {});
  const renew = setInterval(() => void store.put(key, mark(node, UPLOAD_CLAIM_TTL_MS), {}).catch(() => undefined), UPLOAD_CLAIM_TTL_MS / 4);
  renew.unref();
  try {
    const sweep = await liveMark(store, sweepKey(store.prefix, hash));
    if (sweep) {
      throw torporFailure('SharedStoreBusy', `The gc of node ${sweep.node} is sweeping orphan chunks of ${hash}; the upload waits for it`);
    }
    return await upload();
  } finally {
    clearInterval(renew);
    await store.delete([key]);
  }
}

/**
 * Marks `hash` as being swept, unless an upload of it runs: true when the caller may delete its
 * orphan chunks (then `endSweep` after). Expired claims of crashed uploads are removed on the way.
 */
export async function beginSweep(store: ObjectStore, hash: string, node: string): Promise<boolean> {
  const marker = sweepKey(store.prefix, hash);
  await store.put(marker, mark(node, SWEEP_MARKER_TTL_MS), {});
  const expired: string[] = [];
  let uploading = false;
  for (const key of await store.list(uploadsPrefix(store.prefix, hash))) {
    if (await liveMark(store, key)) uploading = true;
    else expired.push(key);
  }
  await store.delete(expired);
  if (uploading) await store.delete([marker]);
  return !uploading;
}

export async function endSweep(store: ObjectStore, hash: string): Promise<void> {
  await store.delete([sweepKey(store.prefix, hash)]);
}
