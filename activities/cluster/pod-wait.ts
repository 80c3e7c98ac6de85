import type { V1Pod } from '@kubernetes/client-node';
import { Context } from '@temporalio/activity';
import { torporFailure } from '../../contract/failures.js';
import type { PodPlacement } from '../../contract/kubernetes.js';
import type { Cluster } from './cluster.js';
import { kubeFailure } from './kube-errors.js';
import { pendingReason, podProblem } from './pod-status.js';
import { waitForPod } from './pod-watch.js';

export function placement(pod: V1Pod): PodPlacement {
  return {
    namespace: pod.metadata?.namespace ?? '',
    podName: pod.metadata?.name ?? '',
    podUid: pod.metadata?.uid ?? '',
    nodeName: pod.spec?.nodeName ?? '',
    containerId: pod.status?.containerStatuses?.[0]?.containerID ?? '',
  };
}

/** The pod's latest events, for a failure a person reads. */
async function events(cluster: Cluster, pod: V1Pod): Promise<string> {
  const list = await cluster.core
    .listNamespacedEvent({ namespace: pod.metadata?.namespace ?? '', fieldSelector: `involvedObject.name=${pod.metadata?.name}` })
    .catch(() => ({ items: [] }));
  return list.items
    .map((e) => `${e.reason}: ${e.message}`)
    .slice(-5)
    .join('; ');
}

async function failIfBroken(cluster: Cluster, pod: V1Pod): Promise<void> {
  const problem = podProblem(pod);
  if (problem === null) return;
  const type = problem.kind === 'start' ? 'WorkloadStartFailed' : 'WorkloadExited';
  const seen = await events(cluster, pod);
  throw torporFailure(
    type,
    `Pod ${pod.metadata?.namespace}/${pod.metadata?.name} ${problem.reason}: ${problem.message}${seen ? ` (events: ${seen})` : ''}`,
  );
}

export async function waitWithTimeout(
  cluster: Cluster,
  namespace: string,
  labelSelector: string,
  timeoutMs: number,
  done: (pod: V1Pod) => boolean,
  what: string,
) {
  const ctx = Context.current();
  let last: V1Pod | undefined;
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    return await waitForPod(cluster.kubeConfig, cluster.core, {
      namespace,
      labelSelector,
      done,
      check: (pod) => failIfBroken(cluster, pod),
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
