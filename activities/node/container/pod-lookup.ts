import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { bareContainerId } from '../../../contract/containers.js';
import { statusCode } from '../../cluster/kube-errors.js';
import type { PodLookup } from './target-policy.js';

/** Reads a pod through the Kubernetes API with the agent's own credentials (its Role may get pods, nothing else). */
export function kubernetesPodLookup(kubeConfig: KubeConfig): PodLookup {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return async (namespace, name) => {
    if (!namespace || !name) return undefined;
    try {
      const pod = await core.readNamespacedPod({ namespace, name });
      return {
        labels: pod.metadata?.labels ?? {},
        nodeName: pod.spec?.nodeName ?? '',
        containerIds: (pod.status?.containerStatuses ?? []).flatMap((s) => (s.containerID ? [bareContainerId(s.containerID)] : [])),
      };
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw err;
    }
  };
}
