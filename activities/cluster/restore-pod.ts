import type { PodPlacement } from '../../contract/kubernetes.js';
import type { CheckpointJobInput, PodWaitInput } from './checkpoint-job.js';
import type { Cluster } from './cluster.js';
import { kubeFailure, statusCode } from './kube-errors.js';
import { HASH_LABEL, RESTORE_ID_LABEL, ROLE_LABEL, restorePod, restorePodName } from './manifests.js';
import { adoptOwn, deleteOwned } from './owned-objects.js';
import { isPodBound, isPodReady, isPodRunning } from './pod-status.js';
import { placement, waitWithTimeout } from './pod-wait.js';
import { allowNamespace, allowWorkload } from './policy.js';

export interface RestorePodInput extends CheckpointJobInput {
  restoreId: string;
}
export interface RestorePodWaitInput extends PodWaitInput {
  restoreId: string;
  /** `bound`: the scheduler chose its node (its image may still be pulling). */
  until: 'bound' | 'running' | 'ready';
  /** The placeholder's UID, as its create returned it: another pod with copied labels is not waited for. */
  podUid?: string | undefined;
}

/** Creates the restore placeholder pod, on the checkpoint's node or where the scheduler places it. Idempotent like the Job, for this run only. */
export async function createRestorePod(
  cluster: Cluster,
  { hash, restoreId, kubernetes, owner = '' }: RestorePodInput,
): Promise<{ podName: string; namespace: string; uid: string }> {
  allowWorkload(cluster.policy, kubernetes);
  const { namespace } = kubernetes;
  const name = restorePodName(hash, restoreId);
  try {
    const body = restorePod(hash, restoreId, kubernetes, cluster.policy, owner);
    const created = await cluster.core.createNamespacedPod({ namespace, body });
    return { podName: name, namespace, uid: created.metadata?.uid ?? '' };
  } catch (err) {
    if (statusCode(err) !== 409) throw kubeFailure(err, `create Pod ${namespace}/${name}`);
    const existing = await cluster.core.readNamespacedPod({ name, namespace }).catch((e: unknown) => {
      throw kubeFailure(e, `read Pod ${namespace}/${name}`);
    });
    const expected = { [HASH_LABEL]: hash, [RESTORE_ID_LABEL]: restoreId, [ROLE_LABEL]: 'restore' };
    return { podName: name, namespace, uid: adoptOwn(existing.metadata, owner, `Pod ${namespace}/${name}`, expected) };
  }
}

export async function waitForRestorePod(
  cluster: Cluster,
  { hash, restoreId, namespace, timeoutMs, until, podUid }: RestorePodWaitInput,
): Promise<PodPlacement> {
  allowNamespace(cluster.policy, namespace);
  const selector = `${HASH_LABEL}=${hash},${RESTORE_ID_LABEL}=${restoreId}`;
  const reached = { bound: isPodBound, running: isPodRunning, ready: isPodReady }[until];
  const done = podUid ? (pod: Parameters<typeof reached>[0]) => pod.metadata?.uid === podUid && reached(pod) : reached;
  return placement(await waitWithTimeout(cluster, namespace, selector, timeoutMs, done, until === 'bound' ? 'bound to a node' : until));
}

/** Deletes the placeholder this run created; a foreign pod of that name stays. Already gone is success. */
export async function deleteRestorePod(
  cluster: Cluster,
  {
    hash,
    restoreId,
    namespace,
    uid,
    owner,
  }: { hash: string; restoreId: string; namespace: string; uid?: string | undefined; owner?: string | undefined },
): Promise<{ deleted: boolean }> {
  allowNamespace(cluster.policy, namespace);
  const name = restorePodName(hash, restoreId);
  return deleteOwned(
    { name, namespace, uid, owner },
    () => cluster.core.readNamespacedPod({ name, namespace }),
    (id) => cluster.core.deleteNamespacedPod({ name, namespace, body: { preconditions: { uid: id } } }),
    `Pod ${namespace}/${name}`,
  );
}
