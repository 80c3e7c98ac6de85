import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { PodLookup } from './target-policy.js';

function statusCode(err: unknown): number | undefined {
  const e = err as { code?: number; statusCode?: number; response?: { statusCode?: number } };
  return e.code ?? e.statusCode ?? e.response?.statusCode;
}

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
        containerIds: (pod.status?.containerStatuses ?? []).flatMap((s) =>
          s.containerID ? [s.containerID.replace(/^[a-z][a-z0-9+.-]*:\/\//, '')] : [],
        ),
      };
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw err;
    }
  };
}
