import { BatchV1Api, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Context } from '@temporalio/activity';
import { torporFailure } from '../../contract/failures.js';
import type { KubernetesWorkload, PodPlacement } from '../../contract/kubernetes.js';
import { kubeFailure, statusCode } from './kube-errors.js';
import {
  checkpointJob,
  checkpointJobName,
  checkpointSelector,
  HASH_LABEL,
  RESTORE_ID_LABEL,
  restorePod,
  restorePodName,
} from './manifests.js';
import { hasPodFinished, isPodReady, isPodRunning, pendingReason, podProblem } from './pod-status.js';
import { waitForPod } from './pod-watch.js';

export interface ClusterConfig {
  kubeConfig: KubeConfig;
  /** Namespaces the control worker may create workloads in; empty means any. */
  allowedNamespaces: string[];
}

export interface CheckpointJobInput {
  hash: string;
  kubernetes: KubernetesWorkload;
}
export interface PodWaitInput {
  hash: string;
  namespace: string;
  timeoutMs: number;
}
export interface RestorePodInput extends CheckpointJobInput {
  restoreId: string;
}
export interface RestorePodWaitInput extends PodWaitInput {
  restoreId: string;
  until: 'running' | 'ready';
}

function placement(pod: V1Pod): PodPlacement {
  return {
    namespace: pod.metadata?.namespace ?? '',
    podName: pod.metadata?.name ?? '',
    podUid: pod.metadata?.uid ?? '',
    nodeName: pod.spec?.nodeName ?? '',
    containerId: pod.status?.containerStatuses?.[0]?.containerID ?? '',
  };
}

/** The control worker's Kubernetes activities: checkpoint Jobs and restore placeholder Pods. */
export function clusterActivities(config: ClusterConfig) {
  const core = config.kubeConfig.makeApiClient(CoreV1Api);
  const batch = config.kubeConfig.makeApiClient(BatchV1Api);

  function allowNamespace(namespace: string): void {
    if (config.allowedNamespaces.length > 0 && !config.allowedNamespaces.includes(namespace)) {
      throw torporFailure(
        'TargetNotAllowed',
        `Namespace ${namespace} is not in this control worker's allowed namespaces (${config.allowedNamespaces.join(', ')})`,
      );
    }
  }

  /** The pod's latest events, for a failure a person reads. */
  async function events(pod: V1Pod): Promise<string> {
    const list = await core
      .listNamespacedEvent({ namespace: pod.metadata?.namespace ?? '', fieldSelector: `involvedObject.name=${pod.metadata?.name}` })
      .catch(() => ({ items: [] }));
    return list.items
      .map((e) => `${e.reason}: ${e.message}`)
      .slice(-5)
      .join('; ');
  }

  async function failIfBroken(pod: V1Pod): Promise<void> {
    const problem = podProblem(pod);
    if (problem === null) return;
    const type = problem.kind === 'start' ? 'WorkloadStartFailed' : 'WorkloadExited';
    const seen = await events(pod);
    throw torporFailure(
      type,
      `Pod ${pod.metadata?.namespace}/${pod.metadata?.name} ${problem.reason}: ${problem.message}${seen ? ` (events: ${seen})` : ''}`,
    );
  }

  async function waitWithTimeout(namespace: string, labelSelector: string, timeoutMs: number, done: (pod: V1Pod) => boolean, what: string) {
    const ctx = Context.current();
    let last: V1Pod | undefined;
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      return await waitForPod(config.kubeConfig, core, {
        namespace,
        labelSelector,
        done,
        check: failIfBroken,
        onProgress: (pods) => {
          last = pods[0] ?? last;
          ctx.heartbeat({ phase: what, podPhase: last?.status?.phase });
        },
        signal: AbortSignal.any([ctx.cancellationSignal, timeout]),
      });
    } catch (err) {
      if (!timeout.aborted) throw kubeFailure(err, `watch pods in ${namespace}`);
      const why = last ? (pendingReason(last) ?? `phase ${last.status?.phase}`) : 'no pod was created';
      throw torporFailure('WorkloadNotReady', `No pod matching ${labelSelector} became ${what} within ${timeoutMs} ms (${why})`);
    }
  }

  return {
    /** Creates the checkpoint Job; if it exists already (a retry), checks it is this hash's and reuses it. */
    async createCheckpointJob({ hash, kubernetes }: CheckpointJobInput): Promise<{ jobName: string; namespace: string }> {
      allowNamespace(kubernetes.namespace);
      const body = checkpointJob(hash, kubernetes);
      const name = checkpointJobName(hash);
      try {
        await batch.createNamespacedJob({ namespace: kubernetes.namespace, body });
      } catch (err) {
        if (statusCode(err) !== 409) throw kubeFailure(err, `create Job ${kubernetes.namespace}/${name}`);
        const existing = await batch.readNamespacedJob({ name, namespace: kubernetes.namespace }).catch((e: unknown) => {
          throw kubeFailure(e, `read Job ${kubernetes.namespace}/${name}`);
        });
        if (existing.metadata?.labels?.[HASH_LABEL] !== hash) {
          throw torporFailure('TargetNotAllowed', `Job ${kubernetes.namespace}/${name} exists but is not Torpor's checkpoint of ${hash}`);
        }
      }
      return { jobName: name, namespace: kubernetes.namespace };
    },

    /** Waits until the checkpoint Job's pod is Ready (its ready file exists); returns where it runs. */
    async waitForCheckpointPod({ hash, namespace, timeoutMs }: PodWaitInput): Promise<PodPlacement> {
      return placement(await waitWithTimeout(namespace, checkpointSelector(hash), timeoutMs, isPodReady, 'ready'));
    },

    /** Waits until the checkpoint pod has exited after its signal; false when it did not in time. */
    async waitForCheckpointPodExit({ hash, namespace, timeoutMs }: PodWaitInput): Promise<{ exited: boolean }> {
      const pods = await core.listNamespacedPod({ namespace, labelSelector: checkpointSelector(hash) });
      if (pods.items.every(hasPodFinished)) return { exited: true };
      try {
        await waitForPod(config.kubeConfig, core, {
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
    },

    /** Deletes the checkpoint Job and its pods. Already gone is success. */
    async deleteCheckpointJob({ hash, namespace }: { hash: string; namespace: string }): Promise<void> {
      const name = checkpointJobName(hash);
      try {
        await batch.deleteNamespacedJob({ name, namespace, propagationPolicy: 'Background' });
      } catch (err) {
        if (statusCode(err) !== 404) throw kubeFailure(err, `delete Job ${namespace}/${name}`);
      }
    },

    /** Creates the restore placeholder pod, pinned to the checkpoint's node. Idempotent like the Job. */
    async createRestorePod({ hash, restoreId, kubernetes }: RestorePodInput): Promise<{ podName: string; namespace: string }> {
      allowNamespace(kubernetes.namespace);
      const name = restorePodName(hash, restoreId);
      try {
        await core.createNamespacedPod({ namespace: kubernetes.namespace, body: restorePod(hash, restoreId, kubernetes) });
      } catch (err) {
        if (statusCode(err) !== 409) throw kubeFailure(err, `create Pod ${kubernetes.namespace}/${name}`);
        const existing = await core.readNamespacedPod({ name, namespace: kubernetes.namespace });
        if (existing.metadata?.labels?.[RESTORE_ID_LABEL] !== restoreId || existing.metadata?.labels?.[HASH_LABEL] !== hash) {
          throw torporFailure('TargetNotAllowed', `Pod ${kubernetes.namespace}/${name} exists but is not restore ${restoreId} of ${hash}`);
        }
      }
      return { podName: name, namespace: kubernetes.namespace };
    },

    async waitForRestorePod({ hash, restoreId, namespace, timeoutMs, until }: RestorePodWaitInput): Promise<PodPlacement> {
      const selector = `${HASH_LABEL}=${hash},${RESTORE_ID_LABEL}=${restoreId}`;
      return placement(await waitWithTimeout(namespace, selector, timeoutMs, until === 'ready' ? isPodReady : isPodRunning, until));
    },

    async deleteRestorePod({ hash, restoreId, namespace }: { hash: string; restoreId: string; namespace: string }): Promise<void> {
      const name = restorePodName(hash, restoreId);
      try {
        await core.deleteNamespacedPod({ name, namespace });
      } catch (err) {
        if (statusCode(err) !== 404) throw kubeFailure(err, `delete Pod ${namespace}/${name}`);
      }
    },
  };
}

export type ClusterActivities = ReturnType<typeof clusterActivities>;
