import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { x as extractTar, t as listTar, type ReadEntry } from 'tar';
import { torporFailure } from '../../../contract/failures.js';
import { removeBelow } from '../store/safe-files.js';
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

/** Entries no extraction may take: absolute names, `..` anywhere, hard links out of the tree. */
function hostileEntry(entry: ReadEntry): string | undefined {
  const escapes = (p: string) => p.startsWith('/') || p.split('/').includes('..');
  if (escapes(entry.path)) return `${entry.path} (absolute or with "..")`;
  if (entry.type === 'Link' && escapes(entry.linkpath ?? '')) return `${entry.path} (a hard link to ${entry.linkpath})`;
  return undefined;
}

/** Reads the whole archive before anything is written: one hostile entry refuses it all, typed. */
async function refuseHostileEntries(tarFile: string, what: string): Promise<void> {
  const refused: string[] = [];
  await listTar({
    file: tarFile,
    onReadEntry: (entry) => {
      const why = hostileEntry(entry);
      if (why) refused.push(why);
    },
  });
  if (refused.length > 0) {
    throw torporFailure('TargetNotAllowed', `${what} has entries that would leave its directory: ${refused.slice(0, 5).join(', ')}`);
  }
}

/**
 * node-tar with no absolute names, no `..` and no writing through a link (it checks every
 * component). Not `strict`: a strict extraction rejects on its first problem while entries already
 * started go on writing, after the caller has thawed the placeholder; here every problem is
 * collected and the extraction has finished when it is refused. The caller keeps the target from
 * changing meanwhile (a plain directory the agent owns, or a frozen placeholder).
 */
async function extractStrict(tarFile: string, cwd: string, what: string, filter?: (p: string, e: ReadEntry) => boolean): Promise<void> {
  await refuseHostileEntries(tarFile, what);
  const problems: string[] = [];
  try {
    await extractTar({
      file: tarFile,
      cwd,
      preserveOwner: true,
      preservePaths: false,
      onwarn: (code, message) => void problems.push(`${code}: ${String(message)}`),
      ...(filter ? { filter: (p, e) => !('header' in e) || filter(p, e) } : {}),
    });
  } catch (err) {
    problems.push((err as Error).message);
  }
  if (problems.length > 0) throw torporFailure('TargetNotAllowed', `${what} cannot be replayed: ${problems.slice(0, 5).join('; ')}`);
}

/** Extracts into a plain directory (a pod's /dev/shm tmpfs on the host), strictly (extractStrict). */
export async function unpackIntoDirectory(tarFile: string, dir: string): Promise<void> {
  await extractStrict(
    tarFile,
    dir,
    `The archive ${path.basename(tarFile)}`,
    (_, entry) => entry.type === 'File' || entry.type === 'Directory',
  );
}

/**
 * Replays the diff through a container's merged root (`root` = /proc/PID/root of a running
 * placeholder, frozen by the caller), not into its upper layer: an overlay whose layers change
 * under it while mounted misbehaves (creating a file in a directory it has already looked up fails
 * with ENOTEMPTY). Whiteouts become deletions, made through descriptors with no link followed.
 * Opaque directories (trusted.overlay.opaque) are not replayed: such a directory keeps its image files.
 */
export async function replayRootfsDiffThrough(root: string, tarFile: string): Promise<void> {
  const whiteouts: string[] = [];
  const isWhiteout = (entry: ReadEntry) => entry.type === 'CharacterDevice' && !entry.header.devmaj && !entry.header.devmin;
  await extractStrict(tarFile, root, "The checkpoint's rootfs changes", (p, entry) => {
    if (!isWhiteout(entry)) return true;
    whiteouts.push(p);
    return false;
  });
  for (const rel of whiteouts) await removeBelow(root, rel);
}
