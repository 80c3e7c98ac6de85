import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { execa, type ResultPromise } from 'execa';
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
type Holder = ResultPromise<typeof HOLDER>;

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
 * The cross-process half: flock(1) on `<lockDir>/<sha256 of key>.lock`, held by a `cat` that lives
 * as long as its stdin. The kernel drops the lock when the holder exits, so an agent that dies
 * (or is killed in a rollout) never leaves a stale lock behind, whatever PID namespace it ran in.
 * The holder is returned wrapped: returning the thenable itself would wait for the process to end.
 */
async function fileLock(lockDir: string, key: string): Promise<{ holder: Holder }> {
  await mkdir(lockDir, { recursive: true, mode: 0o700 });
  const file = stepLockFile(lockDir, key);
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
  return { holder };
}

async function release(holder: Holder): Promise<void> {
  holder.stdin?.end();
  await holder;
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
    const { holder } = await fileLock(lockDir, key);
    try {
      return await work();
    } finally {
      await release(holder);
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
