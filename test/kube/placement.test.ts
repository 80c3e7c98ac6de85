import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { BatchV1Api, type CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointJobName, GPU_PRODUCT_LABEL, HASH_LABEL, ROLE_LABEL } from '../../activities/cluster/manifests.js';
import { TorporClient } from '../../client/index.js';
import { checkpointWorkflowId, restoreWorkflowId } from '../../contract/naming.js';
import type { CheckpointRequest } from '../../contract/spec.js';
import type { CheckpointManifest } from '../../contract/types.js';
import { TWO_H100 } from '../support/fake-gpu-node.js';
import { recordHistory } from '../support/record-history.js';
import { type S3Server, startS3Server } from '../support/s3-server.js';
import { TestKubelet } from '../support/test-kubelet.js';
import { type PlacementWorld, podsOn, startPlacementWorld } from './placement-world.js';

// Real Temporal, a real control plane with the real kube-scheduler deciding where pods go, and a
// real S3 server (SeaweedFS) that the control worker reads the checkpoint's GPU model from. Two
// nodes; the node agents' steps (CRIU in containers) are fakes on each node's own task queue that
// record which node did what: this file proves placement and routing, the runc/CRIU steps are
// proven in kubernetes-containers.test.ts and test/shared-store/.
const NS = 'ml';
const A = 'node-a';
const B = 'node-b';
const H100 = 'NVIDIA-H100-80GB-HBM3';
const HASH = 'placed-1';
const IMAGE = 'registry.example/llm:1.0';
let world: PlacementWorld;
let s3: S3Server;
let core: CoreV1Api;
let torpor: TorporClient;
let stopKubelets = false;
/** `<node> <activity>`, in the order the agents were called. */
const calls: string[] = [];
const committed = new Map<string, CheckpointManifest>();
const gpuRecord = { driverVersion: TWO_H100.driverVersion, gpus: TWO_H100.gpus.slice(0, 1), processMemoryBytes: 1e9 };
let fetchStarted = false;
/** `<node> <role>` of every pod a node's test kubelet ran (none of them binds a pod: the scheduler does). */
const ran: string[] = [];

const manifestOf = (hash: string, node: string) =>
  ({
    formatVersion: 2,
    chunkBytes: 1 << 20,
    hash,
    node,
    runtime: 'kubernetes',
    createdAt: new Date().toISOString(),
    files: [],
    totalBytes: 0,
    gpu: gpuRecord,
  }) as unknown as CheckpointManifest;

const podOf = async (selector: string) => (await core.listNamespacedPod({ namespace: NS, labelSelector: selector })).items[0] as V1Pod;

/** How many times the restore workflow has scheduled `activity` so far. */
async function scheduled(restoreId: string, activity: string): Promise<number> {
  const history = await world.client.workflow.getHandle(restoreWorkflowId(HASH, restoreId)).fetchHistory();
  return (history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === activity).length;
}

/** A node's agent, answered without CRIU; each call is recorded with the node's name. */
function fakeAgent(node: string) {
  const kubelet = {
    succeed: (pod: V1Pod) => new TestKubelet(world.cluster.kubeConfig(world.cluster.adminToken), node).succeed(pod),
    run: (pod: V1Pod, ready: boolean, id?: string) =>
      new TestKubelet(world.cluster.kubeConfig(world.cluster.adminToken), node).run(pod, ready, id),
  };
  const step =
    <I, R>(name: string, answer: (input: I) => R | Promise<R>) =>
    async (input: I): Promise<R> => {
      calls.push(`${node} ${name}`);
      return answer(input);
    };
  type In = { hash: string };
  return {
    findCheckpoint: step('findCheckpoint', ({ hash }: In) => (committed.get(hash)?.node === node ? committed.get(hash) : null) ?? null),
    gpuFreeze: step('gpuFreeze', () => ({ pid: 1, before: 'running', after: 'checkpointed', lockMs: 0, checkpointMs: 0, gpu: gpuRecord })),
    gpuThaw: step('gpuThaw', () => ({ pid: 1, before: 'checkpointed', after: 'running', restoreMs: 0, unlockMs: 0 })),
    discardDump: step('discardDump', () => undefined),
    dumpContainer: step('dumpContainer', ({ hash, dumpId }: In & { dumpId: string }) => ({
      hash,
      dumpId,
      labels: {},
      initPid: 1,
      dumpMs: 1,
      rootfsDiffBytes: 0,
      imageBytes: 1,
      alreadyCommitted: false,
    })),
    commitCheckpoint: step('commitCheckpoint', ({ hash }: In) => {
      committed.set(hash, manifestOf(hash, node));
      return committed.get(hash);
    }),
    signalCheckpointPod: step('signalCheckpointPod', async ({ hash }: In) =>
      kubelet.succeed(await podOf(`${HASH_LABEL}=${hash},${ROLE_LABEL}=checkpoint`)),
    ),
    // As the real upload ends: the manifest object last, where the control worker reads the GPU model.
    uploadCheckpoint: step('uploadCheckpoint', async ({ hash }: In) => {
      const Body = JSON.stringify(committed.get(hash));
      await s3.client().send(new PutObjectCommand({ Bucket: s3.bucket, Key: `checkpoints/${hash}/manifest.json`, Body }));
      return { hash, uploadedBytes: 0, skippedBytes: 0, uploaded: true };
    }),
    // Ends only once the workflow also waits for the placeholder to run: a restore that fetched
    // first and then started waiting would never get here, and fail.
    fetchCheckpoint: step('fetchCheckpoint', async ({ hash }: In) => {
      fetchStarted = true;
      for (let i = 0; i < 100 && (await scheduled(lastRestoreId, 'waitForRestorePod')) < 2; i++) await sleep(200);
      if ((await scheduled(lastRestoreId, 'waitForRestorePod')) < 2) throw new Error('the placeholder was not waited for during the fetch');
      return { hash, source: 'shared-store', fetchedBytes: 1, keptBytes: 0, evicted: [] };
    }),
    verifyCheckpoint: step('verifyCheckpoint', ({ hash }: In) => ({ manifest: manifestOf(hash, A), verifiedBytes: 0, verifyMs: 0 })),
    gpuCheckRestore: step('gpuCheckRestore', () => undefined),
    restoreIntoPlaceholder: step('restoreIntoPlaceholder', async ({ hash }: In) => {
      const pod = await podOf(`${HASH_LABEL}=${hash},torpor.dev/restore-id=${lastRestoreId}`);
      await kubelet.run(pod, true, pod.status?.containerStatuses?.[0]?.containerID);
      return { placeholderContainerId: 'x', hostPid: 1, placeholderPid: 1, restoreMs: 1, alreadyRestored: false, verifiedBytes: 0 };
    }),
  };
}
let lastRestoreId = '';

/**
 * Each node's test kubelet runs only the pods the scheduler bound to it; a checkpoint pod is Ready
 * at once (its app wrote the ready file), a placeholder runs only once its node's agent fetches,
 * as if its image were still pulling until then.
 */
async function kubeletLoop(node: string): Promise<void> {
  const kubelet = new TestKubelet(world.cluster.kubeConfig(world.cluster.adminToken), node);
  const started = new Set<string>();
  while (!stopKubelets) {
    for (const pod of await podsOn(core, NS, node)) {
      const uid = pod.metadata?.uid as string;
      const role = pod.metadata?.labels?.[ROLE_LABEL];
      if (started.has(uid) || pod.status?.phase === 'Succeeded' || (role === 'restore' && !fetchStarted)) continue;
      started.add(uid);
      ran.push(`${node} ${role}`);
      await kubelet.run(pod, role === 'checkpoint').catch(() => undefined);
    }
    await sleep(200);
  }
}

const dir = path.join(os.tmpdir(), `torpor-placement-${process.pid}-${randomBytes(3).toString('hex')}`);

beforeAll(async () => {
  s3 = await startS3Server();
  world = await startPlacementWorld({
    dir,
    namespace: NS,
    // Only node A is in the pool the checkpoint asks for; only node B is labelled with its GPU model.
    // Node A holds the image already, so the scheduler would prefer it for the placeholder too,
    // but for the GPU model's affinity.
    nodes: {
      [A]: { labels: { 'torpor.test/pool': 'a' }, images: [IMAGE] },
      [B]: { labels: { [GPU_PRODUCT_LABEL]: H100 } },
    },
    agents: { [A]: fakeAgent(A), [B]: fakeAgent(B) },
    s3Env: s3.agentEnv(),
  }).catch(async (err) => {
    await s3.stop();
    throw err;
  });
  core = world.core;
  torpor = new TorporClient(world.client);
  for (const node of [A, B]) void kubeletLoop(node);
}, 180_000);

afterAll(async () => {
  stopKubelets = true;
  await sleep(500);
  await world?.stop();
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
});

const checkpointRequest = (): CheckpointRequest => ({
  hash: HASH,
  runtime: 'kubernetes',
  workload: { command: ['python3', '/app/serve.py'], env: {} },
  kubernetes: { namespace: NS, image: IMAGE, nodeSelector: { 'torpor.test/pool': 'a' } },
  sharedStore: true,
  readyTimeoutMs: 30_000,
  exitTimeoutMs: 30_000,
});

describe('kubernetes without a node: the real kube-scheduler places the pods, the node steps follow them', () => {
  it('checkpoints on the node the scheduler bound the Job’s pod to, by that node’s agent', async () => {
    calls.length = 0;
    const result = await torpor.checkpoint(checkpointRequest());
    expect(result).toMatchObject({ outcome: 'created', node: A, workloadEnd: 'exited' });
    // Bound by the scheduler (the test kubelets bind nothing) to the node of the request's selector, not pinned by name.
    expect(ran).toEqual([`${A} checkpoint`]);
    expect(calls).toContain(`${A} dumpContainer`);
    expect(calls).toContain(`${A} uploadCheckpoint`);
    expect(calls.filter((c) => c.startsWith(B))).toEqual([]);
    expect(committed.get(HASH)?.node).toBe(A);
    await recordHistory(world.client.workflow.getHandle(checkpointWorkflowId(HASH)), 'checkpoint-kubernetes-placed-created');
  });

  it('returns the committed checkpoint when the scheduler places a second request (not for the shared store) on its node, and removes the Job', async () => {
    calls.length = 0;
    const again = await torpor.checkpoint({ ...checkpointRequest(), sharedStore: false });
    expect(again).toMatchObject({ outcome: 'existing', node: A, workloadEnd: 'stopped' });
    expect(calls).not.toContain(`${A} dumpContainer`);
    const batch = world.cluster.kubeConfig(world.cluster.adminToken).makeApiClient(BatchV1Api);
    const job = await batch.readNamespacedJob({ name: checkpointJobName(HASH), namespace: NS }).catch(() => null);
    expect(job === null || job.metadata?.deletionTimestamp !== undefined).toBe(true);
  });

  it('returns the shared store’s committed checkpoint to a request without a node: no Job, no agent step, no dump where the scheduler would place it', async () => {
    calls.length = 0;
    // Node B lacks the checkpoint in its cache, and is the only node of this request's selector.
    const request = { ...checkpointRequest(), kubernetes: { namespace: NS, image: IMAGE, nodeSelector: { [GPU_PRODUCT_LABEL]: H100 } } };
    const again = await torpor.checkpoint(request);
    expect(again).toMatchObject({ outcome: 'existing', node: A, workloadEnd: 'not-started', manifest: committed.get(HASH) });
    expect(calls).toEqual([]);
    const history = await world.client.workflow.getHandle(checkpointWorkflowId(HASH)).fetchHistory();
    const names = (history.events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    expect(names).toEqual(['findSharedCheckpoint']);
    expect((await podsOn(core, NS, B)).filter((p) => p.metadata?.labels?.[ROLE_LABEL] === 'checkpoint')).toEqual([]);
    await recordHistory(world.client.workflow.getHandle(checkpointWorkflowId(HASH)), 'checkpoint-kubernetes-shared-first-existing');
  });

  it('restores on a node of the checkpoint’s GPU model, fetching there while the placeholder starts', async () => {
    calls.length = 0;
    lastRestoreId = 'r1';
    const restored = await torpor.restore({
      hash: HASH,
      runtime: 'kubernetes',
      restoreId: 'r1',
      sharedStore: true,
      kubernetes: { namespace: NS, image: IMAGE },
      readyTimeoutMs: 30_000,
    });
    expect(restored.node).toBe(B);
    const pod = await podOf('torpor.dev/restore-id=r1');
    expect(pod.spec?.nodeName).toBe(B);
    const terms = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
    expect(terms).toEqual([{ matchExpressions: [{ key: GPU_PRODUCT_LABEL, operator: 'In', values: [H100] }] }]);
    expect(pod.spec?.nodeSelector).toBeUndefined();
    // Its image's smart entrypoint waits for the checkpoint the node fetches meanwhile, instead of a cold start.
    expect(pod.spec?.containers[0]?.env).toContainEqual({ name: 'TORPOR_CHECKPOINT_WAIT_SECONDS', value: '30' });
    expect(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(calls).toEqual([
      `${B} fetchCheckpoint`,
      `${B} verifyCheckpoint`,
      `${B} gpuCheckRestore`,
      `${B} restoreIntoPlaceholder`,
      `${B} gpuThaw`,
    ]);
    const steps = await world.client.workflow.getHandle(restoreWorkflowId(HASH, 'r1')).fetchHistory();
    const names = (steps.events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    expect(names.slice(0, 4)).toEqual(['describeSharedCheckpoint', 'createRestorePod', 'waitForRestorePod', 'fetchCheckpoint']);
  });

  it('refuses a restore without a node of a checkpoint the shared store lacks, creating no placeholder', async () => {
    const missing = torpor.restore({
      hash: 'never-checkpointed',
      runtime: 'kubernetes',
      restoreId: 'r3',
      sharedStore: true,
      kubernetes: { namespace: NS, image: IMAGE },
    });
    await expect(missing).rejects.toMatchObject({
      type: 'CheckpointNotFound',
      message: expect.stringContaining('not in the shared store'),
    });
    expect((await core.listNamespacedPod({ namespace: NS, labelSelector: 'torpor.dev/restore-id=r3' })).items).toEqual([]);
  });

  it('refuses a restore without a node and without the shared store, and a local request without a node', async () => {
    const kubernetes = { namespace: NS, image: IMAGE };
    await expect(torpor.restore({ hash: HASH, runtime: 'kubernetes', restoreId: 'r2', kubernetes })).rejects.toMatchObject({
      type: 'InvalidSpec',
      message: expect.stringContaining('node is required unless sharedStore is true'),
    });
    await expect(torpor.checkpoint({ hash: 'local-1', runtime: 'local', workload: { command: ['true'] } })).rejects.toMatchObject({
      type: 'InvalidSpec',
      message: expect.stringContaining('node is required for the local runtime'),
    });
    expect((await core.listNamespacedPod({ namespace: NS, labelSelector: 'torpor.dev/restore-id=r2' })).items).toEqual([]);
  });
});
