import { Context } from '@temporalio/activity';
import { torporFailure } from '../../contract/failures.js';
import type { KubernetesWorkload, PodPlacement } from '../../contract/kubernetes.js';
import { allowNamespace, type Cluster } from './cluster.js';
import { kubeFailure, statusCode } from './kube-errors.js';
import { checkpointJob, checkpointJobName, checkpointSelector, HASH_LABEL } from './manifests.js';
import { hasPodFinished, isPodReady } from './pod-status.js';
import { placement, waitWithTimeout } from './pod-wait.js';
import { waitForPod } from './pod-watch.js';

export interface CheckpointJobInput {
  hash: string;
  kubernetes: KubernetesWorkload;
}
export interface PodWaitInput {
  hash: string;
  namespace: string;
  timeoutMs: number;
}

/** Creates the checkpoint Job; if it exists already (a retry), checks it is this hash's and reuses it. */
export async function createCheckpointJob(
  cluster: Cluster,
  { hash, kubernetes }: CheckpointJobInput,
): Promise<{ jobName: string; namespace: string }> {
  allowNamespace(cluster, kubernetes.namespace);
  const body = checkpointJob(hash, kubernetes);
  const name = checkpointJobName(hash);
  try {
    await cluster.batch.createNamespacedJob({ namespace: kubernetes.namespace, body });
  } catch (err) {
    if (statusCode(err) !== 409) throw kubeFailure(err, `create Job ${kubernetes.namespace}/${name}`);
    const existing = await cluster.batch.readNamespacedJob({ name, namespace: kubernetes.namespace }).catch((e: unknown) => {
      throw kubeFailure(e, `read Job ${kubernetes.namespace}/${name}`);
    });
    if (existing.metadata?.labels?.[HASH_LABEL] !== hash) {
      throw torporFailure('TargetNotAllowed', `Job ${kubernetes.namespace}/${name} exists but is not Torpor's checkpoint of ${hash}`);
    }
  }
  return { jobName: name, namespace: kubernetes.namespace };
}

/** Waits until the checkpoint Job's pod is Ready (its ready file exists); returns where it runs. */
export async function waitForCheckpointPod(cluster: Cluster, { hash, namespace, timeoutMs }: PodWaitInput): Promise<PodPlacement> {
  return placement(await waitWithTimeout(cluster, namespace, checkpointSelector(hash), timeoutMs, isPodReady, 'ready'));
}

/** Waits until the checkpoint pod has exited after its signal; false when it did not in time. */
export async function waitForCheckpointPodExit(
  cluster: Cluster,
  { hash, namespace, timeoutMs }: PodWaitInput,
): Promise<{ exited: boolean }> {
  const pods = await cluster.core.listNamespacedPod({ namespace, labelSelector: checkpointSelector(hash) });
  if (pods.items.every(hasPodFinished)) return { exited: true };
  try {
    await waitForPod(cluster.kubeConfig, cluster.core, {
      namespace,
      labelSelector: checkpointSelector(hash),
      done: hasPodFinished,
      check: async () => undefined,
      onProgress: () => Context.current().heartbeat({ phase: 'waiting-exit' }),
      signal: AbortSignal.any([Context.current().cancellationSignal, AbortSignal.timeout(timeoutMs)]),
    });
    return { exited: true };
  } catch (err) {
    if (Context.current().cancellationSignal.aborted) throw err;
    return { exited: false };
  }
}

/** Deletes the checkpoint Job and its pods. Already gone is success. */
export async function deleteCheckpointJob(cluster: Cluster, { hash, namespace }: { hash: string; namespace: string }): Promise<void> {
  const name = checkpointJobName(hash);
  try {
    await cluster.batch.deleteNamespacedJob({ name, namespace, propagationPolicy: 'Background' });
  } catch (err) {
    if (statusCode(err) !== 404) throw kubeFailure(err, `delete Job ${namespace}/${name}`);
  }
}
