import { createHash } from 'node:crypto';
import type { V1Container, V1Job, V1Pod, V1PodSpec, V1Volume } from '@kubernetes/client-node';
import { CHECKPOINT_SOURCE_LABEL, ChrekEnv } from '../../contract/chrek.js';
import type { KubernetesWorkload } from '../../contract/kubernetes.js';

/** Pure builders of the objects Torpor creates; the activities that send them stay a few lines. */

export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'torpor' };
export const HASH_LABEL = 'torpor.dev/hash';
export const ROLE_LABEL = 'torpor.dev/role';
export const RESTORE_ID_LABEL = 'torpor.dev/restore-id';
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

function storageVolumes(w: KubernetesWorkload): V1Volume[] {
  return [
    { name: 'checkpoint-storage', persistentVolumeClaim: { claimName: w.checkpointPvc } },
    { name: 'checkpoint-signal', hostPath: { path: w.signalHostPath, type: 'DirectoryOrCreate' } },
  ];
}

/** What the checkpoint Job's pod and the restore pod share: pinned to the node, never restarted. */
function podBasics(w: KubernetesWorkload): Pick<V1PodSpec, 'restartPolicy' | 'nodeSelector' | 'serviceAccountName'> {
  return {
    restartPolicy: 'Never',
    nodeSelector: { 'kubernetes.io/hostname': w.node },
    ...(w.serviceAccountName ? { serviceAccountName: w.serviceAccountName } : {}),
  };
}

/** The app's container as both pods run it: same image, command and GPUs. */
function containerBasics(w: KubernetesWorkload): Pick<V1Container, 'name' | 'image' | 'command' | 'resources'> {
  return { name: CONTAINER, image: w.image, ...(w.command.length > 0 ? { command: w.command } : {}), ...gpuResources(w.gpus) };
}

function userEnv(w: KubernetesWorkload) {
  return Object.entries(w.env).map(([name, value]) => ({ name, value }));
}

/** ChReK's checkpoint Job: label, the five DYN_CHECKPOINT_* variables, readiness on the ready file. */
export function checkpointJob(hash: string, w: KubernetesWorkload): V1Job {
  const labels = { ...MANAGED_BY, [HASH_LABEL]: hash, [ROLE_LABEL]: 'checkpoint' };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: checkpointJobName(hash), namespace: w.namespace, labels },
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
                { name: ChrekEnv.location, value: `${w.checkpointMountPath}/${hash}` },
                { name: ChrekEnv.storageType, value: 'pvc' },
              ],
              readinessProbe: { exec: { command: ['sh', '-c', `cat "$${ChrekEnv.readyFile}"`] }, initialDelaySeconds: 5, periodSeconds: 2 },
              volumeMounts: [
                { name: 'checkpoint-storage', mountPath: w.checkpointMountPath },
                { name: 'checkpoint-signal', mountPath: SIGNAL_MOUNT },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [...storageVolumes(w), { name: 'tmp', emptyDir: {} }],
        },
      },
    },
  };
}

/** The restore placeholder: same image, pinned to the checkpoint's node, told which checkpoint to become. */
export function restorePod(hash: string, restoreId: string, w: KubernetesWorkload): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: restorePodName(hash, restoreId),
      namespace: w.namespace,
      labels: { ...MANAGED_BY, [HASH_LABEL]: hash, [ROLE_LABEL]: 'restore', [RESTORE_ID_LABEL]: restoreId },
    },
    spec: {
      ...podBasics(w),
      containers: [
        {
          ...containerBasics(w),
          env: [...userEnv(w), { name: ChrekEnv.hash, value: hash }, { name: ChrekEnv.checkpointPath, value: w.checkpointMountPath }],
          // The restored app listens where the checkpointed one did, now on the placeholder's address.
          ...(w.restoreHttpProbe ? { readinessProbe: { httpGet: { ...w.restoreHttpProbe }, periodSeconds: 1, failureThreshold: 3 } } : {}),
          volumeMounts: [
            { name: 'checkpoint-storage', mountPath: w.checkpointMountPath, readOnly: true },
            { name: 'checkpoint-signal', mountPath: SIGNAL_MOUNT },
          ],
        },
      ],
      volumes: storageVolumes(w),
    },
  };
}
