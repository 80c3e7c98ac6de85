import { Context } from '@temporalio/activity';

/** Counts bytes and heartbeats them at most once a second, so a stalled agent is noticed by heartbeat timeout. */
export function byteHeartbeat(phase: string): { add: (n: number) => void; readonly bytes: number } {
  let bytes = 0;
  let last = 0;
  return {
    add(n: number) {
      bytes += n;
      const now = Date.now();
      if (now - last >= 1000) {
        last = now;
        reportProgress({ phase, bytes });
        Context.current().heartbeat({ phase, bytes });
      }
    },
    get bytes() {
      return bytes;
    },
  };
}

/** The current activity's context; undefined when the code runs outside an activity (tests, tools). */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

const progress = new WeakMap<Context, Record<string, unknown>>();

/** Records where the current step is (phase, bytes); its step heartbeat sends it within a second. */
export function reportProgress(details: Record<string, unknown>): void {
  const ctx = activityContext();
  if (ctx) progress.set(ctx, details);
}

export const STEP_HEARTBEAT_MS = 1000;

/**
 * Heartbeats every second for the whole of `work` (one agent activity), with the step's name, the
 * time it has run and its latest reported progress. A step slower than its heartbeat timeout (a tar
 * of a big rootfs, a CRIU restore of 12 GB) is then never declared dead and retried while it still
 * runs; a dead agent still is, as its heartbeats stop. A stuck step is bounded by start-to-close.
 */
export async function stepHeartbeat<T>(step: string, work: () => Promise<T>): Promise<T> {
  const ctx = activityContext();
  if (!ctx) return work();
  const started = Date.now();
  const beat = () => ctx.heartbeat({ step, elapsedMs: Date.now() - started, ...progress.get(ctx) });
  const timer = setInterval(beat, STEP_HEARTBEAT_MS);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    progress.delete(ctx);
  }
}

/** Heartbeats once a second while `work` runs (a long driver or tool call); nothing outside an activity. */
export async function heartbeating<T>(phase: string, work: Promise<T>): Promise<T> {
  const ctx = activityContext();
  if (!ctx) return work;
  reportProgress({ phase });
  const started = Date.now();
  const timer = setInterval(() => ctx.heartbeat({ phase, elapsedMs: Date.now() - started }), 1000);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

/** The activity's cancellation signal and a heartbeat of `details()`, for a long-running tool. */
export function activityRunOptions(details: () => Promise<unknown>): { signal: AbortSignal; onProgress: () => Promise<void> } {
  const ctx = Context.current();
  return { signal: ctx.cancellationSignal, onProgress: async () => ctx.heartbeat(await details()) };
}

const POLL_MS = 50;

/**
 * Asks `check` every 50 ms, heartbeating `phase` and the time waited, until it returns a value;
 * once `timeoutMs` has passed, the result of `onTimeout` (which may throw the failure instead).
 * `wake`, when given, asks again as soon as it settles (an event that likely changed the answer).
 * A dead agent is noticed by the missing heartbeat; Temporal owns the retries.
 */
export async function pollUntil<T>(
  phase: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
  onTimeout: (waitedMs: number) => Promise<T>,
  wake?: Promise<unknown>,
): Promise<{ value: T; waitedMs: number }> {
  const ctx = Context.current();
  const started = Date.now();
  let woken = false;
  const early = wake?.then(
    () => {
      woken = true;
    },
    () => {
      woken = true;
    },
  );
  for (;;) {
    const value = await check();
    const waitedMs = Date.now() - started;
    if (value !== undefined) return { value, waitedMs };
    if (waitedMs > timeoutMs) return { value: await onTimeout(waitedMs), waitedMs };
    ctx.heartbeat({ phase, waitedMs });
    const nap = ctx.sleep(POLL_MS);
    // A nap cut short by `wake` may still reject on a later cancellation: nobody awaits it then.
    nap.catch(() => undefined);
    await (early && !woken ? Promise.race([nap, early]) : nap);
  }
}
