import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { execa } from 'execa';
import { activityContext, reportProgress, stepHeartbeat } from './heartbeat.js';

type Input = Record<string, unknown> | undefined;

const text = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
const both = (a: unknown, b: unknown) => (text(a) && text(b) ? `${a}/${b}` : undefined);

/**
 * The steps that must never run twice at once on one target, and what names the target. A
 * duplicate attempt (Temporal retried a step it thought dead, or a second workflow asks for the same
 * hash) would otherwise race the first: a second CRIU into the same placeholder, a dump that
 * deletes the staging directory the first one is writing.
 */
const LOCKED_STEPS: Record<string, (input: NonNullable<Input>) => string | undefined> = {
  dumpWorkload: (i) => text(i.hash),
  dumpContainer: (i) => text(i.hash),
  checkpointProcess: (i) => text(i.hash),
  commitCheckpoint: (i) => text(i.hash),
  verifyCheckpoint: (i) => text(i.hash),
  removeCheckpoint: (i) => text(i.hash),
  uploadCheckpoint: (i) => text(i.hash),
  fetchCheckpoint: (i) => text(i.hash),
  restoreCheckpoint: (i) => both(i.hash, i.restoreId),
  restoreIntoPlaceholder: (i) => both(i.hash, i.placeholderContainerId),
  gpuFreeze: (i) => text(i.hash),
  gpuThaw: (i) => text(i.hash),
};

/** The lock's name for `step` on `input`; undefined for a step that takes none. */
export function stepLockKey(step: string, input: Input): string | undefined {
  const target = input && LOCKED_STEPS[step]?.(input);
  return target ? `${step}:${target}` : undefined;
}

/** The lock file of `key`: a digest, so no input can name a path outside `lockDir`. */
export function stepLockFile(lockDir: string, key: string): string {
  return path.join(lockDir, `${createHash('sha256').update(key).digest('hex').slice(0, 32)}.lock`);
}

interface InFlight {
  input: Input;
  done: Promise<{ ok: true; value: unknown } | { ok: false }>;
}

const HOLDER = { stdin: 'pipe', reject: false } as const;
/** A held file lock; `release` drops it. */
interface FileLock {
  release(): Promise<void>;
}

const inFlight = new Map<string, InFlight>();

/** Rejects when the current activity is cancelled, so a waiting duplicate gives up with it. */
function untilCancelled(): Promise<never> {
  const signal = activityContext()?.cancellationSignal;
  return new Promise((_, reject) => {
    if (!signal) return;
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

/**
 * A lock someone else holds, waited for by flock(1), held by a `cat` that lives as long as its
 * stdin. The kernel drops the lock when the holder exits, so an agent that dies (or is killed in a
 * rollout) never leaves a stale lock behind, whatever PID namespace it ran in.
 */
async function heldByHolder(file: string): Promise<FileLock> {
  const holder = execa('flock', ['--exclusive', file, 'sh', '-c', 'echo locked; exec cat'], HOLDER);
  const locked = new Promise<void>((resolve, reject) => {
    holder.stdout.once('data', () => resolve());
    void holder.then((r) => reject(new Error(`flock ${file} ended before locking: ${r.stderr || r.exitCode}`)));
  });
  try {
    await Promise.race([locked, untilCancelled()]);
  } catch (err) {
    holder.kill();
    throw err;
  }
  return {
    async release() {
      holder.stdin?.end();
      await holder;
    },
  };
}

const LOCK_EX = 2;
const LOCK_NB = 4;
type Flock = (fd: number, operation: number) => number;
let flockCall: Flock | null | undefined;

/** flock(2) from libc through koffi (Node has none); null where it cannot be bound (musl, no koffi). */
function libcFlock(): Flock | null {
  if (flockCall === undefined) {
    try {
      const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
      flockCall = koffi.load('libc.so.6').func('int flock(int fd, int operation)') as Flock;
    } catch {
      flockCall = null;
    }
  }
  return flockCall;
}

/**
 * The same lock, taken in this process when no one holds it: flock(2) on a descriptor the agent
 * keeps open (libuv opens it close-on-exec, so neither CRIU nor a workload inherits it). flock(1),
 * another agent and the holder above see it; the kernel drops it with the descriptor, also when the
 * agent dies. Spawning a holder costs 10–25 ms on a loaded node; this costs microseconds.
 */
async function heldInProcess(file: string): Promise<FileLock | null> {
  const flock = libcFlock();
  if (flock === null) return null;
  const handle: FileHandle = await open(file, constants.O_RDONLY | constants.O_CREAT | constants.O_NOCTTY, 0o600);
  if (flock(handle.fd, LOCK_EX | LOCK_NB) !== 0) {
    await handle.close();
    return null;
  }
  return { release: () => handle.close() };
}

/**
 * The cross-process half: an exclusive flock on `<lockDir>/<sha256 of key>.lock`, taken in this
 * process when it is free, else waited for by a flock(1) holder (a blocking flock(2) could not be
 * given up on cancellation).
 */
async function fileLock(lockDir: string, key: string): Promise<FileLock> {
  await mkdir(lockDir, { recursive: true, mode: 0o700 });
  const file = stepLockFile(lockDir, key);
  return (await heldInProcess(file)) ?? (await heldByHolder(file));
}

/**
 * Runs `work` as the only attempt of `step` on its target. A duplicate that arrives while the first
 * runs in this agent waits for it and adopts its result when it asked for the same thing (the same
 * input) and the first succeeded; otherwise (the first failed, or another input) it runs after it,
 * and the step's own idempotence (a finished dump record, a committed hash, an already restored
 * placeholder) makes that second run cheap. Another agent process on the same store waits on the
 * file lock. Steps without a target run unlocked.
 */
export async function withStepLock<T>(lockDir: string, step: string, input: Input, work: () => Promise<T>): Promise<T> {
  const key = stepLockKey(step, input);
  if (!key) return work();
  for (let earlier = inFlight.get(key); earlier; earlier = inFlight.get(key)) {
    reportProgress({ phase: 'waiting for the same step already running', step: key });
    const outcome = await Promise.race([earlier.done, untilCancelled()]);
    if (outcome.ok && isDeepStrictEqual(earlier.input, input)) return outcome.value as T;
  }
  const run = (async () => {
    const lock = await fileLock(lockDir, key);
    try {
      return await work();
    } finally {
      await lock.release();
    }
  })();
  const entry: InFlight = {
    input,
    done: run.then(
      (value) => ({ ok: true as const, value }),
      () => ({ ok: false as const }),
    ),
  };
  inFlight.set(key, entry);
  try {
    return await run;
  } finally {
    if (inFlight.get(key) === entry) inFlight.delete(key);
  }
}

// biome-ignore lint/suspicious/noExplicitAny: activities take any one input
type Activities = Record<string, (input: any) => Promise<unknown>>;

/**
 * Every activity of the agent, heartbeating every second for its whole run (stepHeartbeat) and
 * locked against a duplicate attempt on the same target (withStepLock, in `lockDir`).
 */
export function guardedSteps<A extends Activities>(lockDir: string, activities: A): A {
  const guarded = Object.entries(activities).map(([step, run]) => [
    step,
    (input?: Input) => stepHeartbeat(step, () => withStepLock(lockDir, step, input, () => run(input))),
  ]);
  return Object.fromEntries(guarded) as A;
}
