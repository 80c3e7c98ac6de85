import { closeSync, fsyncSync, openSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { FADV_DONTNEED, fadvise } from '../../activities/node/store/file-advice.js';

/** Drops every file below `dir` from the page cache (synced first), as on a node that has not read them lately. */
export async function evictFromPageCache(dir: string): Promise<void> {
  const advise = fadvise();
  if (advise === undefined) throw new Error('posix_fadvise cannot be called here');
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const fd = openSync(path.join(entry.parentPath, entry.name), 'r');
    try {
      fsyncSync(fd);
      advise(fd, 0, 0, FADV_DONTNEED);
    } finally {
      closeSync(fd);
    }
  }
}
