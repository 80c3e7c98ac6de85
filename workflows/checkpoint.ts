import { CancellationScope, patched, uuid4 } from '@temporalio/workflow';
import type { GpuFreezeResult } from '../contract/gpu-types.js';
import { type CheckpointRequest, establishedPolicy, parseCheckpointRequest } from '../contract/spec.js';
import type { CheckpointManifest, CheckpointResult } from '../contract/types.js';
import { SHARED_STORE } from './activity-policies.js';
import { checkpointInOneStep, LOCAL_CHECKPOINT_IN_ONE_STEP, lookUpOrStart } from './checkpoint-in-one-step.js';
import { committedInSharedStore } from './checkpoint-shared-first.js';
import { placeCheckpoint } from './checkpoint-workloads.js';
import { Compensations } from './compensations.js';
import { surfaceFailure } from './failures.js';
import { trackProgress } from './progress.js';

/**
 * The patch under which a checkpoint with no GPU state to thaw first signals the app and waits for
 * its exit while the agent commits the dump, so the app's reaction to the signal (its own poll) no
 * longer adds to the wall; histories from before committed first, then signalled.
 */
export const SIGNAL_BESIDE_COMMIT = 'signal-beside-commit';

/**
 * The dump is complete, so the app sees the signal and exits while the agent commits it. Once the
 * app was told to exit, the commit is what keeps its state: a cancellation waits for it, and a
 * failure of either side is thrown only when both have ended, so no undo races the commit.
 */
async function commitWhileExiting(
  commit: () => Promise<CheckpointManifest>,
  end: () => Promise<boolean>,
): Promise<[CheckpointManifest, boolean]> {
  // A cancellation that came before the app was told anything stops both.
  const scope = CancellationScope.current();
  if (scope.consideredCancelled) await scope.cancelRequested;
  const [committed, ended] = await Promise.allSettled([CancellationScope.nonCancellable(commit), end()]);
  if (committed.status === 'rejected') throw committed.reason;
  if (ended.status === 'rejected') throw ended.reason;
  return [committed.value, ended.value];
}

/**
 * checkpoint: validate → (kubernetes without a node: in the shared store already? return it; else
 * start the Job, wait until the scheduler binds its pod; the node steps go to that node) → already committed? return it → start workload → wait ready → freeze the GPU
 * → CRIU dump → commit → thaw the GPU → signal the app → wait for it to exit → clean up (without a
 * GPU to thaw, the app is signalled and exits while the dump is committed).
 * Workflow ID `checkpoint/<hash>`.
 */
export async function checkpoint(request: CheckpointRequest): Promise<CheckpointResult> {
  const tracker = trackProgress();
  const spec = parseCheckpointRequest(request);
  const { hash } = spec;
  // keep: the dump ends the original while its connections stay locked for the restore to take over.
  const established = establishedPolicy(spec);
  const undo = new Compensations();
  // Until the scheduler has placed a kubernetes workload without a node, failures name no node.
  let node = spec.node ?? '(not yet scheduled)';
  try {
    const shared = await committedInSharedStore(spec, tracker);
    if (shared) {
      tracker.identify(hash, shared.node, spec.kubernetes?.namespace);
      tracker.set('done');
      return {
        hash,
        node: shared.node,
        outcome: 'existing',
        manifest: shared,
        workloadEnd: 'not-started',
        stepMs: tracker.progress.stepMs,
      };
    }
    // The request's node, or (kubernetes, no node) the one the Job's pod is bound to: the Job is started by then.
    const placed = await placeCheckpoint(spec, { tracker, undo });
    const { agent, workload } = placed;
    node = placed.node;
    tracker.identify(hash, node, spec.kubernetes?.namespace ?? 'local');
    const existing = await lookUpOrStart(placed, { hash, tracker, undo });
    if (existing) {
      if (placed.started) await workload.remove();
      if (spec.sharedStore && patched(SHARED_STORE)) await tracker.step('uploading', () => agent.heavy.uploadCheckpoint({ hash }));
      tracker.set('done');
      const workloadEnd = placed.started ? 'stopped' : 'not-started';
      return { hash, node, outcome: 'existing', manifest: existing, workloadEnd, stepMs: tracker.progress.stepMs };
    }

    const ready = await tracker.step('waiting-ready', () => workload.waitReady());
    const { stepMs } = tracker.progress;
    const startToReadyMs = (stepMs['starting-workload'] ?? 0) + (stepMs.placing ?? 0) + (stepMs['waiting-ready'] ?? 0);
    if (ready.inOneStep && patched(LOCAL_CHECKPOINT_IN_ONE_STEP)) {
      const { manifest, exited } = await checkpointInOneStep(ready.inOneStep, {
        hash,
        startToReadyMs,
        tracker,
        undo,
        upload: async () => {
          if (spec.sharedStore && patched(SHARED_STORE)) await tracker.step('uploading', () => agent.heavy.uploadCheckpoint({ hash }));
        },
      });
      tracker.set('done');
      const workloadEnd = exited && established !== 'keep' ? 'exited' : 'stopped';
      return { hash, node, outcome: 'created', manifest, workloadEnd, stepMs: tracker.progress.stepMs };
    }

    let frozen: GpuFreezeResult | undefined;
    const gpuTarget = ready.gpu;
    if (gpuTarget) {
      undo.add('thaw the GPU state', () => agent.heavy.gpuThaw(gpuTarget));
      frozen = await tracker.step('freezing-gpu', () => agent.heavy.gpuFreeze({ ...gpuTarget, lockTimeoutMs: spec.gpuLockTimeoutMs }));
    }

    const dumpId = `${hash}.${uuid4().slice(0, 8)}`;
    undo.add('discard the temporary dump', () => agent.quick.discardDump({ hash, dumpId }));
    const dump = await tracker.step('dumping', () => ready.dump(dumpId));
    tracker.progress.bytesWritten = dump.imageBytes;
    const commit = () =>
      tracker.step('committing', () =>
        agent.heavy.commitCheckpoint({ hash, dumpId, startToReadyMs, dumpMs: dump.dumpMs, gpu: frozen?.gpu ?? null }),
      );
    const upload = async () => {
      if (spec.sharedStore && patched(SHARED_STORE)) await tracker.step('uploading', () => agent.heavy.uploadCheckpoint({ hash }));
    };
    const signal = () => tracker.step('signalling', () => ready.signal());
    const waitExit = () => tracker.step('waiting-exit', () => workload.waitExit());
    // The original must run again to see the signal and exit: a frozen CUDA call would hang it. A
    // `keep` dump has ended it already.
    const thawFirst = frozen !== undefined && frozen.after !== 'none' && established !== 'keep';
    let manifest: CheckpointManifest;
    let exited: boolean;
    if (!thawFirst && patched(SIGNAL_BESIDE_COMMIT)) {
      [manifest, exited] = await commitWhileExiting(commit, () => signal().then(waitExit));
      await upload();
    } else {
      manifest = await commit();
      if (gpuTarget && thawFirst) await tracker.step('thawing-gpu', () => agent.heavy.gpuThaw(gpuTarget));
      await signal();
      // While the app sees the signal and exits: an upload that fails leaves the checkpoint committed here.
      await upload();
      exited = await waitExit();
    }
    await workload.remove();
    tracker.set('done');
    const workloadEnd = exited && established !== 'keep' ? 'exited' : 'stopped';
    return { hash, node, outcome: 'created', manifest, workloadEnd, stepMs: tracker.progress.stepMs };
  } catch (err) {
    tracker.set('compensating');
    await undo.run();
    tracker.set('failed');
    throw surfaceFailure(err, node);
  }
}
