import { constants, lstat, mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { torporFailure } from '../../../contract/failures.js';

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
 * placeholder's init). Every component is checked not to be a symlink before it is used: a link
 * would be resolved against the agent's root, not the container's, and could point into the host.
 * Nothing else runs in the placeholder yet, so the check cannot race with the app.
 */
export async function writeMarkerInRoot(root: string, marker: string, content: string): Promise<void> {
  const parts = checkMarkerPath(marker).split('/').filter(Boolean);
  let current = root;
  for (const [index, part] of parts.entries()) {
    current = path.join(current, part);
    const last = index === parts.length - 1;
    const info = await lstat(current).catch(() => undefined);
    if (info?.isSymbolicLink()) {
      throw torporFailure(
        'TargetNotAllowed',
        `The restore marker path ${marker} goes through a symlink at /${parts.slice(0, index + 1).join('/')}`,
      );
    }
    if (!last && !info) await mkdir(current, { mode: 0o755 });
    else if (!last && !info?.isDirectory()) {
      throw torporFailure('InvalidSpec', `The restore marker path ${marker}: /${parts.slice(0, index + 1).join('/')} is not a directory`);
    }
  }
  const file = await open(current, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
  try {
    await file.writeFile(content);
  } finally {
    await file.close();
  }
}
