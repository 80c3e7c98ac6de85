import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';

/**
 * The main container's environment as a kubelet hands it to the runtime, `NAME=value` (plain values
 * only: Torpor's pods use no references). A placeholder needs it: the workflow tells it there how
 * long to wait for its node's fetch (TORPOR_CHECKPOINT_WAIT_SECONDS) instead of cold-starting.
 */
export const containerEnv = (pod: V1Pod): string[] =>
  (pod.spec?.containers[0]?.env ?? []).flatMap((e) => (e.value === undefined ? [] : [`${e.name}=${e.value}`]));

/**
 * No kubelet or scheduler runs in the test cluster: this plays both, through the real API
 * (bindings, status subresource, events), as a kubelet would report them.
 */
export class TestKubelet {
  private readonly core: CoreV1Api;
  constructor(
    admin: KubeConfig,
    readonly nodeName: string,
  ) {
    this.core = admin.makeApiClient(CoreV1Api);
  }

  async registerNode(): Promise<void> {
    await this.core.createNode({
      body: {
        metadata: { name: this.nodeName, labels: { 'kubernetes.io/hostname': this.nodeName, 'nvidia.com/gpu.present': 'true' } },
        status: { capacity: { 'nvidia.com/gpu': '8', cpu: '64', memory: '512Gi', pods: '110' } },
      },
    });
  }

  /** Waits for a pod matching `labelSelector` to exist (a Job's pod is created by the job controller). */
  async awaitPod(namespace: string, labelSelector: string, timeoutMs = 30_000): Promise<V1Pod> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const pod = (await this.core.listNamespacedPod({ namespace, labelSelector })).items[0];
      if (pod) return pod;
      await sleep(200);
    }
    throw new Error(`no pod ${labelSelector} in ${namespace}`);
  }

  async bind(pod: V1Pod): Promise<void> {
    const { name, namespace } = pod.metadata as { name: string; namespace: string };
    await this.core.createNamespacedPodBinding({
      name,
      namespace,
      body: { metadata: { name }, target: { apiVersion: 'v1', kind: 'Node', name: this.nodeName } },
    });
  }

  private async setStatus(pod: V1Pod, status: V1Pod['status']): Promise<void> {
    const { name, namespace } = pod.metadata as { name: string; namespace: string };
    const current = await this.core.readNamespacedPodStatus({ name, namespace });
    await this.core.replaceNamespacedPodStatus({ name, namespace, body: { ...current, status: { ...current.status, ...status } } });
  }

  /** Running, and Ready when `ready` (the readiness probe passing). */
  async run(pod: V1Pod, ready: boolean, containerId = `containerd://${Math.random().toString(16).slice(2)}`): Promise<string> {
    const now = new Date();
    await this.setStatus(pod, {
      phase: 'Running',
      conditions: [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
        { type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: now },
      ],
      containerStatuses: [
        { name: 'main', image: 'x', imageID: '', ready, restartCount: 0, containerID: containerId, state: { running: { startedAt: now } } },
      ],
    });
    return containerId;
  }

  async succeed(pod: V1Pod): Promise<void> {
    await this.setStatus(pod, { phase: 'Succeeded', conditions: [{ type: 'Ready', status: 'False' }] });
  }

  /** An image that cannot be pulled, with the event the kubelet would record. */
  async failImagePull(pod: V1Pod, message: string): Promise<void> {
    const { name, namespace, uid } = pod.metadata as { name: string; namespace: string; uid: string };
    await this.core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { name: `${name}.pull`, namespace },
        involvedObject: { kind: 'Pod', name, namespace, uid },
        reason: 'Failed',
        message,
        type: 'Warning',
      },
    });
    await this.setStatus(pod, {
      phase: 'Pending',
      containerStatuses: [
        { name: 'main', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ErrImagePull', message } } },
      ],
    });
  }
}
