import { closeSync, fsyncSync, openSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { FADV_DONTNEED, fadvise } from '../../activities/node/store/file-advice.js';

/** Drops `file` from the page cache (synced first), as on a node that has not read it lately. */
export function evictFile(file: string): void {
  const advise = fadvise();
  if (advise === undefined) throw new Error('posix_fadvise cannot be called here');
  const fd = openSync(file, 'r');
  try {
    fsyncSync(fd);
    const failed = advise(fd, 0, 0, FADV_DONTNEED);
    if (failed !== 0) throw new Error(`posix_fadvise(DONTNEED) on ${file} failed with error ${failed}`);
  } finally {
    closeSync(fd);
  }
}

/** Drops every file below `dir` from the page cache. */
export async function evictFromPageCache(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) evictFile(path.join(entry.parentPath, entry.name));
  }
}
