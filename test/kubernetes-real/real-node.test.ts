import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KubeCluster, startKubeCluster } from '../support/kube-cluster.js';
import { buildNodeImages, SAMPLE_IMAGE } from '../support/kube-real-images.js';
import { CRI_RUNC_ROOT, type RealNode, startRealNode } from '../support/kube-real-node.js';

// A real node: the pod below is scheduled by kube-scheduler, started by the kubelet through
// containerd's CRI plugin in a CNI network namespace, and made Ready by the kubelet's own HTTP probe.
const NS = 'real';
const NODE = 'real-node-1';
const work = path.join(os.tmpdir(), `torpor-rn-${process.pid}`);
let cluster: KubeCluster;
let node: RealNode;
let core: CoreV1Api;

async function waitFor(name: string, check: (pod: V1Pod) => boolean, timeoutMs = 90_000): Promise<V1Pod> {
  const deadline = Date.now() + timeoutMs;
  let pod: V1Pod | undefined;
  while (Date.now() < deadline) {
    pod = await core.readNamespacedPod({ name, namespace: NS });
    if (check(pod)) return pod;
    await sleep(500);
  }
  throw new Error(`pod ${name} not as expected within ${timeoutMs} ms: ${JSON.stringify(pod?.status)}`);
}

beforeAll(async () => {
  cluster = await startKubeCluster(path.join(work, 'control-plane'));
  core = cluster.kubeConfig(cluster.adminToken).makeApiClient(CoreV1Api);
  node = await startRealNode(cluster, {
    dir: path.join('/tmp', `trn${process.pid}`),
    nodeName: NODE,
    images: await buildNodeImages(path.join(work, 'images')),
  });
  await core.createNamespace({ body: { metadata: { name: NS } } });
}, 300_000);
afterAll(async () => {
  await node?.stop();
  await cluster?.stop();
  await rm(work, { recursive: true, force: true });
}, 120_000);

describe('a real node (kubelet, containerd CRI, CNI bridge, kube-scheduler)', () => {
  it('schedules and starts the HTTP sample app, Ready by the kubelet’s HTTP probe, its logs readable through the API', async () => {
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'sample' },
        spec: {
          automountServiceAccountToken: false,
          containers: [
            {
              name: 'app',
              image: SAMPLE_IMAGE,
              imagePullPolicy: 'Never',
              command: ['python3', '/app/app.py'],
              env: [
                { name: 'SAMPLE_HOST', value: '0.0.0.0' },
                { name: 'SAMPLE_PORT', value: '8000' },
                { name: 'SAMPLE_TABLE_MB', value: '8' },
                { name: 'SAMPLE_INIT_SECONDS', value: '1' },
              ],
              readinessProbe: { httpGet: { path: '/health', port: 8000 }, periodSeconds: 1 },
            },
          ],
        },
      },
    });
    const pod = await waitFor('sample', (p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);
    expect(pod.spec?.nodeName).toBe(NODE);
    expect(pod.status?.podIP).toMatch(/^10\.244\.7\./);
    const containerId = pod.status?.containerStatuses?.[0]?.containerID ?? '';
    expect(containerId).toMatch(/^containerd:\/\/[0-9a-f]{64}$/);
    // runc knows the container under the CRI namespace's root, where the node agent looks for it.
    const id = containerId.slice('containerd://'.length);
    const state = await execa(path.resolve('.torpor/bin/runc'), ['--root', CRI_RUNC_ROOT, 'state', id]);
    expect(JSON.parse(state.stdout)).toMatchObject({ id, status: 'running' });
    const answer = await fetch(`http://${pod.status?.podIP}:8000/state`);
    expect(answer.ok).toBe(true);
    const logs = await core.readNamespacedPodLog({ name: 'sample', namespace: NS, container: 'app' });
    expect(logs).toMatch(/listening on http:\/\/0\.0\.0\.0:8000/);
    expect(logs).toMatch(/running \(restored=False\)/);
  });
});
