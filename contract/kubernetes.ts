import { z } from 'zod';
import { torporFailure } from './failures.js';
import { httpPathSchema, tcpPortSchema } from './network.js';

/** DNS-1123 label: namespaces, container names. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** DNS-1123 subdomain: object names such as a ServiceAccount. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/**
 * Fields an older request carried that now come from the control worker's configuration: a request
 * never chooses what is mounted into a pod. They stay in the schema (recorded histories replay with
 * them) so that the control worker sees them and refuses the request, naming the field.
 */
export const WORKER_CONFIGURED_FIELDS = {
  checkpointPvc: 'TORPOR_CHECKPOINT_HOST_PATH (the node agent’s per-node store)',
  checkpointMountPath: 'TORPOR_CHECKPOINT_MOUNT_PATH',
  signalHostPath: 'TORPOR_SIGNAL_HOST_PATH',
} as const;

/**
 * Where and how the `kubernetes` runtime runs a workload (its command and environment come from the
 * request's `workload`), following ChReK's standalone guide. The request picks the namespace, the
 * image and the ServiceAccount, each only from the control worker's allow-lists, and the GPUs; the
 * volumes come from the control worker's configuration. The Job and the restore pod are pinned to
 * the request's node, or, without one, placed by the scheduler.
 */
/** A label key (`prefix/name` or `name`) and value, as a node selector names them. */
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

export const kubernetesSectionSchema = z.object({
  namespace: z.string().regex(DNS_LABEL, 'must be a Kubernetes namespace name'),
  image: z.string().min(1).max(1024),
  gpus: z.number().int().min(0).max(16).default(1),
  /**
   * Labels the node must have (a GPU pool, a zone): the pods are scheduled like any pod. It only
   * narrows where they may run; with a node named in the request, that node must match it too.
   */
  nodeSelector: z
    .record(z.string().regex(LABEL_KEY, 'is not a label key'), z.string().regex(LABEL_VALUE, 'is not a label value'))
    .refine((labels) => Object.keys(labels).length <= 16, 'may hold at most 16 labels')
    .optional(),
  /** The restore placeholder's readiness probe: the app's own health endpoint, as a model server has. None when absent. */
  restoreHttpProbe: z.object({ port: tcpPortSchema, path: httpPathSchema }).optional(),
  serviceAccountName: z.string().regex(DNS_SUBDOMAIN).optional(),
  checkpointPvc: z.unknown().optional(),
  checkpointMountPath: z.unknown().optional(),
  signalHostPath: z.unknown().optional(),
});

export type KubernetesSection = z.output<typeof kubernetesSectionSchema>;

/** The refusals for fields a request may no longer set (empty when there are none). */
export function workerConfiguredFieldProblems(section: object | undefined): string[] {
  return Object.entries(WORKER_CONFIGURED_FIELDS)
    .filter(([field]) => section !== undefined && (section as Record<string, unknown>)[field] !== undefined)
    .map(([field, setting]) => `kubernetes.${field} is now control worker configuration (${setting}); remove it from the request`);
}

/** Refuses (non-retryable `InvalidSpec`) a request that still sets a field the control worker now configures. */
export function rejectWorkerConfiguredFields(section: object | undefined): void {
  const problems = workerConfiguredFieldProblems(section);
  if (problems.length > 0) throw torporFailure('InvalidSpec', `Invalid kubernetes section: ${problems.join('; ')}`, { problems });
}

/** Everything a checkpoint Job or a restore pod is built from. */
export interface KubernetesWorkload extends KubernetesSection {
  /** The node the pod is pinned to; absent: wherever the scheduler places it. */
  node?: string | undefined;
  /**
   * A restore placeholder's GPU model, as the GPU operator labels nodes (`nvidia.com/gpu.product`):
   * the pod gets a node affinity to that model. Absent: any node (a CPU-only checkpoint).
   */
  gpuProduct?: string | undefined;
  /**
   * A placeholder whose node's agent fetches the checkpoint while it starts: its smart entrypoint
   * waits this long for the checkpoint (`TORPOR_CHECKPOINT_WAIT_SECONDS`) instead of cold-starting.
   */
  checkpointWaitSeconds?: number | undefined;
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
