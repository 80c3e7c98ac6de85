/** Pure builders for CRIU command lines; the activities that run them stay a few lines long. */

export interface DumpArgsInput {
  pid: number;
  imagesDir: string;
  workDir: string;
  extra: string[];
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
    // ChReK's flow: the app keeps running after the dump and exits when it sees the signal file.
    '--leave-running',
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
  extra: string[];
}

export function criuRestoreArgs(input: RestoreArgsInput): string[] {
  return [
    'restore',
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

/** `criu --version` prints "Version: 4.1.1" (and maybe a GitID line). */
export function parseCriuVersion(output: string): string {
  return /Version:\s*(\S+)/.exec(output)?.[1] ?? 'unknown';
}
