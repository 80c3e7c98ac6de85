import { KubeConfig } from '@kubernetes/client-node';
import { clusterActivities } from '../activities/cluster/index.js';

/**
 * The Kubernetes activities, when this worker has a cluster: in a pod (the ServiceAccount), or
 * given a KUBECONFIG. TORPOR_ALLOWED_NAMESPACES (comma-separated) limits where it creates workloads.
 */
export function clusterActivitiesFromEnv(env: NodeJS.ProcessEnv = process.env) {
  if (!env.KUBERNETES_SERVICE_HOST && !env.KUBECONFIG) return null;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  const allowedNamespaces = (env.TORPOR_ALLOWED_NAMESPACES ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  return clusterActivities({ kubeConfig, allowedNamespaces });
}
