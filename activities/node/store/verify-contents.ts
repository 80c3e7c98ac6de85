import { createHash } from 'node:crypto';
import { CHECKPOINT_DONE_MARKER, MANIFEST_FILE } from '../../../contract/chrek.js';
import type { CheckpointManifest, ManifestFile } from '../../../contract/types.js';
import { chunkRanges, digestChunks } from './chunk-digests.js';
import { listFiles } from './file-digests.js';
import { MANIFEST_MAC_FILE } from './layout.js';

/** The chunk size a manifest's digests were taken with: format 2 records it; format 1 hashed whole files. */
export function manifestChunkBytes(manifest: Pick<CheckpointManifest, 'formatVersion' | 'chunkBytes'>): number {
  return manifest.formatVersion >= 2 && manifest.chunkBytes ? manifest.chunkBytes : Number.POSITIVE_INFINITY;
}

function expectedChunks(file: ManifestFile): string[] {
  return file.chunkSha256 ?? (file.sha256 === undefined ? [] : [file.sha256]);
}

/**
 * Whether `bytes`, read whole into memory, are the file `entry` lists, chunk by chunk: for a small
 * file the agent parses before the full verification (it parses exactly the bytes it checked).
 */
export function bytesMatchEntry(entry: ManifestFile, bytes: Uint8Array, chunkBytes: number): boolean {
  if (bytes.length !== entry.sizeBytes) return false;
  const wanted = expectedChunks(entry);
  const ranges = chunkRanges(bytes.length, chunkBytes);
  return (
    ranges.length === wanted.length &&
    ranges.every(
      (r, i) =>
        createHash('sha256')
          .update(bytes.subarray(r.offset, r.offset + r.length))
          .digest('hex') === wanted[i],
    )
  );
}

const NOT_IN_MANIFEST = new Set([MANIFEST_FILE, MANIFEST_MAC_FILE, CHECKPOINT_DONE_MARKER]);

/** The files of the checkpoint in `dir` a manifest lists: all but the manifest, its MAC and the marker. */
export async function checkpointFiles(dir: string): Promise<string[]> {
  return (await listFiles(dir)).filter((f) => !NOT_IN_MANIFEST.has(f));
}

/**
 * Missing, resized and unlisted files, each problem a sentence; empty when they match. `contentProblem`
 * adds a check of each file that is present with the expected size.
 */
export function fileMismatches<T extends { path: string; sizeBytes: number }>(
  expected: ManifestFile[],
  actual: T[],
  contentProblem: (want: ManifestFile, got: T) => string | undefined = () => undefined,
): string[] {
  const problems: string[] = [];
  const onDisk = new Map(actual.map((f) => [f.path, f]));
  for (const want of expected) {
    const got = onDisk.get(want.path);
    onDisk.delete(want.path);
    if (got === undefined) problems.push(`${want.path} is missing`);
    else if (got.sizeBytes !== want.sizeBytes) problems.push(`${want.path} has ${got.sizeBytes} bytes, expected ${want.sizeBytes}`);
    else {
      const problem = contentProblem(want, got);
      if (problem !== undefined) problems.push(problem);
    }
  }
  for (const extra of onDisk.keys()) problems.push(`${extra} is not in the manifest`);
  return problems;
}

/**
 * What differs between the manifest and the files on disk, each problem a sentence; empty when they
 * match. `actual` was hashed with the manifest's own chunk size, so chunk i of both covers the same bytes.
 */
export function contentMismatches(expected: ManifestFile[], actual: ManifestFile[], chunkBytes: number): string[] {
  return fileMismatches(expected, actual, (want, got) => {
    const wanted = expectedChunks(want);
    const ranges = chunkRanges(want.sizeBytes, chunkBytes);
    const bad = ranges.findIndex((_, i) => got.chunkSha256?.[i] !== wanted[i]);
    if (bad < 0 && wanted.length === ranges.length) return undefined;
    const i = Math.max(bad, 0);
    const range = ranges[i] ?? { offset: 0, length: 0 };
    const where = ranges.length > 1 ? ` in chunk ${i} of ${ranges.length} (bytes ${range.offset}-${range.offset + range.length - 1})` : '';
    return `${want.path} has sha256 ${got.chunkSha256?.[i] ?? '?'}${where}, expected ${wanted[i] ?? '(none recorded)'}`;
  });
}

/**
 * Hashes the files of the checkpoint in `dir` (but the manifest and marker) that `part` selects, in
 * parallel, and compares them with their entries in `manifest`: the problems, each a sentence. With
 * `widenTo` (beside a CRIU restore) the lanes follow CRIU's reads through the page cache.
 */
export async function verifyFilesOf(
  dir: string,
  manifest: CheckpointManifest,
  part: (relPath: string) => boolean,
  onBytes: (n: number) => void,
  { lanes, widenTo }: { lanes?: number | undefined; widenTo?: Promise<number> | undefined } = {},
): Promise<string[]> {
  const rels = (await checkpointFiles(dir)).filter(part);
  const chunkBytes = manifestChunkBytes(manifest);
  const expected = manifest.files.filter((f) => part(f.path));
  const digests = await digestChunks(dir, rels, onBytes, { chunkBytes, lanes, widenTo, followPageCache: widenTo !== undefined });
  return contentMismatches(expected, digests, chunkBytes);
}

/** Every file of the checkpoint in `dir` against `manifest` (verifyFilesOf). */
export function verifyContents(
  dir: string,
  manifest: CheckpointManifest,
  onBytes: (n: number) => void,
  lanes?: number,
  widenTo?: Promise<number>,
): Promise<string[]> {
  return verifyFilesOf(dir, manifest, () => true, onBytes, { lanes, widenTo });
}
