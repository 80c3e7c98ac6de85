import type { BatchV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { torporFailure } from '../../contract/failures.js';

export interface Cluster {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  batch: BatchV1Api;
  /** Namespaces the control worker may create workloads in; empty means any. */
  allowedNamespaces: string[];
}

export function allowNamespace(cluster: Cluster, namespace: string): void {
  if (cluster.allowedNamespaces.length > 0 && !cluster.allowedNamespaces.includes(namespace)) {
    throw torporFailure(
      'TargetNotAllowed',
      `Namespace ${namespace} is not in this control worker's allowed namespaces (${cluster.allowedNamespaces.join(', ')})`,
    );
  }
}
