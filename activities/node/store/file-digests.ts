import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { torporFailure } from '../../../contract/failures.js';
import { inVerifiedDir, VerifiedDir } from './safe-files.js';

/** Every regular file below `dir`, as sorted paths relative to it. Symlinks and devices are refused. */
export async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries) {
    if (entry.isDirectory()) continue;
    const rel = path.relative(dir, path.join(entry.parentPath, entry.name));
    // A checkpoint holds regular files only: a link or device in it was not written by CRIU or the agent.
    if (!entry.isFile()) throw torporFailure('CheckpointCorrupt', `Unexpected non-regular file ${rel} in ${dir}`);
    files.push(rel);
  }
  return files.sort();
}

export async function sha256File(file: string, onBytes: (n: number) => void): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 << 20 }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    onBytes(chunk.length);
  }
  return hash.digest('hex');
}

export async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  try {
    for (const rel of await listFiles(dir)) total += (await stat(path.join(dir, rel))).size;
  } catch {
    // The directory is being written by CRIU; a file may vanish between listing and stat.
  }
  return total;
}

export async function pathExists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

export async function fsyncPath(p: string): Promise<void> {
  const handle = await open(p, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes `content` so that a reader sees the old file, or the whole new one, never a part. The
 * temporary file is created fresh (O_EXCL|O_NOFOLLOW, a random name) in `tmpDir` when given (a
 * directory of the same filesystem, so a crash leaves nothing in a checkpoint directory), and no
 * link on the way is followed (safe-files.ts).
 */
export async function writeFileAtomic(file: string, content: string, options: { tmpDir?: string; mode?: number } = {}): Promise<void> {
  const dir = await VerifiedDir.open(path.dirname(file), { mode: 0o700 });
  try {
    if (options.tmpDir === undefined) return await dir.replaceAtomically(path.basename(file), content, dir, options.mode);
    const tmpDir = options.tmpDir;
    await inVerifiedDir(tmpDir, (tmp) => dir.replaceAtomically(path.basename(file), content, tmp, options.mode), { mode: 0o700 });
  } finally {
    await dir.close();
  }
}
