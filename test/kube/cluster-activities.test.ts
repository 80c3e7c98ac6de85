import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { BatchV1Api, CoreV1Api, type KubernetesObject, KubernetesObjectApi, loadAllYaml, type V1Pod } from '@kubernetes/client-node';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterActivities } from '../../activities/cluster/index.js';
import { checkpointJob, checkpointSelector } from '../../activities/cluster/manifests.js';
import { isPodReady } from '../../activities/cluster/pod-status.js';
import { waitForPod } from '../../activities/cluster/pod-watch.js';
import { type KubernetesWorkload, kubernetesSectionSchema, type PodPlacement } from '../../contract/kubernetes.js';
import { testClusterPolicy } from '../support/cluster-policy.js';
import { type KubeCluster, startKubeCluster } from '../support/kube-cluster.js';
import { TestKubelet } from '../support/test-kubelet.js';

const RBAC = fileURLToPath(new URL('../../deploy/rbac/control-worker-role.yaml', import.meta.url));
const NS = 'workloads';
const env = new MockActivityEnvironment();
/** An activity run in the mock activity context, with its result typed. */
const call = async <A, R>(fn: (input: A) => Promise<R>, input: A): Promise<R> => (await env.run(fn, input)) as R;
let cluster: KubeCluster;
let kubelet: TestKubelet;
let activities: ReturnType<typeof clusterActivities>;
let core: CoreV1Api;

const POLICY = testClusterPolicy([NS, 'unbound']);

const workload = (overrides: Partial<KubernetesWorkload> = {}): KubernetesWorkload => ({
  ...kubernetesSectionSchema.parse({ namespace: NS, image: 'registry.example/llm:1.0' }),
  node: 'gpu-node-1',
  command: ['python3', '/app/serve.py'],
  env: {},
  ...overrides,
});

async function applyRbac(namespace: string): Promise<void> {
  const objects = loadAllYaml(await readFile(RBAC, 'utf8')) as KubernetesObject[];
  const api = KubernetesObjectApi.makeApiClient(cluster.kubeConfig(cluster.adminToken));
  for (const object of objects) await api.create({ ...object, metadata: { ...object.metadata, namespace } });
  await api.create({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: 'torpor-control', namespace },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'torpor-control' },
    subjects: [{ kind: 'User', name: 'torpor-control', apiGroup: 'rbac.authorization.k8s.io' }],
  } as KubernetesObject);
}

beforeAll(async () => {
  cluster = await startKubeCluster(path.join(os.tmpdir(), `torpor-kube-${process.pid}`));
  const admin = cluster.kubeConfig(cluster.adminToken);
  core = admin.makeApiClient(CoreV1Api);
  for (const name of [NS, 'unbound']) await core.createNamespace({ body: { metadata: { name } } });
  await applyRbac(NS);
  kubelet = new TestKubelet(admin, 'gpu-node-1');
  await kubelet.registerNode();
  // The control worker runs as the least-privileged user, exactly as deployed.
  activities = clusterActivities({ kubeConfig: cluster.kubeConfig(cluster.controlToken), ...POLICY });
}, 180_000);
afterAll(async () => {
  await cluster?.stop();
});

describe('checkpoint Jobs on a real API server', () => {
  it("builds a Job the API server accepts, with ChReK's label, variables, probe and volumes", async () => {
    const batch = cluster.kubeConfig(cluster.adminToken).makeApiClient(BatchV1Api);
    const job = checkpointJob('dry-run-abc', workload({ gpus: 2, env: { MODEL: 'llama' } }), POLICY);
    const created = await batch.createNamespacedJob({ namespace: NS, body: job, dryRun: 'All' });
    const pod = created.spec?.template;
    expect(pod?.metadata?.labels?.['nvidia.com/checkpoint-source']).toBe('true');
    const container = pod?.spec?.containers[0];
    expect(container?.env?.map((e) => e.name)).toEqual([
      'MODEL',
      'DYN_CHECKPOINT_SIGNAL_FILE',
      'DYN_CHECKPOINT_READY_FILE',
      'DYN_CHECKPOINT_HASH',
      'DYN_CHECKPOINT_LOCATION',
      'DYN_CHECKPOINT_STORAGE_TYPE',
    ]);
    expect(container?.resources?.limits?.['nvidia.com/gpu']).toBe('2');
    expect(container?.readinessProbe?.exec?.command).toEqual(['sh', '-c', 'cat "$DYN_CHECKPOINT_READY_FILE"']);
    // The app reads the signal file and writes its ready file: the signal directory is read-only, the store is not mounted.
    expect(pod?.spec?.volumes?.map((v) => v.name)).toEqual(['checkpoint-signal', 'tmp']);
    expect(container?.volumeMounts?.find((m) => m.name === 'checkpoint-signal')?.readOnly).toBe(true);
    expect(pod?.spec?.automountServiceAccountToken).toBe(false);
    expect(pod?.spec?.nodeSelector).toEqual({ 'kubernetes.io/hostname': 'gpu-node-1' });
  });

  it('creates the Job idempotently: a retry after 409 finds its own Job', async () => {
    const w = workload();
    const first = await call(activities.createCheckpointJob, { hash: 'idem-1', kubernetes: w, owner: 'run-1' });
    const again = await call(activities.createCheckpointJob, { hash: 'idem-1', kubernetes: w, owner: 'run-1' });
    expect(again).toEqual(first);
    expect(first.uid).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("refuses to adopt a Job of the same name that is not Torpor's checkpoint of that hash", async () => {
    const batch = cluster.kubeConfig(cluster.adminToken).makeApiClient(BatchV1Api);
    const foreign = checkpointJob('foreign-1', workload(), POLICY);
    foreign.metadata = { ...foreign.metadata, labels: { app: 'someone-else' } };
    await batch.createNamespacedJob({ namespace: NS, body: foreign });
    await expect(call(activities.createCheckpointJob, { hash: 'foreign-1', kubernetes: workload() })).rejects.toMatchObject({
      type: 'TargetNotAllowed',
    });
  });

  it("waits for the Job's pod to be Ready and returns its node, UID and container ID", async () => {
    const { uid: jobUid } = await call(activities.createCheckpointJob, { hash: 'ready-1', kubernetes: workload() });
    const waiting = env.run(activities.waitForCheckpointPod, { hash: 'ready-1', namespace: NS, timeoutMs: 60_000, jobUid });
    const pod = await kubelet.awaitPod(NS, checkpointSelector('ready-1'));
    await kubelet.bind(pod);
    await kubelet.run(pod, false);
    await sleep(300);
    const containerId = await kubelet.run(pod, true);
    const placement = await waiting;
    expect(placement).toMatchObject({ namespace: NS, nodeName: 'gpu-node-1', podUid: pod.metadata?.uid, containerId });
  });

  it("surfaces an image pull failure with the kubelet's event text", async () => {
    await call(activities.createCheckpointJob, { hash: 'pull-1', kubernetes: workload({ image: 'registry.example/missing:9' }) });
    const waiting = env.run(activities.waitForCheckpointPod, { hash: 'pull-1', namespace: NS, timeoutMs: 60_000 });
    const pod = await kubelet.awaitPod(NS, checkpointSelector('pull-1'));
    await kubelet.bind(pod);
    await kubelet.failImagePull(pod, 'Failed to pull image "registry.example/missing:9": not found');
    await expect(waiting).rejects.toMatchObject({
      type: 'WorkloadStartFailed',
      message: expect.stringMatching(/ErrImagePull[\s\S]*Failed to pull image "registry.example\/missing:9": not found/),
    });
  });

  it('times out a pod that never becomes ready with WorkloadNotReady', async () => {
    await call(activities.createCheckpointJob, { hash: 'slow-1', kubernetes: workload() });
    await expect(env.run(activities.waitForCheckpointPod, { hash: 'slow-1', namespace: NS, timeoutMs: 2000 })).rejects.toMatchObject({
      type: 'WorkloadNotReady',
    });
  });

  it('deletes the Job, and treats an already deleted one as success', async () => {
    const { uid } = await call(activities.createCheckpointJob, { hash: 'del-2', kubernetes: workload() });
    expect(await env.run(activities.deleteCheckpointJob, { hash: 'del-2', namespace: NS, uid })).toEqual({ deleted: true });
    // Again (a retry): the Job is terminating or gone, which is success too.
    await env.run(activities.deleteCheckpointJob, { hash: 'del-2', namespace: NS, uid });
    // Without the UID (the create's answer was lost), the run's own Job is found by its owner annotation.
    await call(activities.createCheckpointJob, { hash: 'del-1', kubernetes: workload(), owner: 'run-d' });
    expect(await env.run(activities.deleteCheckpointJob, { hash: 'del-1', namespace: NS, owner: 'run-d' })).toEqual({ deleted: true });
  });
});

describe("the API server's refusals", () => {
  it('reports an RBAC refusal as a non-retryable Forbidden failure that says what was refused', async () => {
    const err = await env
      .run(activities.createCheckpointJob, { hash: 'rbac-1', kubernetes: workload({ namespace: 'unbound' }) })
      .catch((e: Error) => e);
    expect(err).toMatchObject({ type: 'Forbidden', nonRetryable: true });
    expect((err as Error).message).toMatch(/torpor-control.*cannot create resource "jobs".*unbound/);
  });

  it("refuses a namespace outside the control worker's allowed list before calling the API", async () => {
    const strict = clusterActivities({ kubeConfig: cluster.kubeConfig(cluster.controlToken), ...POLICY, allowedNamespaces: ['only-this'] });
    await expect(env.run(strict.createCheckpointJob, { hash: 'ns-1', kubernetes: workload() })).rejects.toMatchObject({
      type: 'TargetNotAllowed',
      message: expect.stringContaining("not in this control worker's allowed namespaces"),
    });
  });

  it('grants the control worker no more than its activities need', async () => {
    const api = cluster.kubeConfig(cluster.controlToken).makeApiClient(CoreV1Api);
    await expect(api.listNamespacedSecret({ namespace: NS })).rejects.toMatchObject({ code: 403 });
    await expect(api.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'x' } } })).rejects.toMatchObject({ code: 403 });
    await expect(api.listNode()).rejects.toMatchObject({ code: 403 });
  });
});

describe('watching pods', () => {
  it('lists again when the server ends the watch with 410 Gone (a compacted resourceVersion)', async () => {
    await call(activities.createCheckpointJob, { hash: 'expiry-1', kubernetes: workload() });
    const pod = await kubelet.awaitPod(NS, checkpointSelector('expiry-1'));
    const stale = (await core.listNamespacedPod({ namespace: NS })).metadata?.resourceVersion;
    await kubelet.bind(pod);
    await kubelet.run(pod, true);
    // Enough writes and time for etcd compaction (every 5 s here) to pass the stale version.
    for (let i = 0; i < 5; i++) await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: `churn-${i}` } } });
    await sleep(12_000);
    let expired = 0;
    const ready: V1Pod = await waitForPod(
      cluster.kubeConfig(cluster.controlToken),
      cluster.kubeConfig(cluster.controlToken).makeApiClient(CoreV1Api),
      {
        namespace: NS,
        labelSelector: checkpointSelector('expiry-1'),
        done: isPodReady,
        check: async () => undefined,
        onProgress: () => undefined,
        signal: AbortSignal.timeout(30_000),
        startResourceVersion: stale as string,
        onWatchExpired: () => {
          expired++;
        },
      },
    );
    expect(expired).toBe(1);
    expect(ready.metadata?.uid).toBe(pod.metadata?.uid);
  });
});

describe('restore placeholder pods', () => {
  it("creates the placeholder pinned to the checkpoint's node and waits until it runs", async () => {
    const input = { hash: 'rst-1', restoreId: 'r1', kubernetes: workload(), owner: 'run-r' };
    const created = await call(activities.createRestorePod, input);
    const again = await call(activities.createRestorePod, input);
    expect(again).toEqual(created);
    const waiting = env.run(activities.waitForRestorePod, {
      hash: 'rst-1',
      restoreId: 'r1',
      namespace: NS,
      timeoutMs: 30_000,
      until: 'running' as const,
      podUid: created.uid,
    }) as Promise<PodPlacement>;
    const pod = await core.readNamespacedPod({ name: created.podName, namespace: NS });
    expect(pod.spec?.nodeSelector).toEqual({ 'kubernetes.io/hostname': 'gpu-node-1' });
    expect(pod.spec?.containers[0]?.env?.map((e) => [e.name, e.value])).toEqual([
      ['DYN_CHECKPOINT_HASH', 'rst-1'],
      ['DYN_CHECKPOINT_PATH', '/checkpoints'],
    ]);
    // Only its own checkpoint's directory of the agent's store, and the signal directory, both read-only.
    expect(
      pod.spec?.containers[0]?.volumeMounts?.filter((m) => m.name !== 'kube-api-access').map((m) => [m.mountPath, m.subPath, m.readOnly]),
    ).toEqual([
      ['/checkpoints/rst-1', 'rst-1', true],
      ['/checkpoint-signal', undefined, true],
      ['/tmp', undefined, undefined],
    ]);
    expect(pod.spec?.volumes?.find((v) => v.name === 'checkpoint')?.hostPath?.path).toBe('/var/lib/torpor/checkpoints');
    await kubelet.bind(pod);
    await kubelet.run(pod, false);
    expect((await waiting).nodeName).toBe('gpu-node-1');
    const target = { hash: 'rst-1', restoreId: 'r1', namespace: NS, uid: created.uid };
    expect(await env.run(activities.deleteRestorePod, target)).toEqual({ deleted: true });
    await env.run(activities.deleteRestorePod, target);
    expect(pod.spec?.containers[0]?.readinessProbe).toBeUndefined();
  });

  it("gives the placeholder the app's HTTP readiness probe when asked, accepted by the API server", async () => {
    const kubernetes = workload({ restoreHttpProbe: { port: 8000, path: '/health' } });
    const created = await call(activities.createRestorePod, { hash: 'rst-2', restoreId: 'r1', kubernetes });
    const pod = await core.readNamespacedPod({ name: created.podName, namespace: NS });
    expect(pod.spec?.containers[0]?.readinessProbe?.httpGet).toMatchObject({ port: 8000, path: '/health' });
    await env.run(activities.deleteRestorePod, { hash: 'rst-2', restoreId: 'r1', namespace: NS, uid: created.uid });
  });
});
