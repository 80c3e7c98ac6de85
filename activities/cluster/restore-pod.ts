import { torporFailure } from '../../contract/failures.js';
import type { PodPlacement } from '../../contract/kubernetes.js';
import type { CheckpointJobInput, PodWaitInput } from './checkpoint-job.js';
import { allowNamespace, type Cluster } from './cluster.js';
import { kubeFailure, statusCode } from './kube-errors.js';
import { HASH_LABEL, RESTORE_ID_LABEL, restorePod, restorePodName } from './manifests.js';
import { isPodReady, isPodRunning } from './pod-status.js';
import { placement, waitWithTimeout } from './pod-wait.js';

export interface RestorePodInput extends CheckpointJobInput {
  restoreId: string;
}
export interface RestorePodWaitInput extends PodWaitInput {
  restoreId: string;
  until: 'running' | 'ready';
}

/** Creates the restore placeholder pod, pinned to the checkpoint's node. Idempotent like the Job. */
export async function createRestorePod(
  cluster: Cluster,
  { hash, restoreId, kubernetes }: RestorePodInput,
): Promise<{ podName: string; namespace: string }> {
  allowNamespace(cluster, kubernetes.namespace);
  const name = restorePodName(hash, restoreId);
  try {
    await cluster.core.createNamespacedPod({ namespace: kubernetes.namespace, body: restorePod(hash, restoreId, kubernetes) });
  } catch (err) {
    if (statusCode(err) !== 409) throw kubeFailure(err, `create Pod ${kubernetes.namespace}/${name}`);
    const existing = await cluster.core.readNamespacedPod({ name, namespace: kubernetes.namespace });
    if (existing.metadata?.labels?.[RESTORE_ID_LABEL] !== restoreId || existing.metadata?.labels?.[HASH_LABEL] !== hash) {
      throw torporFailure('TargetNotAllowed', `Pod ${kubernetes.namespace}/${name} exists but is not restore ${restoreId} of ${hash}`);
    }
  }
  return { podName: name, namespace: kubernetes.namespace };
}

export async function waitForRestorePod(
  cluster: Cluster,
  { hash, restoreId, namespace, timeoutMs, until }: RestorePodWaitInput,
): Promise<PodPlacement> {
  const selector = `${HASH_LABEL}=${hash},${RESTORE_ID_LABEL}=${restoreId}`;
  return placement(await waitWithTimeout(cluster, namespace, selector, timeoutMs, until === 'ready' ? isPodReady : isPodRunning, until));
}

export async function deleteRestorePod(
  cluster: Cluster,
  { hash, restoreId, namespace }: { hash: string; restoreId: string; namespace: string },
): Promise<void> {
  const name = restorePodName(hash, restoreId);
  try {
    await cluster.core.deleteNamespacedPod({ name, namespace });
  } catch (err) {
    if (statusCode(err) !== 404) throw kubeFailure(err, `delete Pod ${namespace}/${name}`);
  }
}
