import type { BatchV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { ClusterPolicy } from './policy.js';

export interface Cluster {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  batch: BatchV1Api;
  policy: ClusterPolicy;
}
