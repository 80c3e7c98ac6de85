import { patched } from '@temporalio/workflow';
import { parseRestoreRequest, type RestoreRequest } from '../contract/spec.js';
import type { RestoreResult } from '../contract/types.js';
import { SHARED_STORE } from './activity-policies.js';
import { Compensations } from './compensations.js';
import { surfaceFailure } from './failures.js';
import { trackProgress } from './progress.js';
import { placeRestore } from './restore-workloads.js';

/**
 * restore: validate → (kubernetes without a node: create the placeholder with an affinity to the
 * checkpoint's GPU model, wait until it is bound, fetch into that node's cache while it starts) → verify the checkpoint (marker, manifest, sizes; the checksums too, unless
 * the restore verifies them while CRIU reads the image, holding the process until they match)
 * → check the node's GPUs → (kubernetes: create the placeholder pod, wait until it runs, check its
 * GPUs instead) → CRIU restore → thaw the GPU (a placeholder's: onto its GPUs) → wait until the
 * restored app is ready. Workflow ID `restore/<hash>/<restoreId>`.
 */
export async function restore(request: RestoreRequest): Promise<RestoreResult> {
  const tracker = trackProgress();
  const spec = parseRestoreRequest(request);
  const { hash, restoreId } = spec;
  const undo = new Compensations();
  // Until the scheduler has placed a kubernetes placeholder without a node, failures name no node.
  let node = spec.node ?? '(not yet scheduled)';
  try {
    // The request's node, or (kubernetes, no node) the one the placeholder is bound to, which fetched the checkpoint meanwhile.
    const placed = await placeRestore(spec, { tracker, undo });
    const { agent, workload } = placed;
    node = placed.node;
    tracker.identify(hash, node, spec.kubernetes?.namespace ?? 'local');
    if (spec.sharedStore && !placed.fetched && patched(SHARED_STORE)) {
      await tracker.step('fetching', () => agent.heavy.fetchCheckpoint({ hash }));
    }
    const contents = workload.verifiesWhileRestoring() ? 'at-restore' : 'now';
    const verified = await tracker.step('verifying', () =>
      agent.heavy.verifyCheckpoint(contents === 'now' ? { hash } : { hash, contents }),
    );
    tracker.progress.bytesWritten = verified.verifiedBytes;
    const gpu = verified.manifest.gpu ?? null;
    // The local runtime restores onto the GPUs the request names; a placeholder pod gets its own from the device plugin.
    const gpus = spec.gpus ? { gpus: spec.gpus } : {};
    const onTarget = workload.checksGpuOnTarget();
    if (!onTarget) await tracker.step('checking-gpu', () => agent.quick.gpuCheckRestore({ recorded: gpu, ...gpus }));
    const target = await workload.prepareTarget();
    const { container } = target.gpu;
    if (onTarget && gpu && container) {
      const placeholder = { hash, placeholderContainerId: container.id, nodeName: node };
      await tracker.step('checking-gpu', () => agent.quick.gpuCheckRestore({ recorded: gpu, ...placeholder }));
    }
    const restored = await target.restore();
    if (restored.verifiedBytes !== undefined) tracker.progress.bytesWritten = restored.verifiedBytes;
    // The restored app blocks in its first CUDA call until its GPU state is back.
    if (gpu) await tracker.step('thawing-gpu', () => agent.heavy.gpuThaw({ ...target.gpu, recorded: gpu, ...(container ? {} : gpus) }));
    await tracker.step('waiting-restored-ready', () => target.waitReady());
    tracker.set('done');
    return {
      hash,
      node,
      restoreId,
      pid: restored.pid,
      logFile: restored.logFile,
      criuRestoreMs: restored.criuMs,
      stepMs: tracker.progress.stepMs,
    };
  } catch (err) {
    tracker.set('compensating');
    await undo.run();
    tracker.set('failed');
    throw surfaceFailure(err, node);
  }
}
