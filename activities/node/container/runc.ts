import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { torporFailure } from '../../../contract/failures.js';
import type { NetworkLockMethod } from '../../../contract/network.js';
import { criuLogExcerpt } from '../criu/args.js';
import { heartbeating } from '../heartbeat.js';
import { readBundleSpec } from './placeholder-mounts.js';
import { checkContainerId } from './target-policy.js';
import type { ContainerAgentConfig, RuncContainer } from './types.js';

/**
 * CRIU options runc has no flag for, handed over through a CRIU config file (CRIU_CONFIG_FILE). A
 * container is restored into a placeholder's network namespace, where no saved connection could
 * continue: established connections are always closed; listening sockets are kept. CRIU locks the
 * container's whole network namespace while it dumps, with the node's lock method.
 */
export function criuDumpConfig(lock: NetworkLockMethod): string[] {
  return ['tcp-close', `network-lock ${lock}`];
}

type RuncConfig = Pick<ContainerAgentConfig, 'runcPath' | 'runcRoot' | 'criuPath'>;

/** runc passes its environment on to the CRIU it starts. */
function runcEnv(config: RuncConfig, criuConfigFile?: string, criuEnv: Record<string, string> = {}): Record<string, string> {
  // CRIU runs iptables-restore from PATH to lock the container's network; it sits beside the criu wrapper.
  const dir = path.isAbsolute(config.criuPath) ? `${path.dirname(config.criuPath)}:` : '';
  const env: Record<string, string> = { ...criuEnv, PATH: `${dir}${process.env.PATH ?? ''}` };
  if (criuConfigFile) env.CRIU_CONFIG_FILE = criuConfigFile;
  return env;
}

interface RuncRun {
  criuConfigFile?: string | undefined;
  signal?: AbortSignal | undefined;
  criuEnv?: Record<string, string> | undefined;
}

async function runc(config: RuncConfig, args: string[], { criuConfigFile, signal, criuEnv }: RuncRun = {}) {
  const child = execa(config.runcPath, ['--root', config.runcRoot, '--criu', config.criuPath, ...args], {
    reject: false,
    stdin: 'ignore',
    env: runcEnv(config, criuConfigFile, criuEnv),
    forceKillAfterDelay: 5000,
    ...(signal ? { cancelSignal: signal } : {}),
  });
  const result = await heartbeating(`runc ${args[0]}`, child);
  // Killed because the activity was cancelled: report the cancellation, not a runc failure.
  if (signal?.aborted) throw signal.reason;
  return result;
}

/** Asks runc for the container; undefined when runc does not know it under this root (not on this node). */
export async function runcState(config: RuncConfig, id: string): Promise<RuncContainer | undefined> {
  const result = await runc(config, ['state', id]);
  if (result.exitCode !== 0) {
    if (/does not exist|not exist|no such/i.test(String(result.stderr))) return undefined;
    throw torporFailure('TargetNotAllowed', `Could not ask runc about container ${id} (runc root ${config.runcRoot}): ${result.stderr}`, {
      containerId: id,
    });
  }
  const state = JSON.parse(String(result.stdout)) as { id: string; pid: number; status: string; bundle: string; rootfs: string };
  const spec = await readBundleSpec(state.bundle);
  return {
    id: state.id,
    initPid: state.pid,
    status: state.status,
    bundle: state.bundle,
    rootfs: state.rootfs,
    annotations: spec.annotations ?? {},
    args: spec.process?.args ?? [],
    env: spec.process?.env ?? [],
    mounts: spec.mounts ?? [],
  };
}

/** The container `containerId` names, as runc under this agent's root knows it; refused when runc does not know it here. */
export async function requireContainer(config: RuncConfig, containerId: string, what: string): Promise<RuncContainer> {
  const id = checkContainerId(containerId);
  const container = await runcState(config, id);
  if (!container) {
    throw torporFailure('TargetNotAllowed', `No ${what} "${id}" runs on this node (runc root ${config.runcRoot})`, { containerId: id });
  }
  return container;
}

export async function runcVersion(config: RuncConfig): Promise<string> {
  const result = await execa(config.runcPath, ['--version'], { reject: false });
  return /runc version (\S+)/.exec(String(result.stdout))?.[1] ?? 'unknown';
}

async function failureExcerpt(logFile: string, output: string): Promise<string> {
  const log = await readFile(logFile, 'utf8').catch(() => '');
  return `${criuLogExcerpt(log || output)}\n(full log: ${logFile})`;
}

export interface RuncCheckpointPaths {
  imageDir: string;
  workDir: string;
  criuConfigFile: string;
  signal?: AbortSignal;
  /** Variables for CRIU (its parallel page write). */
  criuEnv?: Record<string, string>;
}

/** `runc checkpoint --leave-running`: the container keeps serving; runc describes its mounts and cgroup to CRIU. */
export async function runcCheckpoint(config: RuncConfig, id: string, paths: RuncCheckpointPaths): Promise<void> {
  const args = ['checkpoint', '--leave-running', '--image-path', paths.imageDir, '--work-path', paths.workDir, id];
  const result = await runc(config, args, paths);
  if (result.exitCode === 0) return;
  const excerpt = await failureExcerpt(path.join(paths.workDir, 'dump.log'), `${result.stderr}`);
  throw torporFailure('DumpFailed', `The runc checkpoint of container ${id} failed: ${excerpt}`, { containerId: id });
}

/**
 * Freezes every process of the container (cgroup freezer) for `work`, then thaws it, even when
 * `work` fails: its files do not change while a checkpoint reads them. A container that cannot be
 * thawed again fails the step (its app would stay frozen), after `work`'s own failure if any.
 */
export async function whilePaused<T>(config: RuncConfig, id: string, work: () => Promise<T>): Promise<T> {
  const paused = await runc(config, ['pause', id]);
  if (paused.exitCode !== 0) {
    throw torporFailure('DumpFailed', `Could not pause container ${id} for its checkpoint: ${paused.stderr}`, { containerId: id });
  }
  const result = await work().then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  const resumed = await runc(config, ['resume', id]);
  if ('error' in result) throw result.error;
  if (resumed.exitCode !== 0) {
    throw torporFailure('DumpFailed', `Container ${id} was checkpointed but could not be resumed: ${resumed.stderr}`, { containerId: id });
  }
  return result.value;
}
