import { patched, uuid4 } from '@temporalio/workflow';
import type { CheckpointSpec } from '../contract/spec.js';
import { establishedPolicy } from '../contract/spec.js';
import type { CheckpointManifest, CheckpointProcessResult } from '../contract/types.js';
import type { nodeActivities } from './activity-policies.js';
import type { PlacedCheckpoint } from './checkpoint-workloads.js';
import type { Compensations } from './compensations.js';
import type { ProgressTracker } from './progress.js';

/**
 * The patch under which a local checkpoint runs its node steps after ready as two activities: freeze
 * check, dump and commit (the app signalled beside the commit when no GPU state is to be thawed),
 * then exit wait and clean-up. Each round trip through the workflow costs a workflow task and a
 * dispatch (about 20 ms each here); histories from before ran every step as its own activity.
 */
export const LOCAL_CHECKPOINT_IN_ONE_STEP = 'local-checkpoint-in-one-step';

/**
 * The patch under which a local checkpoint looks up a committed checkpoint and starts its workload
 * in one node step: one workflow task and one dispatch less before the app starts; histories from
 * before ran findCheckpoint, then startWorkload.
 */
export const LOCAL_START_WITH_LOOK_UP = 'local-start-with-look-up';

type NodeAgent = ReturnType<typeof nodeActivities>;

/**
 * Already committed? Then that checkpoint; else the workload is started (unless placing it did),
 * its undo registered first. The agent's look-up time is shown as its own step, not as the start's.
 */
export async function lookUpOrStart(
  placed: PlacedCheckpoint,
  { hash, tracker, undo }: { hash: string; tracker: ProgressTracker; undo: Compensations },
): Promise<CheckpointManifest | null> {
  const { agent, workload } = placed;
  if (!placed.started && workload.startUnlessCommitted && patched(LOCAL_START_WITH_LOOK_UP)) {
    const merged = workload.startUnlessCommitted.bind(workload);
    undo.add('stop and remove the workload', () => workload.remove());
    const { existing, lookupMs } = await tracker.step('starting-workload', merged);
    const { stepMs } = tracker.progress;
    const startMs = Math.max(0, (stepMs['starting-workload'] ?? 0) - lookupMs);
    // In the order they ran, as the separate steps were shown.
    Reflect.deleteProperty(stepMs, 'starting-workload');
    Object.assign(stepMs, { 'looking-up': lookupMs, 'starting-workload': startMs });
    return existing;
  }
  const existing = await tracker.step('looking-up', () => agent.quick.findCheckpoint({ hash }));
  if (existing || placed.started) return existing;
  undo.add('stop and remove the workload', () => workload.remove());
  await tracker.step('starting-workload', () => workload.start());
  return null;
}

/** The local runtime's node steps after ready, merged on the agent (activities/node/local/checkpoint-in-one-step.ts). */
export interface OneStepCheckpoint {
  checkpoint(dumpId: string, startToReadyMs: number): Promise<CheckpointProcessResult>;
  thaw(): Promise<unknown>;
  signal(): Promise<unknown>;
  discard(dumpId: string): Promise<unknown>;
  /** True when it exited by itself after the signal; false when it had to be stopped. */
  finish(): Promise<boolean>;
}

export function oneStepCheckpoint(spec: CheckpointSpec, agent: NodeAgent): OneStepCheckpoint {
  const { hash } = spec;
  return {
    checkpoint: (dumpId, startToReadyMs) =>
      agent.heavy.checkpointProcess({
        hash,
        dumpId,
        established: establishedPolicy(spec),
        startToReadyMs,
        lockTimeoutMs: spec.gpuLockTimeoutMs,
      }),
    thaw: () => agent.heavy.gpuThaw({ hash }),
    signal: () => agent.quick.signalWorkload({ hash }),
    discard: (dumpId) => agent.quick.discardDump({ hash, dumpId }),
    async finish() {
      const exit = await agent.wait(spec.exitTimeoutMs).finishWorkload({ hash, timeoutMs: spec.exitTimeoutMs });
      return exit.exited;
    },
  };
}

/**
 * freeze → dump → commit ‖ signal, exit and clean-up (one node step) → [thaw → signal] → upload →
 * [wait exit and clean up, unless the first step saw the exit]. The undos are those of the separate steps, registered before the step that
 * needs them; the progress query shows each merged step with the agent's own wall time.
 */
export async function checkpointInOneStep(
  steps: OneStepCheckpoint,
  {
    hash,
    startToReadyMs,
    tracker,
    undo,
    upload,
  }: {
    hash: string;
    startToReadyMs: number;
    tracker: ProgressTracker;
    undo: Compensations;
    upload: () => Promise<void>;
  },
): Promise<{ manifest: CheckpointManifest; exited: boolean }> {
  undo.add('thaw the GPU state', () => steps.thaw());
  const dumpId = `${hash}.${uuid4().slice(0, 8)}`;
  undo.add('discard the temporary dump', () => steps.discard(dumpId));
  tracker.set('dumping');
  const done = await steps.checkpoint(dumpId, startToReadyMs);
  Object.assign(tracker.progress.stepMs, done.stepMs);
  tracker.progress.bytesWritten = done.dump.imageBytes;
  if (!done.signalled) {
    await tracker.step('thawing-gpu', () => steps.thaw());
    await tracker.step('signalling', () => steps.signal());
  }
  await upload();
  const exited = done.finished ? done.finished.exited : await tracker.step('waiting-exit', () => steps.finish());
  return { manifest: done.manifest, exited };
}
