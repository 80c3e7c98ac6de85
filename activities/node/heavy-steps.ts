import { AsyncLocalStorage } from 'node:async_hooks';
import os from 'node:os';
import PQueue from 'p-queue';
import { activityContext, reportProgress } from './heartbeat.js';

/**
 * The steps that read or write image bytes or run CRIU (and tar): a node can do only so many at
 * once before they fight over disk bandwidth, memory and cores, and a scale-up event asks for
 * dozens. GPU freeze and thaw are not here: they are bounded by the node's GPUs, and a thaw is the
 * undo that lets a frozen process run again, which must never wait behind other nodes' dumps.
 */
export const HEAVY_STEPS: ReadonlySet<string> = new Set([
  'dumpWorkload',
  'dumpContainer',
  'commitCheckpoint',
  // Freeze, dump and commit of a local workload: its freeze waits for the slot too, so no GPU stays frozen in the queue.
  'checkpointProcess',
  'verifyCheckpoint',
  'restoreCheckpoint',
  'restoreIntoPlaceholder',
  'deriveSpecHash',
  'uploadCheckpoint',
  'fetchCheckpoint',
]);

const GIB = 2 ** 30;
/** Memory one heavy step may need besides the page cache: CRIU's page buffers, a restored tree's first pages, hash buffers. */
export const MEMORY_PER_HEAVY_STEP_BYTES = 2 * GIB;

/**
 * The default limit: one heavy step per core (CRIU's page restore and sha256 each keep one core
 * busy), and no more than one per 2 GiB of available memory; at least one.
 */
export function defaultHeavyStepLimit(cores = os.availableParallelism(), availableBytes = os.freemem()): number {
  return Math.max(1, Math.min(cores, Math.floor(availableBytes / MEMORY_PER_HEAVY_STEP_BYTES)));
}

export interface HeavyStepQueue {
  readonly limit: number;
  readonly running: number;
  readonly waiting: number;
  /** Runs `work` once a slot is free; the current activity heartbeats "queued" (stepHeartbeat) until then. */
  run<T>(step: string, work: () => Promise<T>): Promise<T>;
}

interface Ticket {
  step: string;
  since: number;
  /** Updates the waiting activity's heartbeat details, in that activity's own context. */
  tell: () => void;
}

/**
 * A first-come, first-served limit on heavy steps in this agent process. A waiting step stays an
 * activity in progress: it keeps its worker slot and heartbeats `{ phase: 'queued', position,
 * waitingSinceMs }`, so neither its heartbeat timeout nor the workflow mistakes the wait for a dead
 * agent. A step cancelled while it waits leaves the queue; one cancelled while it runs keeps its
 * slot until it has stopped, so the limit holds for the processes it started.
 */
export function heavyStepQueue(limit: number): HeavyStepQueue {
  const queue = new PQueue({ concurrency: limit });
  const waiting: Ticket[] = [];
  const position = (t: Ticket) => waiting.indexOf(t) + 1;
  const leaveQueue = (t: Ticket) => {
    if (!waiting.includes(t)) return;
    waiting.splice(waiting.indexOf(t), 1);
    for (const other of waiting) other.tell();
  };
  return {
    limit,
    get running() {
      return queue.pending;
    },
    get waiting() {
      return queue.size;
    },
    async run<T>(step: string, work: () => Promise<T>): Promise<T> {
      const ctx = activityContext();
      const since = Date.now();
      const ticket: Ticket = {
        step,
        since,
        tell: AsyncLocalStorage.bind(() =>
          reportProgress({ phase: 'queued', position: position(ticket), waitingSinceMs: since, heavyStepLimit: limit }),
        ),
      };
      const leave = new AbortController();
      const onCancel = () => {
        if (waiting.includes(ticket)) leave.abort(ctx?.cancellationSignal.reason);
      };
      ctx?.cancellationSignal.addEventListener('abort', onCancel, { once: true });
      if (queue.pending >= limit) {
        waiting.push(ticket);
        ticket.tell();
        ctx?.log.info('heavy step queued', { step, position: position(ticket), waitingSinceMs: since, running: queue.pending, limit });
      }
      try {
        return await queue.add(
          async () => {
            leaveQueue(ticket);
            const waitedMs = Date.now() - ticket.since;
            reportProgress({ phase: 'running', queuedMs: waitedMs });
            ctx?.log.info('heavy step started', { step, waitedMs, running: queue.pending, waiting: queue.size, limit });
            const started = Date.now();
            try {
              return await work();
            } finally {
              ctx?.log.info('heavy step finished', { step, waitedMs, ranMs: Date.now() - started, waiting: queue.size });
            }
          },
          { signal: leave.signal },
        );
      } finally {
        ctx?.cancellationSignal.removeEventListener('abort', onCancel);
        leaveQueue(ticket);
      }
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: activities take any one input
type Activities = Record<string, (input: any) => Promise<unknown>>;

/** `activities` with every heavy step run through `queue`; the others unchanged. */
export function limitHeavySteps<A extends Activities>(queue: HeavyStepQueue, activities: A): A {
  const limited = Object.entries(activities).map(([step, run]) =>
    HEAVY_STEPS.has(step) ? [step, (input: unknown) => queue.run(step, () => run(input))] : [step, run],
  );
  return Object.fromEntries(limited) as A;
}
