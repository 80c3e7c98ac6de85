import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { CHECKPOINT_DONE_MARKER } from '../../../contract/chrek.js';
import { torporFailure } from '../../../contract/failures.js';
import { digestFiles, fsyncPath, listFiles, writeFileAtomic } from '../file-digests.js';
import { manifestMismatches, totalBytes } from '../manifest.js';
import type { StoreLayout } from '../store-layout.js';
import type { ContainerCheckpointManifest, ContainerCheckpointRecord } from './types.js';

/** A container checkpoint's manifest; not manifest.json, so the process store never takes it for one of its own. */
export const CONTAINER_MANIFEST = 'container.json';

/** The files of a container checkpoint directory, staged or committed. */
export function containerCheckpointFiles(dir: string) {
  return {
    imageDir: path.join(dir, 'images'),
    workDir: path.join(dir, 'work'),
    rootfsDiff: path.join(dir, 'rootfs-diff.tar'),
    devShm: path.join(dir, 'dev-shm.tar'),
    manifest: path.join(dir, CONTAINER_MANIFEST),
    marker: path.join(dir, CHECKPOINT_DONE_MARKER),
  };
}

/** Heartbeats when called inside an activity; a no-op when the functions run outside one (tests, tools). */
export function heartbeat(details: Record<string, unknown>): void {
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    return;
  }
  ctx.heartbeat(details);
}

function throttledByteBeat(phase: string): (n: number) => void {
  let bytes = 0;
  let last = 0;
  return (n) => {
    bytes += n;
    if (Date.now() - last < 1000) return;
    last = Date.now();
    heartbeat({ phase, bytes });
  };
}

export async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** One staging directory per hash: a retried dump starts again from an empty one. */
export async function freshStagingDir(layout: StoreLayout, hash: string): Promise<string> {
  const dir = layout.tmpDir(hash, `${hash}.container`);
  await rm(dir, { recursive: true, force: true });
  const files = containerCheckpointFiles(dir);
  await mkdir(files.imageDir, { recursive: true });
  await mkdir(files.workDir, { recursive: true });
  return dir;
}

/** The committed checkpoint of `hash`, or null; never one without its marker. */
export async function readCommittedContainerCheckpoint(layout: StoreLayout, hash: string): Promise<ContainerCheckpointManifest | null> {
  const files = containerCheckpointFiles(layout.checkpointDir(hash));
  if (!(await exists(files.marker))) return null;
  return JSON.parse(await readFile(files.manifest, 'utf8')) as ContainerCheckpointManifest;
}

/** Digests the staged files, writes the manifest, renames the directory into place and writes the marker last. */
export async function commitContainerCheckpoint(
  layout: StoreLayout,
  hash: string,
  staged: string,
  record: ContainerCheckpointRecord,
): Promise<ContainerCheckpointManifest> {
  const target = layout.checkpointDir(hash);
  if (await exists(target)) {
    // A directory without a marker is a commit that died half-way; it is rebuilt from this dump.
    await rm(target, { recursive: true, force: true });
  }
  const files = await digestFiles(staged, await listFiles(staged), throttledByteBeat('committing'));
  const manifest: ContainerCheckpointManifest = { ...record, hash, files, totalBytes: totalBytes(files) };
  const manifestFile = containerCheckpointFiles(staged).manifest;
  await writeFile(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
  await fsyncPath(manifestFile);
  await rename(staged, target);
  await fsyncPath(layout.root);
  await writeFileAtomic(containerCheckpointFiles(target).marker, `${manifest.createdAt}\n`);
  return manifest;
}

/** Checks the marker and every file's size and sha256 before anything is restored from the checkpoint. */
export async function verifyContainerCheckpoint(layout: StoreLayout, hash: string, nodeName: string): Promise<ContainerCheckpointManifest> {
  const dir = layout.checkpointDir(hash);
  const files = containerCheckpointFiles(dir);
  if (!(await exists(dir))) throw torporFailure('CheckpointNotFound', `no container checkpoint ${hash} on node ${nodeName}`);
  if (!(await exists(files.marker))) {
    throw torporFailure(
      'CheckpointCorrupt',
      `container checkpoint ${hash} has no ${CHECKPOINT_DONE_MARKER} marker: it was never completed`,
    );
  }
  let manifest: ContainerCheckpointManifest;
  try {
    manifest = JSON.parse(await readFile(files.manifest, 'utf8')) as ContainerCheckpointManifest;
  } catch (err) {
    throw torporFailure(
      'CheckpointCorrupt',
      `container checkpoint ${hash} has an unreadable ${CONTAINER_MANIFEST}: ${(err as Error).message}`,
    );
  }
  const rels = (await listFiles(dir)).filter((f) => f !== CONTAINER_MANIFEST && f !== CHECKPOINT_DONE_MARKER);
  const problems = manifestMismatches(manifest.files, await digestFiles(dir, rels, throttledByteBeat('verifying')));
  if (problems.length > 0) {
    throw torporFailure(
      'CheckpointCorrupt',
      `container checkpoint ${hash} does not match its manifest: ${problems.slice(0, 5).join('; ')}`,
      {
        problems,
      },
    );
  }
  return manifest;
}
