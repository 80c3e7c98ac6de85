import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { MANIFEST_FILE } from '../../../../contract/chrek.js';
import { torporFailure } from '../../../../contract/failures.js';
import type { UploadResult } from '../../../../contract/types.js';
import { reportProgress } from '../../heartbeat.js';
import type { StoreLayout } from '../layout.js';
import { readCommitted } from '../manifest.js';
import { type Chunk, inParallel, manifestChunks } from './chunks.js';
import { chunkKey, MAC_METADATA, manifestKey, SHA256_METADATA } from './keys.js';
import type { ObjectStore } from './object-store.js';

/** The chunk's bytes from the committed file, checked against its digest: a bad disk never reaches the store. */
async function readChunk(dir: string, hash: string, chunk: Chunk): Promise<Buffer> {
  const handle = await open(path.join(dir, chunk.path), 'r');
  try {
    const buffer = Buffer.alloc(chunk.length);
    const { bytesRead } = await handle.read(buffer, 0, chunk.length, chunk.offset);
    const sha256 = createHash('sha256').update(buffer.subarray(0, bytesRead)).digest('hex');
    if (bytesRead !== chunk.length || sha256 !== chunk.sha256) {
      throw torporFailure(
        'CheckpointCorrupt',
        `Checkpoint ${hash} on this node: ${chunk.path} chunk ${chunk.index} no longer matches its manifest; it was not uploaded`,
      );
    }
    return buffer;
  } finally {
    await handle.close();
  }
}

/**
 * Uploads committed checkpoint `hash` from the node cache: every chunk as its own object (in
 * parallel; one already there with the right size and digest is skipped, so a retried upload sends
 * only what is missing), then the manifest with its MAC, last: until that PUT the checkpoint does not
 * exist for any reader. A store that already holds a manifest for the hash keeps it (first wins).
 */
export async function uploadCheckpoint(layout: StoreLayout, store: ObjectStore, hash: string): Promise<UploadResult> {
  const manifest = await readCommitted(layout, hash);
  if (manifest === null) throw torporFailure('CheckpointNotFound', `No committed checkpoint ${hash} on this node to upload`);
  const { prefix, parallel } = store;
  if (await store.head(manifestKey(prefix, hash))) return { hash, uploadedBytes: 0, skippedBytes: 0, uploaded: false };
  const chunks = manifestChunks(manifest);
  // Identical chunks (runs of zero pages) are one object.
  const unique = [...new Map(chunks.map((c) => [c.sha256, c])).values()];
  const dir = layout.checkpointDir(hash);
  const totals = { uploadedBytes: 0, skippedBytes: 0 };
  await inParallel(unique, parallel, async (chunk) => {
    const key = chunkKey(prefix, hash, chunk.sha256);
    const there = await store.head(key);
    if (there?.sizeBytes === chunk.length && there.metadata[SHA256_METADATA] === chunk.sha256) {
      totals.skippedBytes += chunk.length;
    } else {
      await store.put(key, await readChunk(dir, hash, chunk), { [SHA256_METADATA]: chunk.sha256 });
      totals.uploadedBytes += chunk.length;
    }
    reportProgress({ phase: 'uploading', ...totals, totalBytes: manifest.totalBytes });
  });
  const text = await readFile(path.join(dir, MANIFEST_FILE), 'utf8');
  const mac = (await readFile(layout.manifestMacFile(hash), 'utf8')).trim();
  await store.put(manifestKey(prefix, hash), text, { [MAC_METADATA]: mac });
  return { hash, ...totals, uploaded: true };
}
