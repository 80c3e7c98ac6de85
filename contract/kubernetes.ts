import { z } from 'zod';
import { httpPathSchema, tcpPortSchema } from './network.js';

/** DNS-1123 label: namespaces, container names. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** DNS-1123 subdomain: object names such as a PVC or a node. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/**
 * Where and how the `kubernetes` runtime runs a workload (its command and environment come from the
 * request's `workload`), following ChReK's standalone guide: a checkpoint PVC, the signal host
 * path, a /tmp emptyDir, GPUs. The Job and the restore pod are pinned to the request's node.
 */
export const kubernetesSectionSchema = z.object({
  namespace: z.string().regex(DNS_LABEL, 'must be a Kubernetes namespace name'),
  image: z.string().min(1).max(1024),
  checkpointPvc: z.string().regex(DNS_SUBDOMAIN, 'must be a PersistentVolumeClaim name'),
  checkpointMountPath: z.string().startsWith('/').default('/checkpoints'),
  signalHostPath: z.string().startsWith('/').default('/var/lib/chrek/signals'),
  gpus: z.number().int().min(0).max(16).default(1),
  /** The restore placeholder's readiness probe: the app's own health endpoint, as a model server has. None when absent. */
  restoreHttpProbe: z.object({ port: tcpPortSchema, path: httpPathSchema }).optional(),
  serviceAccountName: z.string().regex(DNS_SUBDOMAIN).optional(),
});

export type KubernetesSection = z.output<typeof kubernetesSectionSchema>;

/** Everything a checkpoint Job or a restore pod is built from. */
export interface KubernetesWorkload extends KubernetesSection {
  node: string;
  command: string[];
  env: Record<string, string>;
}

/** The pod a workflow waits for: where it runs and which container holds the app. */
export interface PodPlacement {
  namespace: string;
  podName: string;
  podUid: string;
  nodeName: string;
  /** The runtime's container ID (`containerd://...`), the node agent's target. */
  containerId: string;
}
