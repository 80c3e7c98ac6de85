import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { CHECKPOINT_DONE_MARKER, IMAGES_DIR, MANIFEST_FILE } from '../../../contract/chrek.js';
import { torporFailure } from '../../../contract/failures.js';
import type { CheckpointManifest } from '../../../contract/types.js';
import { pathExists } from '../store/file-digests.js';
import type { StoreLayout } from '../store/layout.js';
import { readAuthenticManifest } from '../store/manifest-mac.js';
import { removeTree } from '../store/scan.js';
import { bytesMatchEntry } from '../store/verify-contents.js';
import type { ContainerCheckpointRecord } from './types.js';

/**
 * What a container checkpoint keeps beside CRIU's images, inside an ordinary checkpoint directory
 * of the store: committed by `commitCheckpoint`, checked by `verifyCheckpoint`, listed, inspected
 * and deleted like any other.
 */
export const CONTAINER_RECORD = 'container.json';

/** The files of a container checkpoint directory, staged or committed. */
export function containerCheckpointFiles(dir: string) {
  return {
    imageDir: path.join(dir, IMAGES_DIR),
    workDir: path.join(dir, 'work'),
    rootfsDiff: path.join(dir, 'rootfs-diff.tar'),
    devShm: path.join(dir, 'dev-shm.tar'),
    record: path.join(dir, CONTAINER_RECORD),
    manifest: path.join(dir, MANIFEST_FILE),
    marker: path.join(dir, CHECKPOINT_DONE_MARKER),
  };
}

/** The dump's staging directory, emptied: a retried dump starts again from nothing. */
export async function freshStagingDir(layout: StoreLayout, hash: string, dumpId: string): Promise<string> {
  const dir = layout.tmpDir(hash, dumpId);
  await removeTree(dir);
  const files = containerCheckpointFiles(dir);
  await mkdir(files.imageDir, { recursive: true, mode: 0o700 });
  await mkdir(files.workDir, { recursive: true, mode: 0o700 });
  return dir;
}

export interface CommittedContainerCheckpoint {
  dir: string;
  manifest: CheckpointManifest;
  record: ContainerCheckpointRecord;
}

/**
 * A committed container checkpoint: marker, manifest and container record present and readable.
 * The checksums are `verifyCheckpoint`'s step, which the restore workflows run first.
 */
export async function committedContainerCheckpoint(
  layout: StoreLayout,
  hash: string,
  nodeName: string,
): Promise<CommittedContainerCheckpoint> {
  const dir = layout.checkpointDir(hash);
  const files = containerCheckpointFiles(dir);
  if (!(await pathExists(files.marker))) {
    if (await pathExists(dir)) {
      throw torporFailure('CheckpointCorrupt', `Checkpoint ${hash} has no ${CHECKPOINT_DONE_MARKER} marker: it was never completed`);
    }
    throw torporFailure('CheckpointNotFound', `Checkpoint ${hash} does not exist on node ${nodeName}`);
  }
  // The MAC first: nothing of a manifest another writer of the store made is trusted.
  const manifest = await readAuthenticManifest(layout, hash, dir);
  try {
    const text = await readFile(files.record, 'utf8');
    checkRecordDigest(manifest, text, hash);
    return { dir, manifest, record: JSON.parse(text) as ContainerCheckpointRecord };
  } catch (err) {
    if (err instanceof ApplicationFailure) throw err;
    throw torporFailure('InvalidSpec', `Checkpoint ${hash} is not a container checkpoint (${(err as Error).message})`);
  }
}

/** container.json (labels, image layers, marker path) is used before the full verification: its digest is checked here. */
function checkRecordDigest(manifest: CheckpointManifest, text: string, hash: string): void {
  const listed = manifest.files.find((f) => f.path === CONTAINER_RECORD);
  if (listed === undefined) throw new Error(`${CONTAINER_RECORD} is not in its manifest`);
  // Recorded as one chunk: the whole text against its one digest.
  if (!bytesMatchEntry(listed, Buffer.from(text), Number.POSITIVE_INFINITY)) {
    throw torporFailure('CheckpointCorrupt', `Checkpoint ${hash}: ${CONTAINER_RECORD} does not match its manifest`);
  }
}
