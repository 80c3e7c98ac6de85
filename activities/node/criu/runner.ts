import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { criuLogExcerpt, criuVersionProblem, parseCriuVersion } from './args.js';

export interface CriuRun {
  ok: boolean;
  durationMs: number;
  /** The lines of CRIU's log that explain a failure; empty on success. */
  excerpt: string;
}

export interface CriuRunOptions {
  /** CRIU's log (its --log-file, resolved against its --work-dir), read for the excerpt on failure. */
  logFile: string;
  /** Aborting it kills CRIU (an activity passes its cancellation signal). */
  signal?: AbortSignal;
  /** Called about once a second while CRIU runs (an activity heartbeats from it). */
  onProgress?: () => Promise<void>;
  /** Open fds handed to CRIU as its fds 3, 4, ... (for --inherit-fd). */
  extraFds?: number[];
  /**
   * A detached restore makes the restored tree a child of CRIU's parent. Run CRIU under
   * `setsid --fork --wait` so that parent is a short-lived process and the restored tree is
   * re-parented to the host's reaper: the agent could never reap a child it did not spawn.
   */
  orphanRestoredTree?: boolean;
  /** A command CRIU runs under (it ends by exec-ing the CRIU command line appended to it), to enter namespaces or cgroups first. */
  launcher?: string[];
  /** Variables added to CRIU's environment (its action scripts read them). */
  env?: Record<string, string>;
}

/** Runs CRIU once. Free of Temporal, so the GPU benchmark can drive it the same way the agent does. */
export async function runCriu(criuPath: string, args: string[], options: CriuRunOptions): Promise<CriuRun> {
  const started = Date.now();
  // execa passes plain numbers through as the child's extra fds at run time, but its types accept
  // numbers only for fds 0-2, hence the cast.
  const stdio = ['ignore', 'pipe', 'pipe', ...(options.extraFds ?? [])] as unknown as ['ignore', 'pipe', 'pipe'];
  const prefix = [...(options.orphanRestoredTree ? ['setsid', '--fork', '--wait'] : []), ...(options.launcher ?? [])];
  const [file = criuPath, ...argv] = [...prefix, criuPath, ...args];
  const child = execa(file, argv, {
    reject: false,
    stdio,
    forceKillAfterDelay: 5000,
    ...(options.signal ? { cancelSignal: options.signal } : {}),
    ...(options.env ? { env: options.env } : {}),
  });
  const timer = options.onProgress && setInterval(() => void options.onProgress?.().catch(() => undefined), 1000);
  const result = await child.finally(() => clearInterval(timer));
  // Killed because the step was cancelled: report the cancellation, not a CRIU failure.
  if (options.signal?.aborted) throw options.signal.reason;
  const durationMs = Date.now() - started;
  if (result.exitCode === 0) return { ok: true, durationMs, excerpt: '' };
  const log = await readFile(options.logFile, 'utf8').catch(() => '');
  const output = [result.stderr, result.stdout].filter(Boolean).join('\n');
  const excerpt = criuLogExcerpt(log || String(output || result.message));
  return { ok: false, durationMs, excerpt: `${excerpt}\n(full log: ${path.resolve(options.logFile)})` };
}

const versionOutputs = new Map<string, Promise<string>>();

/** What `criu --version` printed (empty when it did not run), asked once per executable. */
function criuVersionOutput(criuPath: string): Promise<string> {
  let output = versionOutputs.get(criuPath);
  if (!output) {
    output = execa(criuPath, ['--version']).then(
      (r) => r.stdout,
      () => '',
    );
    versionOutputs.set(criuPath, output);
  }
  return output;
}

export async function criuVersion(criuPath: string): Promise<string> {
  return parseCriuVersion(await criuVersionOutput(criuPath));
}

/**
 * What the agent's start-up line says of its CRIU: the version, and whether it is the set-up's build
 * with the parallel page restore (tools/criu-parallel/build.sh marks it in `criu --version`'s GitID).
 */
export async function describeCriu(criuPath: string): Promise<string> {
  const out = await criuVersionOutput(criuPath);
  const restore = /^GitID:.*\+torpor\.parallel-page-restore/m.test(out) ? 'parallel page restore' : 'stock page restore';
  const write = (await criuWritesPagesInParallel(criuPath)) ? ', parallel page write' : '';
  return `${criuPath} ${parseCriuVersion(out)} (${restore}${write})`;
}

/** Whether it is the set-up's build with tools/criu-parallel/parallel-page-write.patch (CRIU_PARALLEL_WRITERS). */
export async function criuWritesPagesInParallel(criuPath: string): Promise<boolean> {
  return /^GitID:.*\+torpor\.\S*parallel-page-write/m.test(await criuVersionOutput(criuPath));
}

/** The agent's start-up check: it refuses to serve with a CRIU older than Torpor supports. */
export async function assertSupportedCriu(criuPath: string): Promise<string> {
  const found = await criuVersion(criuPath);
  const problem = criuVersionProblem(found, criuPath);
  if (problem) throw new Error(problem);
  return found;
}
