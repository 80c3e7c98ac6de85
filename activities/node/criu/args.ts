import type { NetworkPolicy } from '../../../contract/network.js';

/** Pure builders for CRIU command lines; the activities that run them stay a few lines long. */

export interface DumpArgsInput {
  pid: number;
  imagesDir: string;
  workDir: string;
  network: NetworkPolicy;
  extra: string[];
}

/**
 * Listening and bound sockets need no flag: CRIU always saves them. `keep` saves established
 * connections with TCP repair and leaves them locked after the dump, which kills the original (CRIU
 * unlocks only when the process keeps running); `close` saves none, so the original runs on (ChReK's
 * flow: it exits when it sees the signal file) and the restored copy finds those sockets closed.
 */
function dumpNetworkArgs({ established, lock }: NetworkPolicy): string[] {
  const connections = established === 'keep' ? ['--tcp-established'] : ['--leave-running', '--tcp-close'];
  return [...connections, '--network-lock', lock];
}

/** The restore takes over the locked connections of a `keep` dump and unlocks them with the same method. */
function restoreNetworkArgs({ established, lock }: NetworkPolicy): string[] {
  return [established === 'keep' ? '--tcp-established' : '--tcp-close', '--network-lock', lock];
}

export function criuDumpArgs(input: DumpArgsInput): string[] {
  return [
    'dump',
    '--tree',
    String(input.pid),
    '--images-dir',
    input.imagesDir,
    '--work-dir',
    input.workDir,
    '--log-file',
    'dump.log',
    '-v4',
    ...dumpNetworkArgs(input.network),
    '--file-locks',
    ...input.extra,
  ];
}

/** An fd the restored process inherits from CRIU instead of reopening the dumped file. */
export interface InheritedFd {
  fd: number;
  /** The path the process had open at dump time. */
  dumpedPath: string;
}

export interface RestoreArgsInput {
  imagesDir: string;
  workDir: string;
  pidFile: string;
  inherit: InheritedFd[];
  network: NetworkPolicy;
  extra: string[];
}

/**
 * `--manage-cgroups=ignore`: the restored tree stays in the cgroups of the CRIU that forks it (the
 * agent runs CRIU inside the restore's own workload cgroup), never the dumped paths, which CRIU's
 * default mode would recreate: those may be the cgroups of the agent that started the original.
 */
export function criuRestoreArgs(input: RestoreArgsInput): string[] {
  return [
    'restore',
    '--manage-cgroups=ignore',
    '--images-dir',
    input.imagesDir,
    '--work-dir',
    input.workDir,
    '--log-file',
    'restore.log',
    '-v4',
    '--restore-detached',
    '--pidfile',
    input.pidFile,
    ...restoreNetworkArgs(input.network),
    '--file-locks',
    ...input.inherit.flatMap(({ fd, dumpedPath }) => ['--inherit-fd', `fd[${fd}]:${inheritFdKey(dumpedPath)}`]),
    ...input.extra,
  ];
}

/**
 * CRIU names a dumped regular file by its path without the leading slash. The workload's log keeps
 * growing after the dump, so CRIU would refuse to reopen it ("has bad size"): the restored process
 * gets a fresh log through --inherit-fd instead.
 */
export function inheritFdKey(dumpedPath: string): string {
  return dumpedPath.replace(/^\/+/, '');
}

/** CRIU always logs this on an unprivileged rlimit; it is noise, not the cause of a failure. */
const HARMLESS = [/Can't setup RLIMIT_NOFILE for self/];

/** The lines of a CRIU log that explain a failure, for the error a person reads. */
export function criuLogExcerpt(log: string, maxLines = 12): string {
  const errors = log.split('\n').filter((line) => /Error|error:/.test(line) && !HARMLESS.some((re) => re.test(line)));
  const lines = errors.length > 0 ? errors : log.split('\n').filter((l) => l.trim() !== '');
  return lines.slice(-maxLines).join('\n');
}

/**
 * What a person can do about a known restore failure, from CRIU's log excerpt; null for others.
 * "Address already in use" on a listener is a TIME_WAIT remnant on its port: Linux lets no socket
 * bind or listen over one whose socket lacked SO_REUSEADDR, and CRIU binds only connections (in TCP
 * repair mode) over it, never listeners (bench/gpu/RESULTS.md, TP=2).
 */
export function restoreFailureHint(excerpt: string): string | null {
  if (!/Can't bind inet socket.*Address already in use/.test(excerpt)) return null;
  return (
    "A listening socket's port still holds TIME_WAIT remnants of connections the checkpointed process closed " +
    '(Linux keeps them 60 s, on this host only). Restore after they expire or on another node, have the app set ' +
    'SO_REUSEADDR on its sockets, or, for NCCL jobs, follow the multi-process contract (README).'
  );
}

/** `criu --version` prints "Version: 4.1.1" (and maybe a GitID line). */
export function parseCriuVersion(output: string): string {
  return /Version:\s*(\S+)/.exec(output)?.[1] ?? 'unknown';
}

/**
 * The oldest CRIU Torpor supports: 4.1 asks every socket for SO_PASSCRED, which Linux 6.18 refuses
 * for inet sockets, so it cannot dump any process holding a TCP or UDP socket.
 */
export const MIN_CRIU_VERSION = '4.2.0';

/** Numeric comparison of dotted versions ("4.10" is newer than "4.9"); a missing part counts as 0. */
export function compareVersions(a: string, b: string): number {
  const parts = (v: string) => v.split('.').map((p) => Number.parseInt(p, 10));
  const [pa, pb] = [parts(a), parts(b)];
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

/** Why this CRIU cannot serve the agent, or null when it can. */
export function criuVersionProblem(found: string, criuPath: string): string | null {
  if (/^\d+(\.\d+)*$/.test(found) && compareVersions(found, MIN_CRIU_VERSION) >= 0) return null;
  const what = found === 'unknown' ? 'a CRIU whose version it could not read' : `CRIU ${found}`;
  return (
    `Torpor needs CRIU ${MIN_CRIU_VERSION} or newer, but found ${what} at ${criuPath}. ` +
    'Older CRIU cannot dump a process that holds a TCP or UDP socket on current kernels. ' +
    'Install CRIU 4.2 (scripts/setup.sh unpacks it into .torpor/; the agent image ships it) or point TORPOR_CRIU at it.'
  );
}
