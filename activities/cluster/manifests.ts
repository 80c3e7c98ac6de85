import { createHash } from 'node:crypto';
import type { V1Container, V1Job, V1Pod, V1PodSpec, V1Volume } from '@kubernetes/client-node';
import { CHECKPOINT_SOURCE_LABEL, ChrekEnv } from '../../contract/chrek.js';
import type { KubernetesWorkload } from '../../contract/kubernetes.js';
import type { ClusterPolicy } from './policy.js';

/** Pure builders of the objects Torpor creates; the activities that send them stay a few lines. */

export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'torpor' };
export const HASH_LABEL = 'torpor.dev/hash';
export const ROLE_LABEL = 'torpor.dev/role';
export const RESTORE_ID_LABEL = 'torpor.dev/restore-id';
/** The workflow run that created an object; only that run adopts it after a 409 or deletes it without its UID. */
export const OWNER_ANNOTATION = 'torpor.dev/owner';
/** The label the Job controller puts on its pods, naming the Job by UID (a tenant cannot know it before the Job exists). */
export const CONTROLLER_UID_LABEL = 'batch.kubernetes.io/controller-uid';
const CONTAINER = 'main';
const READY_FILE = '/tmp/checkpoint-ready';
const SIGNAL_MOUNT = '/checkpoint-signal';

/** Names derive from the hash; a name that would pass 63 characters keeps a digest of the whole. */
export function objectName(prefix: string, ...parts: string[]): string {
  const full = [prefix, ...parts].join('-');
  if (full.length <= 63) return full;
  const digest = createHash('sha256').update(full).digest('hex').slice(0, 10);
  return `${full.slice(0, 52).replace(/-+$/, '')}-${digest}`;
}

export const checkpointJobName = (hash: string) => objectName('ckpt', hash);
export const restorePodName = (hash: string, restoreId: string) => objectName('restore', hash, restoreId);

export function checkpointSelector(hash: string): string {
  return `${HASH_LABEL}=${hash},${ROLE_LABEL}=checkpoint`;
}

function gpuResources(gpus: number): Pick<V1Container, 'resources'> {
  return gpus > 0 ? { resources: { limits: { 'nvidia.com/gpu': String(gpus) } } } : {};
}

/** What the pods see of the host: the signal directory read-only, the hash's own checkpoint directory read-only. */
export type PodStorage = Pick<ClusterPolicy, 'checkpointHostPath' | 'checkpointMountPath' | 'signalHostPath'>;

function signalVolume(storage: PodStorage): V1Volume {
  return { name: 'checkpoint-signal', hostPath: { path: storage.signalHostPath, type: 'DirectoryOrCreate' } };
}

/** How long the smart entrypoint waits for a checkpoint its node's agent is still fetching (deploy/images/smart-entrypoint.sh). */
export const CHECKPOINT_WAIT_ENV = 'TORPOR_CHECKPOINT_WAIT_SECONDS';

/** The node label the NVIDIA GPU operator (GPU feature discovery) puts on each node: its GPU model. */
export const GPU_PRODUCT_LABEL = 'nvidia.com/gpu.product';

/** A GPU's name as GPU feature discovery writes it into `nvidia.com/gpu.product`: `NVIDIA H100 80GB HBM3` → `NVIDIA-H100-80GB-HBM3`. */
export function gpuProductLabelValue(gpuName: string): string {
  return gpuName
    .trim()
    .replace(/[^A-Za-z0-9_.-]+/g, '-')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

/** Where the pod may run: the request's node selector, the node it names, and nodes of the checkpoint's GPU model. */
function placementOf(w: KubernetesWorkload): Pick<V1PodSpec, 'nodeSelector' | 'affinity'> {
  const nodeSelector = { ...w.nodeSelector, ...(w.node ? { 'kubernetes.io/hostname': w.node } : {}) };
  const gpuModel = w.gpuProduct
    ? {
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [{ matchExpressions: [{ key: GPU_PRODUCT_LABEL, operator: 'In', values: [w.gpuProduct] }] }],
            },
          },
        },
      }
    : {};
  return { ...(Object.keys(nodeSelector).length > 0 ? { nodeSelector } : {}), ...gpuModel };
}

/**
 * What the checkpoint Job's pod and the restore pod share: placed on the request's node (or where
 * the scheduler puts it), never restarted. A pod without an allowed ServiceAccount gets no API token.
 */
function podBasics(
  w: KubernetesWorkload,
): Pick<V1PodSpec, 'restartPolicy' | 'nodeSelector' | 'affinity' | 'serviceAccountName' | 'automountServiceAccountToken'> {
  return {
    restartPolicy: 'Never',
    ...placementOf(w),
    ...(w.serviceAccountName ? { serviceAccountName: w.serviceAccountName } : { automountServiceAccountToken: false }),
  };
}

/** The app's container as both pods run it: same image, command and GPUs. */
function containerBasics(w: KubernetesWorkload): Pick<V1Container, 'name' | 'image' | 'command' | 'resources'> {
  return { name: CONTAINER, image: w.image, ...(w.command.length > 0 ? { command: w.command } : {}), ...gpuResources(w.gpus) };
}

function userEnv(w: KubernetesWorkload) {
  return Object.entries(w.env).map(([name, value]) => ({ name, value }));
}

/**
 * ChReK's checkpoint Job: label, the five DYN_CHECKPOINT_* variables, readiness on the ready file.
 * The app writes its ready file (an emptyDir) and reads the signal file; the node agent writes the
 * checkpoint into its own store, which this pod does not see.
 */
export function checkpointJob(hash: string, w: KubernetesWorkload, storage: PodStorage, owner = ''): V1Job {
  const labels = { ...MANAGED_BY, [HASH_LABEL]: hash, [ROLE_LABEL]: 'checkpoint' };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: checkpointJobName(hash), namespace: w.namespace, labels, annotations: { [OWNER_ANNOTATION]: owner } },
    spec: {
      backoffLimit: 0,
      template: {
        metadata: { labels: { ...labels, [CHECKPOINT_SOURCE_LABEL]: 'true' } },
        spec: {
          ...podBasics(w),
          containers: [
            {
              ...containerBasics(w),
              env: [
                ...userEnv(w),
                { name: ChrekEnv.signalFile, value: `${SIGNAL_MOUNT}/${hash}.done` },
                { name: ChrekEnv.readyFile, value: READY_FILE },
                { name: ChrekEnv.hash, value: hash },
                { name: ChrekEnv.location, value: `${storage.checkpointMountPath}/${hash}` },
                { name: ChrekEnv.storageType, value: 'pvc' },
              ],
              readinessProbe: { exec: { command: ['sh', '-c', `cat "$${ChrekEnv.readyFile}"`] }, initialDelaySeconds: 5, periodSeconds: 2 },
              volumeMounts: [
                { name: 'checkpoint-signal', mountPath: SIGNAL_MOUNT, readOnly: true },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [signalVolume(storage), { name: 'tmp', emptyDir: {} }],
        },
      },
    },
  };
}

/** The restore placeholder: same image, on the checkpoint's node (or one of its GPU model), told which checkpoint to become. */
export function restorePod(hash: string, restoreId: string, w: KubernetesWorkload, storage: PodStorage, owner = ''): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: restorePodName(hash, restoreId),
      namespace: w.namespace,
      labels: { ...MANAGED_BY, [HASH_LABEL]: hash, [ROLE_LABEL]: 'restore', [RESTORE_ID_LABEL]: restoreId },
      annotations: { [OWNER_ANNOTATION]: owner },
    },
    spec: {
      ...podBasics(w),
      containers: [
        {
          ...containerBasics(w),
          env: [
            ...userEnv(w),
            { name: ChrekEnv.hash, value: hash },
            { name: ChrekEnv.checkpointPath, value: storage.checkpointMountPath },
            ...(w.checkpointWaitSeconds ? [{ name: CHECKPOINT_WAIT_ENV, value: String(w.checkpointWaitSeconds) }] : []),
          ],
          // The restored app listens where the checkpointed one did, now on the placeholder's address.
          ...(w.restoreHttpProbe ? { readinessProbe: { httpGet: { ...w.restoreHttpProbe }, periodSeconds: 1, failureThreshold: 3 } } : {}),
          // The smart entrypoint looks for <path>/<hash>/checkpoint.done: only that directory, read-only.
          // The checkpoint pod's /tmp too: CRIU restores every mount the dumped app had, and finds
          // none to map the emptyDir to otherwise ("No mapping for ... mountpoint", on a real kubelet).
          volumeMounts: [
            { name: 'checkpoint', mountPath: `${storage.checkpointMountPath}/${hash}`, subPath: hash, readOnly: true },
            { name: 'checkpoint-signal', mountPath: SIGNAL_MOUNT, readOnly: true },
            { name: 'tmp', mountPath: '/tmp' },
          ],
        },
      ],
      volumes: [
        { name: 'checkpoint', hostPath: { path: storage.checkpointHostPath, type: 'Directory' } },
        signalVolume(storage),
        { name: 'tmp', emptyDir: {} },
      ],
    },
  };
}
