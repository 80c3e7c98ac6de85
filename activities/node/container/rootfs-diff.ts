import { readFile, stat } from 'node:fs/promises';
import { execa } from 'execa';
import { torporFailure } from '../../../contract/failures.js';
import { findOverlayRootfs, type OverlayRootfs } from './overlay-layers.js';

/**
 * A container's rootfs changes are exactly its overlay upper layer (containerd's overlayfs
 * snapshotter, or any overlay rootfs): new and changed files, whiteouts (0/0 character devices)
 * for deleted ones, and `trusted.overlay.opaque` directories. Copying that layer, with devices and
 * xattrs, into the placeholder's (still unused) upper layer reproduces the same merged view.
 */
export async function overlayRootfs(rootfs: string, what: string): Promise<OverlayRootfs> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  const overlay = findOverlayRootfs(mountinfo, rootfs);
  if (!overlay) {
    throw torporFailure(
      'TargetNotAllowed',
      `the rootfs of ${what} (${rootfs}) is not an overlay mount; its written files cannot be told from its image`,
    );
  }
  return overlay;
}

const TAR_FLAGS = ['--xattrs', '--xattrs-include=trusted.overlay.*', '--acls', '--numeric-owner'];

export async function captureRootfsDiff(upperDir: string, tarFile: string): Promise<number> {
  await execa('tar', ['-C', upperDir, ...TAR_FLAGS, '-cf', tarFile, '.']);
  return (await stat(tarFile)).size;
}

/**
 * Extracted into the upper layer, not through the merged rootfs: a path is then never resolved
 * through an image's symlink (an absolute one would point into the host).
 */
export async function replayRootfsDiff(tarFile: string, upperDir: string): Promise<void> {
  await execa('tar', ['-C', upperDir, ...TAR_FLAGS, '--same-permissions', '-xf', tarFile]);
}
