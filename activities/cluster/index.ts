import { BatchV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import {
  type CheckpointJobInput,
  createCheckpointJob,
  deleteCheckpointJob,
  type PodWaitInput,
  waitForCheckpointPod,
  waitForCheckpointPodExit,
} from './checkpoint-job.js';
import type { Cluster } from './cluster.js';
import { createRestorePod, deleteRestorePod, type RestorePodInput, type RestorePodWaitInput, waitForRestorePod } from './restore-pod.js';

export type { CheckpointJobInput, PodWaitInput } from './checkpoint-job.js';
export type { RestorePodInput, RestorePodWaitInput } from './restore-pod.js';

export interface ClusterConfig {
  kubeConfig: KubeConfig;
  /** Namespaces the control worker may create workloads in; empty means any. */
  allowedNamespaces: string[];
}

/** The control worker's Kubernetes activities: checkpoint Jobs and restore placeholder Pods. */
export function clusterActivities(config: ClusterConfig) {
  const cluster: Cluster = {
    kubeConfig: config.kubeConfig,
    core: config.kubeConfig.makeApiClient(CoreV1Api),
    batch: config.kubeConfig.makeApiClient(BatchV1Api),
    allowedNamespaces: config.allowedNamespaces,
  };
  return {
    createCheckpointJob: (input: CheckpointJobInput) => createCheckpointJob(cluster, input),
    waitForCheckpointPod: (input: PodWaitInput) => waitForCheckpointPod(cluster, input),
    waitForCheckpointPodExit: (input: PodWaitInput) => waitForCheckpointPodExit(cluster, input),
    deleteCheckpointJob: (input: { hash: string; namespace: string }) => deleteCheckpointJob(cluster, input),
    createRestorePod: (input: RestorePodInput) => createRestorePod(cluster, input),
    waitForRestorePod: (input: RestorePodWaitInput) => waitForRestorePod(cluster, input),
    deleteRestorePod: (input: { hash: string; restoreId: string; namespace: string }) => deleteRestorePod(cluster, input),
  };
}

export type ClusterActivities = ReturnType<typeof clusterActivities>;
