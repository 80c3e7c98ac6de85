import PQueue from 'p-queue';
import { torporFailure } from '../../../../contract/failures.js';
import type { CheckpointManifest } from '../../../../contract/types.js';
import { chunkRanges } from '../chunk-digests.js';
import { checkFilePath } from './keys.js';

/** One chunk of one file of a checkpoint: where it lies and what its bytes must hash to. */
export interface Chunk {
  path: string;
  index: number;
  offset: number;
  length: number;
  sha256: string;
}

/**
 * Every chunk of every file a manifest lists, with its digest. Only manifests of format 2 (per-chunk
 * digests) go to the shared store: a format 1 file would be one object of any size, verified only
 * once whole.
 */
export function manifestChunks(manifest: CheckpointManifest): Chunk[] {
  if (manifest.formatVersion !== 2 || !manifest.chunkBytes) {
    throw torporFailure(
      'CheckpointCorrupt',
      `Checkpoint ${manifest.hash} has a manifest of format ${manifest.formatVersion}; only format 2 (per-chunk digests) goes to the shared store: checkpoint it again`,
    );
  }
  const chunkBytes = manifest.chunkBytes;
  return manifest.files.flatMap((file) => {
    const rel = checkFilePath(file.path);
    const ranges = chunkRanges(file.sizeBytes, chunkBytes);
    if (file.chunkSha256?.length !== ranges.length) {
      throw torporFailure(
        'CheckpointCorrupt',
        `Checkpoint ${manifest.hash}: ${rel} lists ${file.chunkSha256?.length ?? 0} chunk digests for ${ranges.length} chunks`,
      );
    }
    return ranges.map((r, index) => ({ path: rel, index, ...r, sha256: file.chunkSha256?.[index] as string }));
  });
}

/** Runs `work` on every item, at most `parallel` at once; on the first failure the rest are dropped, the running ones awaited, and it is thrown. */
export async function inParallel<T>(items: T[], parallel: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = new PQueue({ concurrency: parallel });
  try {
    await Promise.all(items.map((item) => queue.add(() => work(item))));
  } finally {
    queue.clear();
    await queue.onIdle();
  }
}
