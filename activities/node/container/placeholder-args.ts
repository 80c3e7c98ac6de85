import path from 'node:path';
import type { NetworkLockMethod } from '../../../contract/network.js';

/** Namespaces the restored tree shares with the placeholder; CRIU joins them (--join-ns) instead of creating its own. */
export const JOINED_NAMESPACES = ['net', 'ipc', 'uts'] as const;

/** Moves this shell into the cgroups named before "--" (writing to their cgroup.procs), then execs the rest. */
export const JOIN_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1"; shift; done; shift; exec "$@"';

/** The fd CRIU gets the first inherited file as (after stdin, stdout and stderr). */
const FIRST_INHERITED_FD = 3;

export interface PlaceholderRestoreArgsInput {
  /** The checkpoint's CRIU images, and CRIU's work directory (its restore.log). */
  imageDir: string;
  workDir: string;
  /** The placeholder's init, as the host sees it. */
  initPid: number;
  /** The placeholder's rootfs: the restored mount namespace is built on it. */
  rootfs: string;
  /** The placeholder's cgroup directories on this host: CRIU starts in them. */
  cgroupDirs: string[];
  /** Each external mount of the dump (its key) and the placeholder's source that replaces it. */
  externalMounts: Array<[string, string]>;
  /** What fds 0-2 of the dumped init were (runc's descriptors.json: "pipe:[123]", "/dev/null", ...). */
  dumpedStdio: string[];
  networkLock: NetworkLockMethod;
  /**
   * The dumped container had joined its pod sandbox's network namespace by path (a CNI pod: runc
   * dumps it as external, key `extRootNetNS`): CRIU then takes the placeholder's as that key.
   */
  externalNetns?: boolean;
}

/** runc's CRIU key for a container network namespace given by path. */
export const EXTERNAL_NETNS_KEY = 'extRootNetNS';

/** A file the agent opens and hands to CRIU: the n-th one (from 0) is CRIU's fd 3 + n. */
export interface InheritedFile {
  path: string;
  /** Pipes are opened read-write, so opening the placeholder's pipe never blocks waiting for its other end. */
  flags: 'r' | 'r+';
}

export interface PlaceholderRestoreCommand {
  /** CRIU's arguments. */
  args: string[];
  /** What CRIU runs under: the placeholder's cgroups, its PID namespace, a mount namespace with a /proc of its own. */
  launcher: string[];
  /** Opened in this order and handed to CRIU as fds 3, 4, ... */
  inheritedFiles: InheritedFile[];
}

/**
 * The CRIU command line of a restore into a placeholder. CRIU runs inside the placeholder's PID
 * namespace with a /proc of its own, so the namespaces it joins go as fds it inherits (3, 4, ...)
 * rather than as paths under the host's /proc; the dumped init's stdio pipes are replaced by the
 * placeholder init's (so the container's log shows the restored app). Established connections are
 * closed; listening sockets come back in the placeholder's network namespace, on its address.
 * CRIU 4's default mount engine fails to restore a rootfs whose /lib is a merged-/usr symlink
 * ("mnt-v2: Failed to move_mount ... Invalid argument"): the compat engine restores it.
 */
export function placeholderRestoreArgs(input: PlaceholderRestoreArgsInput): PlaceholderRestoreCommand {
  const inheritedFiles: InheritedFile[] = [];
  const inherit = (file: InheritedFile) => FIRST_INHERITED_FD + inheritedFiles.push(file) - 1;
  const args = ['restore', '-D', input.imageDir, '-W', input.workDir, '-o', 'restore.log', '-v4', '--root', input.rootfs];
  for (const ns of JOINED_NAMESPACES) {
    const fd = inherit({ path: `/proc/${input.initPid}/ns/${ns}`, flags: 'r' });
    if (ns === 'net' && input.externalNetns) args.push('--inherit-fd', `fd[${fd}]:${EXTERNAL_NETNS_KEY}`);
    else args.push('--join-ns', `${ns}:/proc/self/fd/${fd}`);
  }
  for (const [key, source] of input.externalMounts) args.push('--ext-mount-map', `${key}:${source}`);
  for (const [fd, name] of input.dumpedStdio.entries()) {
    if (!name.startsWith('pipe:')) continue;
    args.push('--inherit-fd', `fd[${inherit({ path: `/proc/${input.initPid}/fd/${fd}`, flags: 'r+' })}]:${name}`);
  }
  args.push('--manage-cgroups=ignore', '--mntns-compat-mode', '--tcp-close', '--network-lock', input.networkLock, '--restore-detached');
  const launcher = [
    ...['sh', '-c', JOIN_CGROUPS, 'sh', ...input.cgroupDirs.map((dir) => path.join(dir, 'cgroup.procs')), '--'],
    ...['nsenter', `--target=${input.initPid}`, '--pid', '--'],
    ...['unshare', '--mount', '--propagation=private', '--mount-proc', '--'],
  ];
  return { args, launcher, inheritedFiles };
}
