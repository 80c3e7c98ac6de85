import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HASH_LABEL, ROLE_LABEL } from '../../activities/cluster/manifests.js';
import { checkpointWorkflowId, restoreWorkflowId } from '../../contract/naming.js';
import { containerCheckpointCalls, FAKE_CUDA_LAUNCH, FakeCudaDriver } from '../support/fake-cuda-processes.js';
import { TWO_H100 } from '../support/fake-gpu-node.js';
import { type KubeRuncTorpor, startKubeRuncTorpor } from '../support/kube-runc-torpor.js';
import { exists } from '../support/leftovers.js';
import { recordHistory } from '../support/record-history.js';
import { RuncWorld, readStatus } from '../support/runc-containers.js';
import type { TestKubelet } from '../support/test-kubelet.js';
import type { TorporHarness } from '../support/torpor-harness.js';

// Real Temporal, kube-apiserver + controller-manager, runc and CRIU; the CUDA driver is the fake
// libcuda through the agent's real FFI binding (this machine has no GPU). The test kubelet plays the
// container runtime with the NVIDIA device plugin: it gives the checkpoint pod GPU A and the
// placeholder pod GPU B through NVIDIA_VISIBLE_DEVICES in the container's bundle, as the plugin's
// environment does.
const [GPU_A, GPU_B] = TWO_H100.gpus.map((g) => g.uuid) as [string, string];
const NS = 'ml';
const NODE = 'gpu-node-9';
const HASH = 'llm-gpu-pod-1';
const world = new RuncWorld(path.resolve('.torpor/test/kubernetes-gpu-pods'));
const signals = path.join(world.dir, 'signals');
const containerOf = new Map<string, { id: string; bundle: string }>();
let env: KubeRuncTorpor;
let core: CoreV1Api;
let h: TorporHarness;
let cuda: FakeCudaDriver;
let stop = false;

const cri = (pod: V1Pod) => ({
  'io.kubernetes.cri.sandbox-namespace': NS,
  'io.kubernetes.cri.sandbox-name': pod.metadata?.name ?? '',
  'io.kubernetes.cri.container-name': 'main',
});

/** Starts the pod's runc container with the GPU the device plugin would have allocated to it. */
async function startContainer(pod: V1Pod, kubelet: TestKubelet): Promise<void> {
  const name = pod.metadata?.name as string;
  const id = `g-${name}`.slice(0, 60);
  const bundle =
    pod.metadata?.labels?.[ROLE_LABEL] === 'restore'
      ? await world.createBundle(id, cri(pod), {
          placeholderFor: { hash: HASH, store: h.storage },
          env: [`NVIDIA_VISIBLE_DEVICES=${GPU_B}`],
        })
      : await world.createBundle(id, cri(pod), { args: ['sh', '-c', FAKE_CUDA_LAUNCH], env: [`NVIDIA_VISIBLE_DEVICES=${GPU_A}`] });
  await kubelet.bind(pod);
  await world.run(id, bundle);
  containerOf.set(name, { id, bundle });
  await kubelet.run(pod, false, `containerd://${id}`);
}

/** Ready once the app reports (and, in the checkpoint pod, its two CUDA processes hold state) or reports itself restored. */
async function readyNow(pod: V1Pod, c: { id: string; bundle: string }): Promise<boolean> {
  const status = await readStatus(c.bundle);
  if (!status) return false;
  if (pod.metadata?.labels?.[ROLE_LABEL] === 'restore') return status.restored;
  const ranks = await cuda.cudaProcesses(await world.initPid(c.id));
  if (ranks.length !== 2) return false;
  await cuda.mark(ranks, 0);
  return true;
}

async function kubeletLoop(kubelet: TestKubelet): Promise<void> {
  const started = new Set<string>();
  const ready = new Set<string>();
  while (!stop) {
    for (const pod of (await core.listNamespacedPod({ namespace: NS })).items) {
      const name = pod.metadata?.name as string;
      const c = containerOf.get(name);
      if (pod.metadata?.deletionTimestamp) {
        if (c) await world.deleteContainer(c.id);
      } else if (!started.has(name)) {
        started.add(name);
        await startContainer(pod, kubelet).catch((err) => console.error(`test kubelet: ${name}: ${err}`));
      } else if (c && !ready.has(name) && (await readyNow(pod, c))) {
        ready.add(name);
        await kubelet.run(pod, true, `containerd://${c.id}`);
      } else if (c && pod.metadata?.labels?.[ROLE_LABEL] === 'checkpoint' && pod.status?.phase === 'Running') {
        if (await exists(path.join(signals, `${pod.metadata?.labels?.[HASH_LABEL]}.done`))) {
          await world.deleteContainer(c.id);
          await kubelet.succeed(pod);
        }
      }
    }
    await sleep(200);
  }
}

beforeAll(async () => {
  cuda = await FakeCudaDriver.build('torpor-kube-gpu-');
  env = await startKubeRuncTorpor({
    world,
    namespace: NS,
    node: NODE,
    signals,
    agent: {
      gpu: cuda.gpuNode(TWO_H100),
      agentInterceptors: [cuda.logSteps(['dumpContainer', 'commitCheckpoint', 'gpuCheckRestore', 'restoreIntoPlaceholder'])],
    },
  });
  ({ core, h } = env);
  void kubeletLoop(env.kubelet);
}, 180_000);
afterAll(async () => {
  stop = true;
  await sleep(500);
  await env?.stop();
});

const activityTypes = async (workflowId: string) =>
  ((await h.client.workflow.getHandle(workflowId).fetchHistory()).events ?? []).flatMap(
    (e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? [],
  );

describe('a GPU pod through the kubernetes workflows (real API server, runc and CRIU; fake libcuda)', () => {
  const kubernetes = { namespace: NS, image: 'registry.example/llm:1.0' };

  it('freezes every CUDA process of the Job pod’s container around the dump and records the GPU record', async () => {
    const checkpoint = await h.torpor.checkpoint({
      hash: HASH,
      node: NODE,
      runtime: 'kubernetes',
      workload: { command: ['sh', '-c', FAKE_CUDA_LAUNCH], env: {} },
      kubernetes,
      readyTimeoutMs: 60_000,
      exitTimeoutMs: 60_000,
    });
    expect(checkpoint).toMatchObject({ outcome: 'created', workloadEnd: 'exited' });
    const [lockA, lockB] = (await cuda.calls()).filter((c) => c.startsWith('lock ')) as [string, string];
    const [a, b] = [lockA.slice(5), lockB.slice(5)];
    expect(await cuda.calls()).toEqual(containerCheckpointCalls(a, b));
    expect(checkpoint.manifest.gpu).toMatchObject({
      driverVersion: TWO_H100.driverVersion,
      gpus: [{ index: 0, uuid: GPU_A }],
      processes: [
        { pid: Number(a), gpuUuids: [GPU_A] },
        { pid: Number(b), gpuUuids: [GPU_A] },
      ],
    });
    const nodeSteps = ['gpuFreeze', 'dumpContainer', 'commitCheckpoint', 'gpuThaw', 'signalCheckpointPod'];
    expect((await activityTypes(checkpointWorkflowId(HASH))).filter((t) => nodeSteps.includes(t))).toEqual(nodeSteps);
    await recordHistory(h.client.workflow.getHandle(checkpointWorkflowId(HASH)), 'checkpoint-kubernetes-gpu-created');
  });

  it('restores into a placeholder pod given another GPU, the UUIDs paired per its NVIDIA_VISIBLE_DEVICES', async () => {
    const before = (await cuda.calls()).length;
    const restored = await h.torpor.restore({
      hash: HASH,
      node: NODE,
      runtime: 'kubernetes',
      restoreId: 'g1',
      kubernetes,
      readyTimeoutMs: 60_000,
    });
    const [x, y] = await cuda.cudaProcesses(restored.pid);
    expect(x).toBeDefined();
    expect((await cuda.calls()).slice(before)).toEqual([
      'gpuCheckRestore',
      'restoreIntoPlaceholder',
      `restore ${x}`,
      `restore ${y}`,
      `unlock ${x}`,
      `unlock ${y}`,
    ]);
    for (const pid of [x, y]) expect((await readFile(path.join(cuda.dir, `${pid}.gpu-pairs`), 'utf8')).trim()).toBe(`${GPU_A} ${GPU_B}`);
    expect(await activityTypes(restoreWorkflowId(HASH, 'g1'))).toEqual([
      'verifyCheckpoint',
      'createRestorePod',
      'waitForRestorePod',
      'gpuCheckRestore',
      'restoreIntoPlaceholder',
      'gpuThaw',
      'waitForRestorePod',
    ]);
    const pod = (await core.listNamespacedPod({ namespace: NS, labelSelector: 'torpor.dev/restore-id=g1' })).items[0] as V1Pod;
    expect(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    await recordHistory(h.client.workflow.getHandle(restoreWorkflowId(HASH, 'g1')), 'restore-kubernetes-gpu-ready');
  });
});
