import { BatchV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { SharedStoreClient } from '../node/store/shared/client.js';
import type { SharedStoreConfig } from '../node/store/shared/config.js';
import { DirectoryStore, type DirectoryStoreConfig } from '../node/store/shared/directory-store.js';
import type { ObjectStore } from '../node/store/shared/object-store.js';
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
import { describeSharedCheckpoint, findSharedCheckpoint, type SharedCheckpointInput } from './shared-checkpoint.js';

export type { CheckpointJobInput, DeleteJobInput, PodWaitInput } from './checkpoint-job.js';
export type { ClusterPolicy } from './policy.js';
export type { RestorePodInput, RestorePodWaitInput } from './restore-pod.js';
export type { SharedCheckpointInput, SharedCheckpointPlacement } from './shared-checkpoint.js';

export interface ClusterConfig extends ClusterPolicy {
  kubeConfig: KubeConfig;
  /**
   * The agents' shared store (S3, or `sharedDir`, the shared filesystem of TORPOR_SHARED_DIR), read
   * for the GPU model a restore without a node is placed by, and for a checkpoint a request without a
   * node asks for again; absent: those requests fail.
   */
  sharedStore?: SharedStoreConfig | undefined;
  sharedDir?: DirectoryStoreConfig | undefined;
}

/** The same backend the agents open (store/shared/open-store.ts), read-only use here. */
function openSharedStore({ sharedStore, sharedDir }: Pick<ClusterConfig, 'sharedStore' | 'sharedDir'>): ObjectStore | undefined {
  if (sharedStore && sharedDir) throw new Error('The control worker was given both an S3 shared store and a shared directory: set one');
  if (sharedStore) return new SharedStoreClient(sharedStore);
  return sharedDir ? new DirectoryStore(sharedDir) : undefined;
}

/** The control worker's Kubernetes activities: checkpoint Jobs and restore placeholder Pods. Throws on a policy that allows nothing. */
export function clusterActivities(config: ClusterConfig) {
  const { kubeConfig, sharedStore, sharedDir, ...policy } = config;
  const store = openSharedStore({ sharedStore, sharedDir });
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
    findSharedCheckpoint: (input: SharedCheckpointInput) => findSharedCheckpoint(store, input),
  };
}

export type ClusterActivities = ReturnType<typeof clusterActivities>;
