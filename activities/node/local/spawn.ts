import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { open, stat } from 'node:fs/promises';
import { constants } from 'node:os';
import { ChrekEnv } from '../../../contract/chrek.js';
import { torporFailure } from '../../../contract/failures.js';
import type { StartWorkloadInput, WorkloadContractFiles } from '../../../contract/types.js';
import type { LocalRuntimeConfig } from '../agent-config.js';
import { resolveProgram } from './spec-hash.js';
import { enterWorkloadCgroup } from './workload-cgroup.js';

/** The agent's own variables a workload inherits; everything else comes from the spec. */
const INHERITED_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'USER', 'PYTHONPATH'];

function contractEnv(hash: string, files: WorkloadContractFiles): Record<string, string> {
  return {
    [ChrekEnv.signalFile]: files.signalFile,
    [ChrekEnv.readyFile]: files.readyFile,
    [ChrekEnv.hash]: hash,
    [ChrekEnv.location]: files.location,
    // A directory on the node, which is what ChReK's "pvc" type means to the app.
    [ChrekEnv.storageType]: 'pvc',
    [ChrekEnv.restoreMarkerFile]: files.restoreMarkerFile,
  };
}

/** Names one start attempt in the workload's environment, so a retry finds the process an interrupted attempt started. */
export const START_ID_ENV = 'TORPOR_START_ID';

/** The shell's convention: an exit by signal is 128 + the signal's number. */
export function exitCode(code: number | null, signal: NodeJS.Signals | null): number | null {
  return code ?? (signal ? 128 + constants.signals[signal] : null);
}

/** Exit codes of workloads this agent process started (lost on agent restart, then reported as null). */
export type ExitCodes = Map<number, number | null>;

/**
 * The exit of each workload this agent process started: the kernel tells its parent at once
 * (SIGCHLD), where a poll of /proc notices it only at its next turn. Lost on agent restart.
 */
export type ChildExits = Map<number, Promise<void>>;

/** How the agent starts a workload: as whom, through which launcher, with which start id, in which cgroup. */
export interface SpawnOptions {
  owner: LocalRuntimeConfig;
  startId: string;
  launcher?: string | undefined;
  /** The workload cgroup's directories (workload-cgroup.ts), entered before the command runs. */
  cgroup: string[];
  exits: ChildExits;
}

/** The loader's variables would run code in the gate before it is in its cgroup: they are set only after. */
const GATED_PREFIX = 'TORPOR_GATED_';

/**
 * The gate the workload starts as: a shell of the workload's user that waits on fd 3 until the agent
 * has moved it into its cgroup, then execs the command (keeping its PID). Nothing it forks can be
 * left in the agent's cgroup, and no root process ever runs with the caller's environment.
 */
function gate(env: Record<string, string>): { script: string; env: Record<string, string> } {
  const gated = Object.keys(env).filter((name) => name.startsWith('LD_') && /^[A-Za-z0-9_]+$/.test(name));
  const restore = gated.map((name) => `export ${name}="$${GATED_PREFIX}${name}"; unset ${GATED_PREFIX}${name}; `).join('');
  const script = `IFS= read -r go <&3 && [ "$go" = go ] || exit 125; exec 3<&-; ${restore}exec "$@"`;
  const gatedEnv = Object.fromEntries(Object.entries(env).map(([k, v]) => [gated.includes(k) ? `${GATED_PREFIX}${k}` : k, v]));
  return { script, env: gatedEnv };
}

/**
 * Starts the workload detached with the ChReK environment, as the configured non-root user, its
 * output appended to its log, through `launcher` when the agent has one (torpor-no-io-uring execs
 * the command: the process keeps its PID).
 */
export async function spawnWorkload(
  input: StartWorkloadInput,
  files: WorkloadContractFiles,
  exitCodes: ExitCodes,
  { owner, startId, launcher, cgroup, exits }: SpawnOptions,
): Promise<number> {
  const [program, ...args] = input.workload.command as [string, ...string[]];
  const cwd = input.workload.cwd ?? process.cwd();
  if (
    !(await stat(cwd).then(
      (s) => s.isDirectory(),
      () => false,
    ))
  ) {
    throw torporFailure('WorkloadStartFailed', `Working directory ${cwd} does not exist on this node`);
  }
  const inherited = Object.fromEntries(INHERITED_ENV.flatMap((k) => (process.env[k] === undefined ? [] : [[k, process.env[k]]])));
  const env: Record<string, string> = { ...inherited, ...input.workload.env, ...contractEnv(input.hash, files), [START_ID_ENV]: startId };
  // Through the gate, a missing program would only show as its exit code: look it up first.
  if ((await resolveProgram(program, cwd, env.PATH ?? '')) === null) {
    throw torporFailure('WorkloadStartFailed', `Cannot start ${program}: ENOENT (not an executable file on PATH or relative to ${cwd})`);
  }
  const [file, argv] = launcher ? [launcher, [program, ...args]] : [program, args];
  // The agent opens the log (0600, its own); the workload only writes to the descriptor it is given.
  const log = await open(files.logFile, 'a', 0o600);
  try {
    // A detached child leads its own session and process group, as CRIU wants its dump root to.
    const entry = gate(env);
    const child = spawn('/bin/sh', ['-c', entry.script, 'torpor-gate', file, ...argv], {
      cwd,
      detached: true,
      stdio: ['ignore', log.fd, log.fd, 'pipe'],
      env: entry.env,
      uid: owner.uid,
      gid: owner.gid,
    });
    const [outcome] = (await Promise.race([once(child, 'spawn').then(() => ['spawned']), once(child, 'error')])) as [
      'spawned' | NodeJS.ErrnoException,
    ];
    if (outcome !== 'spawned') throw torporFailure('WorkloadStartFailed', `Cannot start ${program}: ${outcome.code ?? outcome.message}`);
    const pid = child.pid as number;
    exitCodes.set(pid, null);
    exits.set(
      pid,
      new Promise((resolve) =>
        child.on('exit', (code, signal) => {
          exitCodes.set(pid, exitCode(code, signal));
          resolve();
        }),
      ),
    );
    const opener = child.stdio[3] as NodeJS.WritableStream & { unref?: () => void };
    // A gate killed before it read fd 3 breaks the pipe: that is its exit to report, not the agent's error.
    opener.on('error', () => undefined);
    try {
      await enterWorkloadCgroup(cgroup, pid);
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
    opener.end('go\n');
    child.unref();
    opener.unref?.();
    return pid;
  } finally {
    await log.close();
  }
}
