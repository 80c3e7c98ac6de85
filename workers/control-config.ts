import { KubeConfig } from '@kubernetes/client-node';
import { type ClusterPolicy, clusterActivities } from '../activities/cluster/index.js';

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
}

/**
 * The operator's policy for the pods Torpor creates, from the control worker's environment (the
 * chart sets it). An empty allow-list refuses everything: the worker does not start.
 */
export function clusterPolicyFromEnv(env: NodeJS.ProcessEnv = process.env): ClusterPolicy {
  return {
    allowedNamespaces: list(env.TORPOR_ALLOWED_NAMESPACES),
    allowedImages: list(env.TORPOR_ALLOWED_IMAGES),
    requireImageDigest: env.TORPOR_REQUIRE_IMAGE_DIGEST === 'true',
    allowedServiceAccounts: list(env.TORPOR_ALLOWED_SERVICE_ACCOUNTS),
    checkpointHostPath: env.TORPOR_CHECKPOINT_HOST_PATH || '/var/lib/torpor/checkpoints',
    checkpointMountPath: env.TORPOR_CHECKPOINT_MOUNT_PATH || '/checkpoints',
    signalHostPath: env.TORPOR_SIGNAL_HOST_PATH || '/var/lib/chrek/signals',
  };
}

/** The Kubernetes activities, when this worker has a cluster: in a pod (the ServiceAccount), or given a KUBECONFIG. */
export function clusterActivitiesFromEnv(env: NodeJS.ProcessEnv = process.env) {
  if (!env.KUBERNETES_SERVICE_HOST && !env.KUBECONFIG) return null;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  return clusterActivities({ kubeConfig, ...clusterPolicyFromEnv(env) });
}
