import { KubeConfig } from '@kubernetes/client-node';
import { type ClusterPolicy, clusterActivities } from '../activities/cluster/index.js';
import { sharedDirConfigFromEnv, sharedStoreConfigFromEnv } from '../activities/node/store/shared/config.js';
import { positiveIntFromEnv } from './env-numbers.js';

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
  return clusterActivities({ kubeConfig, ...clusterPolicyFromEnv(env), ...controlSharedStoreFromEnv(env) });
}

/**
 * The agents' shared store, as they read it from the same variables (TORPOR_S3_* or TORPOR_SHARED_DIR,
 * read-only use here): where a restore without a node is placed, and whether a checkpoint without a
 * node exists already, are read from it.
 */
export function controlSharedStoreFromEnv(env: NodeJS.ProcessEnv = process.env) {
  return { sharedStore: sharedStoreConfigFromEnv(env), sharedDir: sharedDirConfigFromEnv(env) };
}

/**
 * The control worker's concurrency, each left to the SDK's default when unset (bench/results/load.md
 * measured them enough for 50 cycles in flight): TORPOR_CONTROL_WORKFLOW_TASK_SLOTS (workflow tasks
 * at once; SDK 40), TORPOR_CONTROL_CACHED_WORKFLOWS (workflows kept in memory between tasks; SDK:
 * from the heap size), TORPOR_CONTROL_ACTIVITY_SLOTS (Kubernetes activities at once; SDK 100),
 * TORPOR_CONTROL_WORKFLOW_THREADS (threads that run workflow code; SDK 1): a burst of new workflows
 * queues behind their first tasks on one thread (bench/results/load.md).
 */
export function controlWorkerTuningFromEnv(env: NodeJS.ProcessEnv = process.env) {
  const slots = positiveIntFromEnv(env, 'TORPOR_CONTROL_WORKFLOW_TASK_SLOTS');
  const cached = positiveIntFromEnv(env, 'TORPOR_CONTROL_CACHED_WORKFLOWS');
  const activities = positiveIntFromEnv(env, 'TORPOR_CONTROL_ACTIVITY_SLOTS');
  const threads = positiveIntFromEnv(env, 'TORPOR_CONTROL_WORKFLOW_THREADS');
  return {
    ...(threads === undefined ? {} : { workflowThreadPoolSize: threads }),
    ...(slots === undefined ? {} : { maxConcurrentWorkflowTaskExecutions: slots }),
    ...(cached === undefined ? {} : { maxCachedWorkflows: cached }),
    ...(activities === undefined ? {} : { maxConcurrentActivityTaskExecutions: activities }),
  };
}
