import path from 'node:path';
import type { GpuFreezeInput, GpuFreezeResult } from '../../../contract/gpu-types.js';
import type {
  CheckpointManifest,
  CheckpointProcessInput,
  CheckpointProcessResult,
  CommitInput,
  DumpResult,
  DumpWorkloadInput,
  HashInput,
  StartedWorkload,
  StartUnlessCommittedResult,
  StartWorkloadInput,
  WaitInput,
  WorkloadExit,
} from '../../../contract/types.js';
import { activityContext, reportProgress } from '../heartbeat.js';
import type { StoreLayout } from '../store/layout.js';
import { readRecord, writeRecord } from '../store/run-records.js';

/**
 * The node steps these compose, each idempotent on its own: a freeze of a checkpointed process is
 * success, a finished dump record is returned as it is, a committed hash returns its manifest, a
 * signal file written twice is the same file, an exit wait on a gone process ends at once.
 */
export interface ComposedSteps {
  findCheckpoint(input: HashInput): Promise<CheckpointManifest | null>;
  startWorkload(input: StartWorkloadInput): Promise<StartedWorkload>;
  gpuFreeze(input: GpuFreezeInput): Promise<GpuFreezeResult>;
  dumpWorkload(input: DumpWorkloadInput): Promise<DumpResult>;
  commitCheckpoint(input: CommitInput): Promise<CheckpointManifest>;
  signalWorkload(input: HashInput): Promise<void>;
  waitWorkloadExit(input: WaitInput): Promise<WorkloadExit>;
  stopWorkload(input: HashInput): Promise<{ stopped: boolean }>;
  cleanupWorkload(input: HashInput): Promise<void>;
}

/** `<runDir>/freeze.json`: what the freeze of dump `dumpId` found, for a retry that comes after the dump ended the process. */
interface FreezeRecord {
  dumpId: string;
  frozen: GpuFreezeResult;
}

async function timed<T>(stepMs: Record<string, number>, phase: string, run: () => Promise<T>): Promise<T> {
  reportProgress({ phase });
  const started = Date.now();
  try {
    return await run();
  } finally {
    stepMs[phase] = Date.now() - started;
  }
}

/** The freeze, or what an earlier attempt of the same dump recorded (its process may be gone since: `keep`, or signalled). */
async function freezeOnce(steps: ComposedSteps, file: string, input: CheckpointProcessInput): Promise<GpuFreezeResult> {
  const kept = await readRecord<FreezeRecord>(file);
  if (kept?.dumpId === input.dumpId) return kept.frozen;
  const frozen = await steps.gpuFreeze({ hash: input.hash, lockTimeoutMs: input.lockTimeoutMs });
  await writeRecord(file, { dumpId: input.dumpId, frozen } satisfies FreezeRecord);
  return frozen;
}

/** The original must run again to see the signal: a frozen CUDA call would hang it, so the workflow thaws it first. */
function signalBesideCommit(frozen: GpuFreezeResult, established: CheckpointProcessInput['established']): boolean {
  return frozen.after === 'none' || established === 'keep';
}

/** Dump, then commit; without GPU state to thaw, the app is signalled beside the commit. */
async function dumpAndCommit(
  steps: ComposedSteps,
  input: CheckpointProcessInput,
  frozen: GpuFreezeResult,
  stepMs: Record<string, number>,
): Promise<{ dump: DumpResult; manifest: CheckpointManifest }> {
  const { hash, dumpId, established, startToReadyMs } = input;
  const dump = await timed(stepMs, 'dumping', () => steps.dumpWorkload({ hash, dumpId, ...(established ? { established } : {}) }));
  const commit = () =>
    timed(stepMs, 'committing', () => steps.commitCheckpoint({ hash, dumpId, startToReadyMs, dumpMs: dump.criuMs, gpu: frozen.gpu }));
  if (!signalBesideCommit(frozen, established)) return { dump, manifest: await commit() };
  const cancelled = activityContext()?.cancellationSignal;
  if (cancelled?.aborted) throw cancelled.reason;
  // Once told, the commit runs to its end whatever happens: the app's state now lives only in the dump.
  const [committed, told] = await Promise.allSettled([commit(), timed(stepMs, 'signalling', () => steps.signalWorkload({ hash }))]);
  if (committed.status === 'rejected') throw committed.reason;
  if (told.status === 'rejected') throw told.reason;
  return { dump, manifest: committed.value };
}

/**
 * The app, told to exit beside the commit, polls for its signal file every few hundred ms: a short
 * wait here mostly sees it gone and spares the workflow a round trip; past it, the workflow waits.
 */
const EXIT_GRACE_MS = 1000;

async function exitedSoon(steps: ComposedSteps, hash: string, stepMs: Record<string, number>): Promise<WorkloadExit | null> {
  const exit = await timed(stepMs, 'waiting-exit', () => steps.waitWorkloadExit({ hash, timeoutMs: EXIT_GRACE_MS }));
  if (!exit.exited) return null;
  await steps.cleanupWorkload({ hash });
  return exit;
}

/** An earlier attempt finished it all, clean-up included: its records are gone, the checkpoint is committed. */
const finishedBefore = (manifest: CheckpointManifest, dumpId: string): CheckpointProcessResult => ({
  dump: { dumpId, imageBytes: manifest.totalBytes, criuMs: manifest.timings.dumpMs },
  manifest,
  signalled: true,
  finished: { exited: false, exitCode: null, waitedMs: 0 },
  stepMs: {},
});

/**
 * Freeze (a no-op without CUDA state), CRIU dump and commit of a local workload in one activity, so
 * the workflow pays one round trip instead of four; without GPU state to thaw first, the app is
 * signalled beside the commit, and its exit and clean-up are awaited briefly too. Retried after a
 * crash, each part finds what an earlier attempt finished: the freeze its record, the dump its
 * record (never dumped twice), the commit its manifest (a half commit is finished or redone).
 */
async function checkpointProcess(
  steps: ComposedSteps,
  layout: StoreLayout,
  input: CheckpointProcessInput,
): Promise<CheckpointProcessResult> {
  const { hash, dumpId } = input;
  // A committed hash: this run committed it in an earlier attempt (the workflow looked it up first).
  const earlier = await steps.findCheckpoint({ hash });
  if (earlier && (await readRecord(layout.workloadRecord(hash))) === null) return finishedBefore(earlier, dumpId);
  const stepMs: Record<string, number> = {};
  const frozen = await timed(stepMs, 'freezing-gpu', () => freezeOnce(steps, path.join(layout.runDir(hash), 'freeze.json'), input));
  const signalled = signalBesideCommit(frozen, input.established);
  let done: { dump: DumpResult; manifest: CheckpointManifest };
  if (earlier) {
    if (signalled) await timed(stepMs, 'signalling', () => steps.signalWorkload({ hash }));
    done = { dump: { dumpId, imageBytes: earlier.totalBytes, criuMs: earlier.timings.dumpMs }, manifest: earlier };
  } else {
    done = await dumpAndCommit(steps, input, frozen, stepMs);
  }
  const finished = signalled ? await exitedSoon(steps, hash, stepMs) : null;
  return { ...done, signalled, finished, stepMs };
}

/**
 * The look-up of a committed checkpoint and, when there is none, the start of the workload, in one
 * activity: the workflow pays one round trip (a workflow task and a dispatch, 15–25 ms here) less.
 * A retry finds the checkpoint still uncommitted and the start adopts what an earlier attempt started.
 */
async function startUnlessCommitted(steps: ComposedSteps, input: StartWorkloadInput): Promise<StartUnlessCommittedResult> {
  const started = Date.now();
  const existing = await steps.findCheckpoint({ hash: input.hash });
  const lookupMs = Date.now() - started;
  if (existing === null) await steps.startWorkload(input);
  return { existing, lookupMs };
}

/**
 * The exit wait, the stop of a workload that did not exit, and the clean-up, in one activity. A
 * retry after the clean-up finds no record: it reports "stopped", never a guess that it exited.
 */
async function finishWorkload(steps: ComposedSteps, layout: StoreLayout, input: WaitInput): Promise<WorkloadExit> {
  if ((await readRecord(layout.workloadRecord(input.hash))) === null) return { exited: false, exitCode: null, waitedMs: 0 };
  const exit = await steps.waitWorkloadExit(input);
  if (!exit.exited) await steps.stopWorkload({ hash: input.hash });
  await steps.cleanupWorkload({ hash: input.hash });
  return exit;
}

/** Activities made of the local runtime's steps (patches local-start-with-look-up and local-checkpoint-in-one-step in workflows/checkpoint.ts). */
export function oneStepActivities(steps: ComposedSteps, layout: StoreLayout) {
  return {
    startUnlessCommitted: (input: StartWorkloadInput) => startUnlessCommitted(steps, input),
    checkpointProcess: (input: CheckpointProcessInput) => checkpointProcess(steps, layout, input),
    finishWorkload: (input: WaitInput) => finishWorkload(steps, layout, input),
  };
}
