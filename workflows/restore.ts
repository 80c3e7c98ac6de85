import { patched } from '@temporalio/workflow';
import type { PodPlacement } from '../contract/kubernetes.js';
import { parseRestoreRequest, type RestoreRequest } from '../contract/spec.js';
import type { RestoreResult } from '../contract/types.js';
import { clusterActivities, KUBERNETES_CONTAINER_STEPS, nodeActivities } from './activity-policies.js';
import { Compensations } from './compensations.js';
import { surfaceFailure } from './failures.js';
import { trackProgress } from './progress.js';

/**
 * restore: validate → verify the checkpoint (marker + checksums) → check the node's GPUs
 * → (kubernetes: create the placeholder pod, wait until it runs) → CRIU restore → thaw the GPU
 * → wait until the restored app is ready. Workflow ID `restore/<hash>/<restoreId>`.
 */
export async function restore(request: RestoreRequest): Promise<RestoreResult> {
  const tracker = trackProgress();
  const spec = parseRestoreRequest(request);
  const { hash, node, restoreId } = spec;
  const agent = nodeActivities(node, spec.agentTimeoutMs);
  tracker.identify(hash, node);
  const undo = new Compensations();
  try {
    const verified = await tracker.step('verifying', () => agent.heavy.verifyCheckpoint({ hash }));
    tracker.progress.bytesWritten = verified.verifiedBytes;
    const gpu = verified.manifest.gpu ?? null;
    await tracker.step('checking-gpu', () => agent.quick.gpuCheckRestore({ recorded: gpu }));
    const placeholder = spec.kubernetes && {
      cluster: clusterActivities(spec.agentTimeoutMs),
      namespace: spec.kubernetes.namespace,
      kubernetes: { ...spec.kubernetes, node, command: spec.workload?.command ?? [], env: spec.workload?.env ?? {} },
    };
    let pod: PodPlacement | undefined;
    if (placeholder) {
      // kubernetes: the placeholder pod (same image, this node) is what the process is restored into.
      const { cluster, namespace, kubernetes } = placeholder;
      undo.add('delete the placeholder pod', () => cluster.quick.deleteRestorePod({ hash, restoreId, namespace }));
      await tracker.step('starting-workload', () => cluster.quick.createRestorePod({ hash, restoreId, kubernetes }));
      pod = await tracker.step('waiting-ready', () =>
        cluster
          .wait(spec.readyTimeoutMs)
          .waitForRestorePod({ hash, restoreId, namespace, timeoutMs: spec.readyTimeoutMs, until: 'running' }),
      );
    }
    // kubernetes: the tree goes into the placeholder's container; deleting the pod (above) undoes it.
    const intoContainer = pod !== undefined && patched(KUBERNETES_CONTAINER_STEPS);
    if (!intoContainer) undo.add('stop the restored process', () => agent.quick.stopRestored({ hash, restoreId }));
    const restored = await tracker.step('restoring', async () => {
      if (!intoContainer || !pod) return agent.heavy.restoreCheckpoint({ hash, restoreId });
      const placeholderContainerId = pod.containerId;
      const into = await agent.heavy.restoreIntoPlaceholder({ hash, placeholderContainerId, nodeName: node });
      return { pid: into.hostPid, logFile: '', criuMs: into.restoreMs };
    });
    // The restored app blocks in its first CUDA call until its GPU state is back.
    if (gpu) await tracker.step('thawing-gpu', () => agent.heavy.gpuThaw({ hash, restoreId }));
    await tracker.step<unknown>('waiting-restored-ready', () =>
      placeholder
        ? placeholder.cluster
            .wait(spec.readyTimeoutMs)
            .waitForRestorePod({ hash, restoreId, namespace: placeholder.namespace, timeoutMs: spec.readyTimeoutMs, until: 'ready' })
        : agent.wait(spec.readyTimeoutMs).waitRestoredReady({ hash, restoreId, readiness: spec.readiness, timeoutMs: spec.readyTimeoutMs }),
    );
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
