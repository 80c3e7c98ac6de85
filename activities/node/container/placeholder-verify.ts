import { IMAGES_DIR } from '../../../contract/chrek.js';
import { torporFailure } from '../../../contract/failures.js';
import type { CheckpointManifest } from '../../../contract/types.js';
import { lanesBesideCriu, lanesOnceHeld, type VerifiedResumeGate } from '../criu/verified-resume.js';
import type { MappedFilesWarmth } from '../criu/warm-mapped-files.js';
import { verifyThreads } from '../store/chunk-digests.js';
import { verifyFilesOf } from '../store/verify-contents.js';

/** Which files of a container checkpoint a verification pass covers. */
type Part = (relPath: string) => boolean;

/** runc's record of the dumped init's stdio, in the images: the agent builds CRIU's command line from it. */
const DESCRIPTORS = `${IMAGES_DIR}/descriptors.json`;
/** What the agent reads before CRIU runs (rootfs diff, /dev/shm, container record, descriptors): verified first. */
export const readByAgent: Part = (rel) => !rel.startsWith(`${IMAGES_DIR}/`) || rel === DESCRIPTORS;
/** CRIU's images: verified while CRIU reads them. */
export const readByCriu: Part = (rel) => !readByAgent(rel);

/** Every chunk of the files `part` selects against the manifest (verifyFilesOf), on verifyThreads() lanes unless told. */
export function verifyPart(
  dir: string,
  manifest: CheckpointManifest,
  part: Part,
  onBytes: (n: number) => void,
  lanes = verifyThreads(),
  widenTo?: Promise<number>,
): Promise<string[]> {
  return verifyFilesOf(dir, manifest, part, onBytes, { lanes, widenTo });
}

export function corruptCheckpoint(hash: string, problems: string[]) {
  return torporFailure('CheckpointCorrupt', `Checkpoint ${hash} does not match its manifest: ${problems.slice(0, 5).join('; ')}`, {
    problems: problems.slice(0, 20),
  });
}

/** What the verification beside CRIU has done so far. */
export interface ImagesProgress {
  bytes: number;
  lanes?: number;
  warmth?: MappedFilesWarmth;
}

/**
 * The images hashed while CRIU reads them (one read from storage, the other from the page cache);
 * the verdict releases or kills the tree CRIU holds. Always decides, so the gate never waits for
 * an agent that moved on. From a cold cache, what CRIU reads of the mapped files is read ahead
 * first, as seen from `treeRoot`.
 */
export async function verifyImagesBesideCriu(
  dir: string,
  manifest: CheckpointManifest,
  gate: VerifiedResumeGate,
  progress: ImagesProgress,
  treeRoot: string,
): Promise<string[]> {
  const onBytes = (n: number) => {
    progress.bytes += n;
  };
  // Called before the first await: CRIU starts reading the same files right after this call.
  const lanes = await lanesBesideCriu(dir, manifest, manifest.files.map((f) => f.path).filter(readByCriu), treeRoot, progress);
  const problems = await verifyPart(dir, manifest, readByCriu, onBytes, lanes, lanesOnceHeld(gate)).catch((err: unknown) => [
    `the images could not be read: ${(err as Error).message}`,
  ]);
  await gate.decide(problems.length === 0);
  return problems;
}
