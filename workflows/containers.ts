import { patched, uuid4 } from '@temporalio/workflow';
import type { ContainerLabels, RestoreIntoPlaceholderResult } from '../activities/node/container/types.js';
import {
  type ContainerCheckpointRequest,
  type ContainerRestoreRequest,
  parseContainerCheckpointRequest,
  parseContainerRestoreRequest,
} from '../contract/containers.js';
import type { GpuFreezeResult, GpuTarget, GpuThawResult } from '../contract/gpu-types.js';
import type { CheckpointManifest } from '../contract/types.js';
import { nodeActivities } from './activity-policies.js';
import { Compensations } from './compensations.js';
import { surfaceFailure } from './failures.js';
import { trackProgress } from './progress.js';
import { PLACEHOLDER_VERIFY_WHILE_RESTORING } from './restore-workloads.js';

export interface ContainerCheckpointResult {
  hash: string;
  node: string;
  containerId: string;
  outcome: 'created' | 'existing';
  labels: ContainerLabels;
  manifest: CheckpointManifest;
  stepMs: Record<string, number>;
}

export interface ContainerRestoreResult extends RestoreIntoPlaceholderResult {
  node: string;
  hash: string;
  verifiedBytes: number;
  stepMs: Record<string, number>;
  /** The GPU restore of the restored tree (pairs, driver times); absent for a checkpoint without GPU state. */
  gpu?: GpuThawResult;
}

/**
 * The patch under which the container workflows checkpoint and restore the container's GPU state
 * (freeze before the dump, thaw after the commit; check and restore-all into the placeholder);
 * histories from before recorded no GPU steps.
 */
export const CONTAINER_GPU_STEPS = 'container-gpu-steps';

/**
 * containerCheckpoint: validate → lock all, then checkpoint all CUDA processes of the container →
 * the node agent resolves and verifies the container from its runtime and dumps it (it keeps
 * running) → commit (sha256 manifest with the GPU record, rename, marker), as for a process →
 * restore all, then unlock all CUDA processes. Workflow ID `container-checkpoint/<hash>/<node>`;
 * a hash committed from the same container is returned as it is.
 */
export async function containerCheckpoint(request: ContainerCheckpointRequest): Promise<ContainerCheckpointResult> {
  const tracker = trackProgress();
  const spec = parseContainerCheckpointRequest(request);
  const { hash, node, containerId } = spec;
  tracker.identify(hash, node);
  const agent = nodeActivities(node, spec.agentTimeoutMs);
  const undo = new Compensations();
  try {
    const gpuTarget: GpuTarget = { hash, container: { id: containerId, role: 'source' }, nodeName: node };
    let frozen: GpuFreezeResult | undefined;
    if (patched(CONTAINER_GPU_STEPS)) {
      undo.add('thaw the GPU state', () => agent.heavy.gpuThaw(gpuTarget));
      frozen = await tracker.step('freezing-gpu', () => agent.heavy.gpuFreeze({ ...gpuTarget, lockTimeoutMs: spec.gpuLockTimeoutMs }));
    }
    const dumpId = `${hash}.${uuid4().slice(0, 8)}`;
    undo.add('discard the temporary dump', () => agent.quick.discardDump({ hash, dumpId }));
    const dumped = await tracker.step('dumping', () => agent.heavy.dumpContainer({ containerId, hash, dumpId, nodeName: node }));
    tracker.progress.bytesWritten = dumped.imageBytes;
    const manifest = await tracker.step('committing', () =>
      agent.heavy.commitCheckpoint({ hash, dumpId, startToReadyMs: 0, dumpMs: dumped.dumpMs, gpu: frozen?.gpu ?? null }),
    );
    // The container keeps serving after its dump: its CUDA processes run again once the checkpoint is committed.
    if (frozen && frozen.after !== 'none') await tracker.step('thawing-gpu', () => agent.heavy.gpuThaw(gpuTarget));
    tracker.set('done');
    const outcome = dumped.alreadyCommitted ? 'existing' : 'created';
    return { hash, node, containerId, outcome, labels: dumped.labels, manifest, stepMs: tracker.progress.stepMs };
  } catch (err) {
    tracker.set('compensating');
    await undo.run();
    tracker.set('failed');
    throw surfaceFailure(err, node);
  }
}

/**
 * containerRestore: validate → verify the checkpoint (marker, manifest, sizes) → check the placeholder's
 * GPUs against the recorded ones → the node agent checks the placeholder, replays the rootfs
 * changes, writes the restore marker and restores the process tree into the placeholder's
 * namespaces, holding it before it resumes until every byte is verified → restore all CUDA
 * processes onto the placeholder's GPUs (UUIDs paired), then unlock all. Workflow ID `container-restore/<hash>/<placeholder>`; run again, it finds the tree it
 * restored instead of restoring a second one.
 */
export async function containerRestore(request: ContainerRestoreRequest): Promise<ContainerRestoreResult> {
  const tracker = trackProgress();
  const spec = parseContainerRestoreRequest(request);
  const { hash, node } = spec;
  tracker.identify(hash, node);
  const agent = nodeActivities(node, spec.agentTimeoutMs);
  try {
    // The agent verifies the bytes while CRIU reads them; the verifying step then checks marker, manifest and sizes.
    const beside = patched(PLACEHOLDER_VERIFY_WHILE_RESTORING);
    const verified = await tracker.step('verifying', () =>
      agent.heavy.verifyCheckpoint(beside ? { hash, contents: 'at-restore' } : { hash }),
    );
    tracker.progress.bytesWritten = verified.verifiedBytes;
    const { placeholderContainerId } = spec;
    const recorded = verified.manifest.gpu ?? null;
    const gpuSteps = recorded !== null && patched(CONTAINER_GPU_STEPS);
    if (gpuSteps) {
      await tracker.step('checking-gpu', () => agent.quick.gpuCheckRestore({ recorded, hash, placeholderContainerId, nodeName: node }));
    }
    const restored = await tracker.step('restoring', () =>
      agent.heavy.restoreIntoPlaceholder({
        hash,
        placeholderContainerId,
        nodeName: node,
        ...(spec.restoreMarkerFile ? { restoreMarkerFile: spec.restoreMarkerFile } : {}),
      }),
    );
    // The restored tree blocks in its first CUDA call until its GPU state is back, on the placeholder's GPUs.
    const container = { id: placeholderContainerId, role: 'placeholder' as const };
    const gpu = gpuSteps
      ? await tracker.step('thawing-gpu', () => agent.heavy.gpuThaw({ hash, container, nodeName: node, recorded }))
      : undefined;
    const verifiedBytes = beside ? restored.verifiedBytes : verified.verifiedBytes;
    tracker.progress.bytesWritten = verifiedBytes;
    tracker.set('done');
    const result = { ...restored, node, hash, verifiedBytes, stepMs: tracker.progress.stepMs };
    return gpu ? { ...result, gpu } : result;
  } catch (err) {
    tracker.set('failed');
    throw surfaceFailure(err, node);
  }
}
