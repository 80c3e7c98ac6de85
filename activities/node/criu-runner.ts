import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { execa } from 'execa';
import { criuLogExcerpt, parseCriuVersion } from './criu-args.js';
import { heartbeatWhile } from './heartbeat.js';

export interface CriuRun {
  ok: boolean;
  durationMs: number;
  /** The lines of CRIU's log that explain a failure; empty on success. */
  excerpt: string;
}

/**
 * Runs CRIU once, heartbeating `progress()` while it works; cancelling the activity kills it.
 * `extraFds` become fds 3, 4, ... of CRIU (for --inherit-fd).
 */
export async function runCriu(
  criuPath: string,
  args: string[],
  logFile: string,
  progress: () => Promise<unknown>,
  extraFds: number[] = [],
): Promise<CriuRun> {
  const started = Date.now();
  // Plain numbers hand our open fds to CRIU as its fds 3, 4, ...; execa supports that at run time
  // but its types accept numbers only for fds 0-2, hence the cast.
  const stdio = ['ignore', 'pipe', 'pipe', ...extraFds] as unknown as ['ignore', 'pipe', 'pipe'];
  const result = await heartbeatWhile(
    execa(criuPath, args, {
      reject: false,
      stdio,
      cancelSignal: Context.current().cancellationSignal,
      forceKillAfterDelay: 5000,
    }),
    progress,
  );
  const durationMs = Date.now() - started;
  if (result.exitCode === 0) return { ok: true, durationMs, excerpt: '' };
  const log = await readFile(logFile, 'utf8').catch(() => '');
  const output = [result.stderr, result.stdout].filter(Boolean).join('\n');
  const excerpt = criuLogExcerpt(log || String(output || result.message));
  return { ok: false, durationMs, excerpt: `${excerpt}\n(full log: ${path.resolve(logFile)})` };
}

let cachedVersion: Promise<string> | undefined;

export function criuVersion(criuPath: string): Promise<string> {
  cachedVersion ??= execa(criuPath, ['--version']).then(
    (r) => parseCriuVersion(r.stdout),
    () => 'unknown',
  );
  return cachedVersion;
}
