import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { torporFailure } from '../../../contract/failures.js';
import { VerifiedDir } from '../store/safe-files.js';

/** ChReK's default for DYN_RESTORE_MARKER_FILE. */
export const DEFAULT_RESTORE_MARKER = '/tmp/dynamo-restored';

export function checkMarkerPath(marker: string): string {
  const normal = path.posix.normalize(marker);
  if (!path.posix.isAbsolute(marker) || normal !== marker || marker.endsWith('/') || marker.split('/').includes('..')) {
    throw torporFailure('InvalidSpec', `Restore marker "${marker}" must be an absolute, normalized file path`);
  }
  return marker;
}

/**
 * Writes the restore marker where the container sees it, through `root` (/proc/PID/root of the
 * placeholder's init). The path is walked one directory descriptor at a time with O_NOFOLLOW
 * (store/safe-files.ts): a link is refused, since it would resolve against the agent's root, and
 * a directory swapped for a link after it was opened does not matter. The file is made fresh
 * (anything planted at its name is unlinked, never followed). The caller also freezes the placeholder.
 */
export async function writeMarkerInRoot(root: string, marker: string, content: string): Promise<void> {
  const parts = checkMarkerPath(marker).split('/').filter(Boolean);
  const name = parts.pop() as string;
  const dir = await VerifiedDir.openBelow(root, parts.join('/'), { mode: 0o755 }).catch((err: unknown) => {
    if (err instanceof ApplicationFailure) {
      throw torporFailure('TargetNotAllowed', `The restore marker path ${marker} is refused: ${err.message}`);
    }
    throw err;
  });
  try {
    await dir.writeNew(name, content, 0o644);
  } finally {
    await dir.close();
  }
}
