import { uuid4 } from '@temporalio/workflow';
import type { GpuFreezeResult } from '../contract/gpu-types.js';
import { type CheckpointRequest, establishedPolicy, parseCheckpointRequest } from '../contract/spec.js';
import type { CheckpointResult } from '../contract/types.js';
import { nodeActivities } from './activity-policies.js';
import { checkpointWorkload } from './checkpoint-workloads.js';
import { Compensations } from './compensations.js';
import { surfaceFailure } from './failures.js';
import { trackProgress } from './progress.js';

/**
 * checkpoint: validate → already committed? return it → start workload → wait ready → freeze the GPU
 * → CRIU dump → commit → thaw the GPU → signal the app → wait for it to exit → clean up.
 * Workflow ID `checkpoint/<hash>`.
 */
export async function checkpoint(request: CheckpointRequest): Promise<CheckpointResult> {
  const tracker = trackProgress();
  const spec = parseCheckpointRequest(request);
  const { hash, node } = spec;
  // keep: the dump ends the original while its connections stay locked for the restore to take over.
  const established = establishedPolicy(spec);
  const agent = nodeActivities(node, spec.agentTimeoutMs);
  const workload = checkpointWorkload(spec, agent);
  tracker.identify(hash, node, spec.kubernetes?.namespace ?? 'local');
  const undo = new Compensations();
  try {
    const existing = await tracker.step('looking-up', () => agent.quick.findCheckpoint({ hash }));
    if (existing) {
      tracker.set('done');
      return { hash, node, outcome: 'existing', manifest: existing, workloadEnd: 'not-started', stepMs: tracker.progress.stepMs };
    }

    undo.add('stop and remove the workload', () => workload.remove());
    await tracker.step('starting-workload', () => workload.start());
    const ready = await tracker.step('waiting-ready', () => workload.waitReady());
    const startToReadyMs = (tracker.progress.stepMs['starting-workload'] ?? 0) + (tracker.progress.stepMs['waiting-ready'] ?? 0);

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
    const manifest = await tracker.step('committing', () =>
      agent.heavy.commitCheckpoint({ hash, dumpId, startToReadyMs, dumpMs: dump.dumpMs, gpu: frozen?.gpu ?? null }),
    );
    // The original must run again to see the signal and exit: a frozen CUDA call would hang it. A
    // `keep` dump has ended it already.
    if (gpuTarget && frozen && frozen.after !== 'none' && established !== 'keep') {
      await tracker.step('thawing-gpu', () => agent.heavy.gpuThaw(gpuTarget));
    }

    await tracker.step('signalling', () => ready.signal());
    const exited = await tracker.step('waiting-exit', () => workload.waitExit());
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
