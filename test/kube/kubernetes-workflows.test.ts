import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BatchV1Api, type CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointJobName, HASH_LABEL, ROLE_LABEL } from '../../activities/cluster/manifests.js';
import type { NodeActivities } from '../../activities/node/index.js';
import { TorporClient } from '../../client/index.js';
import { checkpointWorkflowId, restoreWorkflowId } from '../../contract/naming.js';
import { TorporNamespace } from '../../contract/search-attributes.js';
import type { CheckpointRequest } from '../../contract/spec.js';
import type { CheckpointManifest } from '../../contract/types.js';
import type { KubeCluster } from '../support/kube-cluster.js';
import { type KubeWorkflowWorld, startKubeWorkflowWorld } from '../support/kube-workflow-world.js';
import { recordHistory } from '../support/record-history.js';
import type { TestKubelet } from '../support/test-kubelet.js';

// Real Temporal and a real Kubernetes control plane. The node steps (CRIU inside containers) are
// faked at the node agent's task-queue boundary: a worker on torpor-node-gpu-node-1 that records
// each call. No kubelet runs here: TestKubelet binds pods and reports their status as one would.
const NODE = 'gpu-node-1';
const NS = 'ml';
let cluster: KubeCluster;
let kubelet: TestKubelet;
let core: CoreV1Api;
let client: Client;
let torpor: TorporClient;
let world: KubeWorkflowWorld;
const nodeCalls: string[] = [];
/** The container IDs the workflows handed the node agent (from the pods' status). */
const containerIds: string[] = [];
let lastRestoreId = '';
let stopKubelet = false;

function fakeManifest(hash: string): CheckpointManifest {
  return {
    hash,
    node: NODE,
    runtime: 'kubernetes',
    createdAt: new Date().toISOString(),
    files: [],
    totalBytes: 0,
    gpu: null,
  } as unknown as CheckpointManifest;
}

type Input = { hash: string; restoreId?: string; dumpId?: string };

/** Records the call, then answers it. */
function recorded<R>(name: string, answer: (input: Input) => R | Promise<R>) {
  return async (input: Input): Promise<R> => {
    nodeCalls.push(name);
    return answer(input);
  };
}

/** The node agent's interface, answered without CRIU; the app "exits" on the signal and "is restored" on restore. */
function fakeNodeActivities(): Partial<Record<keyof NodeActivities, (input: Input) => Promise<unknown>>> {
  const committed = new Set<string>();
  const podOf = async (selector: string) => (await core.listNamespacedPod({ namespace: NS, labelSelector: selector })).items[0];
  return {
    findCheckpoint: recorded('findCheckpoint', ({ hash }) => (committed.has(hash) ? fakeManifest(hash) : null)),
    gpuFreeze: recorded('gpuFreeze', (input) => {
      containerIds.push((input as Input & { container: { id: string } }).container.id);
      return { pid: 1, before: 'none', after: 'none', lockMs: 0, checkpointMs: 0, gpu: null };
    }),
    gpuThaw: recorded('gpuThaw', () => ({ pid: 1, before: 'none', after: 'none', restoreMs: 0, unlockMs: 0 })),
    discardDump: recorded('discardDump', () => undefined),
    dumpWorkload: recorded('dumpWorkload', ({ dumpId }) => ({ dumpId, imageBytes: 1, criuMs: 1 })),
    commitCheckpoint: recorded('commitCheckpoint', ({ hash }) => {
      committed.add(hash);
      return fakeManifest(hash);
    }),
    signalWorkload: recorded('signalWorkload', async ({ hash }) => {
      const pod = await podOf(`${HASH_LABEL}=${hash},${ROLE_LABEL}=checkpoint`);
      if (pod) await kubelet.succeed(pod);
    }),
    dumpContainer: recorded('dumpContainer', async (input) => {
      containerIds.push((input as Input & { containerId: string }).containerId);
      return {
        hash: input.hash,
        dumpId: input.dumpId,
        labels: {},
        initPid: 1,
        dumpMs: 1,
        rootfsDiffBytes: 0,
        imageBytes: 1,
        alreadyCommitted: false,
      };
    }),
    signalCheckpointPod: recorded('signalCheckpointPod', async ({ hash }) => {
      const pod = await podOf(`${HASH_LABEL}=${hash},${ROLE_LABEL}=checkpoint`);
      if (pod) await kubelet.succeed(pod);
    }),
    restoreIntoPlaceholder: recorded('restoreIntoPlaceholder', async (input) => {
      const { hash } = input;
      containerIds.push((input as Input & { placeholderContainerId: string }).placeholderContainerId);
      const pod = await podOf(`${HASH_LABEL}=${hash},torpor.dev/restore-id=${lastRestoreId}`);
      if (pod) await kubelet.run(pod, true, pod.status?.containerStatuses?.[0]?.containerID);
      return { placeholderContainerId: 'x', hostPid: 1, placeholderPid: 1, restoreMs: 1, alreadyRestored: false };
    }),
    verifyCheckpoint: recorded('verifyCheckpoint', ({ hash }) => ({ manifest: fakeManifest(hash), verifiedBytes: 0, verifyMs: 0 })),
    gpuCheckRestore: recorded('gpuCheckRestore', () => undefined),
    restoreCheckpoint: recorded('restoreCheckpoint', async ({ hash, restoreId }) => {
      const pod = await podOf(`${HASH_LABEL}=${hash},torpor.dev/restore-id=${restoreId}`);
      if (pod) await kubelet.run(pod, true);
      return { pid: 1, logFile: '', criuMs: 1 };
    }),
    stopRestored: recorded('stopRestored', () => ({ stopped: false })),
  };
}

/** Schedules and starts every pod of the namespace; checkpoint pods become Ready (their app wrote the ready file). */
async function kubeletLoop(): Promise<void> {
  const seen = new Set<string>();
  while (!stopKubelet) {
    for (const pod of (await core.listNamespacedPod({ namespace: NS })).items) {
      const uid = pod.metadata?.uid as string;
      // Pods of the image-pull test are left to that test.
      if (seen.has(uid) || pod.metadata?.labels?.[HASH_LABEL]?.startsWith('k8s-pull')) continue;
      seen.add(uid);
      await kubelet.bind(pod).catch(() => undefined);
      await kubelet.run(pod, pod.metadata?.labels?.[ROLE_LABEL] === 'checkpoint').catch(() => undefined);
    }
    await sleep(200);
  }
}

beforeAll(async () => {
  world = await startKubeWorkflowWorld({
    dir: path.join(os.tmpdir(), `torpor-kube-wf-${process.pid}`),
    namespace: NS,
    node: NODE,
    nodeActivities: fakeNodeActivities(),
  });
  ({ cluster, core, kubelet, client } = world);
  torpor = new TorporClient(client);
  void kubeletLoop();
}, 180_000);
afterAll(async () => {
  stopKubelet = true;
  await world?.stop();
});

const request = (hash: string, image = 'registry.example/llm:1.0'): CheckpointRequest => ({
  hash,
  node: NODE,
  runtime: 'kubernetes',
  workload: { command: ['python3', '/app/serve.py'], env: { MODEL: 'llama' } },
  kubernetes: { namespace: NS, image },
  readyTimeoutMs: 30_000,
  exitTimeoutMs: 30_000,
});

async function jobGone(hash: string): Promise<boolean> {
  const batch = cluster.kubeConfig(cluster.adminToken).makeApiClient(BatchV1Api);
  const job = await batch.readNamespacedJob({ name: checkpointJobName(hash), namespace: NS }).catch(() => null);
  return job === null || job.metadata?.deletionTimestamp !== undefined;
}

describe('workflows in kubernetes mode', () => {
  it("checkpoints through Job → Pod → Ready → node steps on the pod's node → exit → Job deleted", async () => {
    nodeCalls.length = 0;
    containerIds.length = 0;
    const result = await torpor.checkpoint(request('k8s-ckpt-1'));
    expect(result.outcome).toBe('created');
    expect(result.workloadEnd).toBe('exited');
    // A CPU-only pod: the freeze finds no CUDA process, so nothing is thawed.
    expect(nodeCalls.slice(0, 3)).toEqual(['findCheckpoint', 'gpuFreeze', 'dumpContainer']);
    // Nothing to thaw: the pod is signalled while the dump is committed.
    expect(nodeCalls.slice(3).sort()).toEqual(['commitCheckpoint', 'signalCheckpointPod']);
    // The container the pod's status names, as the (test) kubelet reported it, for the freeze and the dump.
    expect(containerIds).toHaveLength(2);
    expect(containerIds[0]).toMatch(/^containerd:\/\/[0-9a-f]+$/);
    expect(containerIds[1]).toBe(containerIds[0]);
    expect(await jobGone('k8s-ckpt-1')).toBe(true);
    const tags = (await client.workflow.getHandle(checkpointWorkflowId('k8s-ckpt-1')).describe()).typedSearchAttributes;
    expect(tags.get(TorporNamespace)).toBe(NS);
    await recordHistory(client.workflow.getHandle(checkpointWorkflowId('k8s-ckpt-1')), 'checkpoint-kubernetes-created');
  });

  it("restores into a placeholder pod on the checkpoint's node, which ends Ready", async () => {
    nodeCalls.length = 0;
    containerIds.length = 0;
    lastRestoreId = 'r1';
    const result = await torpor.restore({
      hash: 'k8s-ckpt-1',
      node: NODE,
      runtime: 'kubernetes',
      restoreId: 'r1',
      kubernetes: { namespace: NS, image: 'registry.example/llm:1.0' },
      readyTimeoutMs: 30_000,
    });
    expect(result.restoreId).toBe('r1');
    // No GPU record: no GPU check and no thaw; a GPU checkpoint's are in kubernetes-gpu-pods.test.ts.
    expect(nodeCalls).toEqual(['verifyCheckpoint', 'restoreIntoPlaceholder']);
    expect(containerIds).toHaveLength(1);
    expect(containerIds[0]).toMatch(/^containerd:\/\//);
    const pods: V1Pod[] = (await core.listNamespacedPod({ namespace: NS, labelSelector: 'torpor.dev/restore-id=r1' })).items;
    expect(pods.map((p) => [p.spec?.nodeName, p.status?.conditions?.find((c) => c.type === 'Ready')?.status])).toEqual([[NODE, 'True']]);
    await recordHistory(client.workflow.getHandle(restoreWorkflowId('k8s-ckpt-1', 'r1')), 'restore-kubernetes-ready');
  });

  it('fails a pod whose image cannot be pulled with the event text, and deletes its Job', async () => {
    const hash = 'k8s-pull-1';
    const run = torpor.checkpoint(request(hash, 'registry.example/missing:9'));
    const pod = await kubelet.awaitPod(NS, `${HASH_LABEL}=${hash}`);
    await kubelet.failImagePull(pod, 'Back-off pulling image "registry.example/missing:9"');
    await expect(run).rejects.toMatchObject({ type: 'WorkloadStartFailed', message: expect.stringContaining('Back-off pulling image') });
    expect(await jobGone(hash)).toBe(true);
    await recordHistory(client.workflow.getHandle(checkpointWorkflowId(hash)), 'checkpoint-kubernetes-pull-failed-compensated');
  });

  it('refuses a namespace the control worker may not use, before creating anything', async () => {
    const bad = { ...request('k8s-ns-1'), kubernetes: { namespace: 'kube-system', image: 'x' } };
    await expect(torpor.checkpoint(bad)).rejects.toMatchObject({
      type: 'TargetNotAllowed',
      message: expect.stringContaining('kube-system'),
    });
    expect((await core.listNamespacedPod({ namespace: 'kube-system' })).items).toEqual([]);
  });
});
