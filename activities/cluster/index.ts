import { BatchV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { SharedStoreClient } from '../node/store/shared/client.js';
import type { SharedStoreConfig } from '../node/store/shared/config.js';
import {
  type CheckpointJobInput,
  createCheckpointJob,
  type DeleteJobInput,
  deleteCheckpointJob,
  type PodWaitInput,
  waitForCheckpointPod,
  waitForCheckpointPodBound,
  waitForCheckpointPodExit,
} from './checkpoint-job.js';
import type { Cluster } from './cluster.js';
import { type ClusterPolicy, checkClusterPolicy } from './policy.js';
import { createRestorePod, deleteRestorePod, type RestorePodInput, type RestorePodWaitInput, waitForRestorePod } from './restore-pod.js';
import { describeSharedCheckpoint, type SharedCheckpointInput } from './shared-checkpoint.js';

export type { CheckpointJobInput, DeleteJobInput, PodWaitInput } from './checkpoint-job.js';
export type { ClusterPolicy } from './policy.js';
export type { RestorePodInput, RestorePodWaitInput } from './restore-pod.js';
export type { SharedCheckpointInput, SharedCheckpointPlacement } from './shared-checkpoint.js';

export interface ClusterConfig extends ClusterPolicy {
  kubeConfig: KubeConfig;
  /** The agents' shared store, read for the GPU model a restore without a node is placed by; absent: such restores fail. */
  sharedStore?: SharedStoreConfig | undefined;
}

/** The control worker's Kubernetes activities: checkpoint Jobs and restore placeholder Pods. Throws on a policy that allows nothing. */
export function clusterActivities(config: ClusterConfig) {
  const { kubeConfig, sharedStore, ...policy } = config;
  const store = sharedStore ? new SharedStoreClient(sharedStore) : undefined;
  checkClusterPolicy(policy);
  const cluster: Cluster = {
    kubeConfig,
    core: kubeConfig.makeApiClient(CoreV1Api),
    batch: kubeConfig.makeApiClient(BatchV1Api),
    policy,
  };
  return {
    createCheckpointJob: (input: CheckpointJobInput) => createCheckpointJob(cluster, input),
    waitForCheckpointPod: (input: PodWaitInput) => waitForCheckpointPod(cluster, input),
    waitForCheckpointPodBound: (input: PodWaitInput) => waitForCheckpointPodBound(cluster, input),
    waitForCheckpointPodExit: (input: PodWaitInput) => waitForCheckpointPodExit(cluster, input),
    deleteCheckpointJob: (input: DeleteJobInput) => deleteCheckpointJob(cluster, input),
    createRestorePod: (input: RestorePodInput) => createRestorePod(cluster, input),
    waitForRestorePod: (input: RestorePodWaitInput) => waitForRestorePod(cluster, input),
    deleteRestorePod: (input: Parameters<typeof deleteRestorePod>[1]) => deleteRestorePod(cluster, input),
    describeSharedCheckpoint: (input: SharedCheckpointInput) => describeSharedCheckpoint(store, input),
  };
}

export type ClusterActivities = ReturnType<typeof clusterActivities>;
