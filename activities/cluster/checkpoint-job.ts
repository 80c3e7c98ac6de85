import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { Context } from '@temporalio/activity';
import { torporFailure } from '../../contract/failures.js';
import type { KubernetesWorkload, PodPlacement } from '../../contract/kubernetes.js';
import type { Cluster } from './cluster.js';
import { kubeFailure, statusCode } from './kube-errors.js';
import { CONTROLLER_UID_LABEL, checkpointJob, checkpointJobName, HASH_LABEL, ROLE_LABEL } from './manifests.js';
import { adoptOwn, deleteOwned } from './owned-objects.js';
import { hasPodFinished, isPodBound, isPodReady } from './pod-status.js';
import { placement, waitWithTimeout } from './pod-wait.js';
import { waitForPod } from './pod-watch.js';
import { allowNamespace, allowWorkload } from './policy.js';

export interface CheckpointJobInput {
  hash: string;
  kubernetes: KubernetesWorkload;
  /** The workflow run that creates it (its run ID); recorded on the object. */
  owner?: string | undefined;
}
export interface PodWaitInput {
  hash: string;
  namespace: string;
  timeoutMs: number;
  /** The Job's UID, as its create returned it; its pods are found by it, not by labels a tenant can copy. */
  jobUid?: string | undefined;
}

/** Creates the checkpoint Job; if it exists already (a retry), reuses it only when this run created it. */
export async function createCheckpointJob(
  cluster: Cluster,
  { hash, kubernetes, owner = '' }: CheckpointJobInput,
): Promise<{ jobName: string; namespace: string; uid: string }> {
  allowWorkload(cluster.policy, kubernetes);
  const { namespace } = kubernetes;
  const name = checkpointJobName(hash);
  try {
    const created = await cluster.batch.createNamespacedJob({ namespace, body: checkpointJob(hash, kubernetes, cluster.policy, owner) });
    return { jobName: name, namespace, uid: created.metadata?.uid ?? '' };
  } catch (err) {
    if (statusCode(err) !== 409) throw kubeFailure(err, `create Job ${namespace}/${name}`);
    const existing = await cluster.batch.readNamespacedJob({ name, namespace }).catch((e: unknown) => {
      throw kubeFailure(e, `read Job ${namespace}/${name}`);
    });
    const uid = adoptOwn(existing.metadata, owner, `Job ${namespace}/${name}`, { [HASH_LABEL]: hash, [ROLE_LABEL]: 'checkpoint' });
    return { jobName: name, namespace, uid };
  }
}

/** The Job whose pods are waited for: the one of that name with the UID given (or, a workflow from before, whichever it is). */
async function jobOf(cluster: Cluster, { hash, namespace, jobUid }: PodWaitInput): Promise<V1Job> {
  allowNamespace(cluster.policy, namespace);
  const name = checkpointJobName(hash);
  const job = await cluster.batch.readNamespacedJob({ name, namespace }).catch((e: unknown) => {
    throw kubeFailure(e, `read Job ${namespace}/${name}`);
  });
  if (jobUid && job.metadata?.uid !== jobUid) {
    throw torporFailure('TargetNotAllowed', `Job ${namespace}/${name} is no longer the one this run created (UID ${jobUid})`);
  }
  return job;
}

/**
 * The Job's own pods: selected by the controller's UID label, confirmed by the controller owner
 * reference, and running the Job's container as the template says. The Job controller adopts an
 * orphan pod that copies the UID label, so the label and the reference alone do not prove that
 * Torpor's template made the pod.
 */
function controlledBy(job: V1Job) {
  const uid = job.metadata?.uid ?? '';
  const want = job.spec?.template.spec?.containers[0];
  const sameContainer = (pod: V1Pod) => {
    const have = pod.spec?.containers[0];
    return JSON.stringify([have?.image, have?.command, have?.env]) === JSON.stringify([want?.image, want?.command, want?.env]);
  };
  return {
    selector: `${CONTROLLER_UID_LABEL}=${uid}`,
    owned: (pod: V1Pod) =>
      (pod.metadata?.ownerReferences?.some((o) => o.kind === 'Job' && o.controller && o.uid === uid) ?? false) && sameContainer(pod),
  };
}

/** Waits until the checkpoint Job's pod is Ready (its ready file exists); returns where it runs. */
export async function waitForCheckpointPod(cluster: Cluster, input: PodWaitInput): Promise<PodPlacement> {
  const { selector, owned } = controlledBy(await jobOf(cluster, input));
  const ready = (pod: V1Pod) => owned(pod) && isPodReady(pod);
  return placement(await waitWithTimeout(cluster, input.namespace, selector, input.timeoutMs, ready, 'ready'));
}

/** Waits until the scheduler has bound the checkpoint Job's pod to a node; returns where (its container may not exist yet). */
export async function waitForCheckpointPodBound(cluster: Cluster, input: PodWaitInput): Promise<PodPlacement> {
  const { selector, owned } = controlledBy(await jobOf(cluster, input));
  const bound = (pod: V1Pod) => owned(pod) && isPodBound(pod);
  return placement(await waitWithTimeout(cluster, input.namespace, selector, input.timeoutMs, bound, 'bound to a node'));
}

/** Waits until the checkpoint pod has exited after its signal; false when it did not in time. */
export async function waitForCheckpointPodExit(cluster: Cluster, input: PodWaitInput): Promise<{ exited: boolean }> {
  const { namespace, timeoutMs } = input;
  const { selector, owned } = controlledBy(await jobOf(cluster, input));
  const pods = (await cluster.core.listNamespacedPod({ namespace, labelSelector: selector })).items.filter(owned);
  if (pods.every(hasPodFinished)) return { exited: true };
  try {
    await waitForPod(cluster.kubeConfig, cluster.core, {
      namespace,
      labelSelector: selector,
      done: (pod) => owned(pod) && hasPodFinished(pod),
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

export interface DeleteJobInput {
  hash: string;
  namespace: string;
  uid?: string | undefined;
  owner?: string | undefined;
}

/** Deletes the checkpoint Job this run created, and its pods; a foreign Job of that name stays. Already gone is success. */
export async function deleteCheckpointJob(
  cluster: Cluster,
  { hash, namespace, uid, owner }: DeleteJobInput,
): Promise<{ deleted: boolean }> {
  allowNamespace(cluster.policy, namespace);
  const name = checkpointJobName(hash);
  return deleteOwned(
    { name, namespace, uid, owner },
    () => cluster.batch.readNamespacedJob({ name, namespace }),
    (id) => cluster.batch.deleteNamespacedJob({ name, namespace, propagationPolicy: 'Background', body: { preconditions: { uid: id } } }),
    `Job ${namespace}/${name}`,
  );
}
