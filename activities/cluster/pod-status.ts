import type { V1Pod } from '@kubernetes/client-node';

/** Pure reading of a pod's status: ready, and the failures that waiting longer cannot fix. */

export function isPodReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** Bound to a node by the scheduler (or created pinned to one): the node is known, its image may still be pulling. */
export function isPodBound(pod: V1Pod): boolean {
  return Boolean(pod.spec?.nodeName);
}

export function isPodRunning(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running';
}

export function hasPodFinished(pod: V1Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

export interface PodProblem {
  kind: 'start' | 'exit';
  reason: string;
  message: string;
}

const START_FAILURES = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);

/** A failure of the pod that no amount of waiting will repair, or null. */
export function podProblem(pod: V1Pod): PodProblem | null {
  for (const status of pod.status?.containerStatuses ?? []) {
    const waiting = status.state?.waiting;
    if (waiting?.reason && START_FAILURES.has(waiting.reason)) {
      return { kind: 'start', reason: waiting.reason, message: waiting.message ?? '' };
    }
    if (waiting?.reason === 'CrashLoopBackOff') return { kind: 'exit', reason: waiting.reason, message: waiting.message ?? '' };
    const terminated = status.state?.terminated;
    if (terminated) {
      return {
        kind: 'exit',
        reason: terminated.reason ?? `exit code ${terminated.exitCode}`,
        message: terminated.message ?? `exit code ${terminated.exitCode}`,
      };
    }
  }
  if (pod.status?.phase === 'Failed') return { kind: 'exit', reason: pod.status.reason ?? 'Failed', message: pod.status.message ?? '' };
  return null;
}

/** Why a pod is still pending, for a timeout's message (Unschedulable may clear by itself, so it is no failure). */
export function pendingReason(pod: V1Pod): string | null {
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False') return `${scheduled.reason ?? 'not scheduled'}: ${scheduled.message ?? ''}`;
  return null;
}
