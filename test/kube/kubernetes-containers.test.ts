import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HASH_LABEL, ROLE_LABEL } from '../../activities/cluster/manifests.js';
import { restoreWorkflowId } from '../../contract/naming.js';
import { type KubeRuncTorpor, startKubeRuncTorpor } from '../support/kube-runc-torpor.js';
import { exists } from '../support/leftovers.js';
import { RuncWorld, readStatus } from '../support/runc-containers.js';
import type { TestKubelet } from '../support/test-kubelet.js';
import type { TorporHarness } from '../support/torpor-harness.js';

// Everything real but the kubelet: Temporal, kube-apiserver and controller-manager (the Job makes
// the pod), the node agent with runc and CRIU. The test kubelet below does what a kubelet with
// containerd would: binds each pod to the node, starts a runc container for it (with containerd's
// CRI annotations), reports its container ID, and sets Ready when its readiness probe would pass.
const NS = 'ml';
const NODE = 'gpu-node-7';
const world = new RuncWorld(path.resolve('.torpor/test/kubernetes-containers'));
let env: KubeRuncTorpor;
let core: CoreV1Api;
let h: TorporHarness;
let stop = false;
const signals = path.join(world.dir, 'signals');
const containerOf = new Map<string, { id: string; bundle: string }>();
let checkpointBundle = '';

function cri(pod: V1Pod) {
  return {
    'io.kubernetes.cri.sandbox-namespace': NS,
    'io.kubernetes.cri.sandbox-name': pod.metadata?.name ?? '',
    'io.kubernetes.cri.container-name': 'main',
  };
}

async function startContainer(pod: V1Pod, kubelet: TestKubelet): Promise<void> {
  const name = pod.metadata?.name as string;
  const role = pod.metadata?.labels?.[ROLE_LABEL];
  const hash = pod.metadata?.labels?.[HASH_LABEL] as string;
  const id = `k-${name}`.slice(0, 60);
  const bundle =
    role === 'restore'
      ? await world.createBundle(id, cri(pod), { placeholderFor: { hash, store: h.storage } })
      : await world.createBundle(id, cri(pod));
  await kubelet.bind(pod);
  await world.run(id, bundle);
  containerOf.set(name, { id, bundle });
  if (role === 'checkpoint') checkpointBundle = bundle;
  await kubelet.run(pod, false, `containerd://${id}`);
}

/** Ready when the app reports (checkpoint pod) or reports itself restored (restore pod); Succeeded once signalled and stopped. */
async function kubeletLoop(kubelet: TestKubelet): Promise<void> {
  const started = new Set<string>();
  const ready = new Set<string>();
  while (!stop) {
    for (const pod of (await core.listNamespacedPod({ namespace: NS })).items) {
      const name = pod.metadata?.name as string;
      const hash = pod.metadata?.labels?.[HASH_LABEL] as string;
      if (pod.metadata?.deletionTimestamp) {
        const c = containerOf.get(name);
        if (c) await world.deleteContainer(c.id);
        continue;
      }
      if (!started.has(name)) {
        started.add(name);
        await startContainer(pod, kubelet).catch((err) => console.error(`test kubelet: ${name}: ${err}`));
        continue;
      }
      const c = containerOf.get(name);
      if (!c) continue;
      const status = await readStatus(c.bundle);
      const isRestore = pod.metadata?.labels?.[ROLE_LABEL] === 'restore';
      if (!ready.has(name) && status && (!isRestore || status.restored)) {
        ready.add(name);
        await kubelet.run(pod, true, `containerd://${c.id}`);
      }
      if (!isRestore && (await exists(path.join(signals, `${hash}.done`))) && pod.status?.phase === 'Running') {
        await world.deleteContainer(c.id);
        await kubelet.succeed(pod);
      }
    }
    await sleep(200);
  }
}

beforeAll(async () => {
  env = await startKubeRuncTorpor({ world, namespace: NS, node: NODE, signals });
  ({ core, h } = env);
  void kubeletLoop(env.kubelet);
}, 180_000);
afterAll(async () => {
  stop = true;
  await sleep(500);
  await env?.stop();
});

describe('the kubernetes runtime end to end (real Temporal, API server, runc and CRIU; a test kubelet)', () => {
  it('checkpoints the Job pod’s container, then restores it into a placeholder pod that ends Ready as the same app', async () => {
    const kubernetes = { namespace: NS, image: 'registry.example/llm:1.0' };
    const checkpoint = await h.torpor.checkpoint({
      hash: 'llm-k8s-1',
      node: NODE,
      runtime: 'kubernetes',
      workload: { command: ['python3', '/app/app.py'], env: {} },
      kubernetes,
      readyTimeoutMs: 60_000,
      exitTimeoutMs: 60_000,
    });
    expect(checkpoint).toMatchObject({ outcome: 'created', workloadEnd: 'exited' });
    expect(checkpoint.manifest).toMatchObject({ runtime: 'kubernetes', node: NODE });
    // A CPU-only pod: the freeze found no CUDA process, and the manifest records no GPU.
    expect(checkpoint.manifest.gpu).toBeNull();
    const before = await readStatus(checkpointBundle);
    expect(before?.iid).toMatch(/^[0-9a-f]{16}$/);

    const restored = await h.torpor.restore({
      hash: 'llm-k8s-1',
      node: NODE,
      runtime: 'kubernetes',
      restoreId: 'r1',
      kubernetes,
      readyTimeoutMs: 60_000,
    });
    expect(restored.pid).toBeGreaterThan(0);
    const pod = (await core.listNamespacedPod({ namespace: NS, labelSelector: 'torpor.dev/restore-id=r1' })).items[0] as V1Pod;
    expect(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    const placeholder = containerOf.get(pod.metadata?.name as string);
    const after = placeholder && (await readStatus(placeholder.bundle));
    expect(after).toMatchObject({ iid: before?.iid, checksum: before?.checksum, restored: true });

    const history = await h.client.workflow.getHandle(restoreWorkflowId('llm-k8s-1', 'r1')).fetchHistory();
    const steps = (history.events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    expect(steps).toEqual(['verifyCheckpoint', 'createRestorePod', 'waitForRestorePod', 'restoreIntoPlaceholder', 'waitForRestorePod']);
  });
});
