import { lstat, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { x as extractTar, type ReadEntry } from 'tar';
import { torporFailure } from '../../../contract/failures.js';
import { findOverlayRootfs, type OverlayRootfs } from './overlay-layers.js';

/**
 * A container's rootfs changes are exactly its overlay upper layer (containerd's overlayfs
 * snapshotter, or any overlay rootfs): new and changed files, whiteouts (0/0 character devices)
 * for deleted ones, and `trusted.overlay.opaque` directories. Copying that layer, with devices and
 * xattrs, into an unused placeholder's upper layer reproduces the same merged view; a running
 * placeholder takes it through its merged root instead (`replayRootfsDiffThrough`).
 */
export async function overlayRootfs(rootfs: string, what: string): Promise<OverlayRootfs> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  const overlay = findOverlayRootfs(mountinfo, rootfs);
  if (!overlay) {
    throw torporFailure(
      'TargetNotAllowed',
      `The rootfs of ${what} (${rootfs}) is not an overlay mount; its written files cannot be told from its image`,
    );
  }
  return overlay;
}

const TAR_FLAGS = ['--xattrs', '--xattrs-include=trusted.overlay.*', '--acls', '--numeric-owner'];

/** Archives a directory with owners, modes, devices (whiteouts) and overlay xattrs; returns the archive's size. */
export async function packDirectory(dir: string, tarFile: string): Promise<number> {
  await execa('tar', ['-C', dir, ...TAR_FLAGS, '-cf', tarFile, '.']);
  return (await stat(tarFile)).size;
}

/**
 * Extracts into a plain directory (an overlay's upper layer, a host tmpfs), never through a
 * container's merged rootfs: a path there could resolve through an image's absolute symlink into
 * the host.
 */
export async function unpackIntoDirectory(tarFile: string, dir: string): Promise<void> {
  await execa('tar', ['-C', dir, ...TAR_FLAGS, '--same-permissions', '-xf', tarFile]);
}

/** A parent directory of `rel` under `root` that is a symlink: it would resolve against the agent's root. */
async function symlinkedParent(root: string, rel: string): Promise<string | undefined> {
  const parts = rel.split('/').filter((p) => p && p !== '.');
  let current = root;
  for (const part of parts.slice(0, -1)) {
    current = path.join(current, part);
    if ((await lstat(current).catch(() => undefined))?.isSymbolicLink()) return current;
  }
  return undefined;
}

/**
 * Replays the diff through a container's merged root (`root` = /proc/PID/root of a running
 * placeholder), not into its upper layer: an overlay whose layers change under it while mounted
 * misbehaves (creating a file in a directory it has already looked up fails with ENOTEMPTY).
 * Whiteouts become deletions; node-tar refuses to write through a symlink (strict). Opaque
 * directories (trusted.overlay.opaque) are not replayed: such a directory keeps its image files.
 */
export async function replayRootfsDiffThrough(root: string, tarFile: string): Promise<void> {
  const whiteouts: string[] = [];
  const isWhiteout = (entry: ReadEntry) => entry.type === 'CharacterDevice' && !entry.header.devmaj && !entry.header.devmin;
  try {
    await extractTar({
      file: tarFile,
      cwd: root,
      strict: true,
      preserveOwner: true,
      filter: (p, entry) => {
        if (!('header' in entry) || !isWhiteout(entry)) return true;
        whiteouts.push(p);
        return false;
      },
    });
  } catch (err) {
    throw torporFailure(
      'TargetNotAllowed',
      `The checkpoint's rootfs changes cannot be replayed into the placeholder: ${(err as Error).message}`,
    );
  }
  for (const rel of whiteouts) {
    const link = await symlinkedParent(root, rel);
    if (link) throw torporFailure('TargetNotAllowed', `The deleted path ${rel} lies under a symlink (${link}) in the placeholder`);
    await rm(path.join(root, rel), { recursive: true, force: true });
  }
}
