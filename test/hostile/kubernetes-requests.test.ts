import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BatchV1Api, CoreV1Api, type KubeConfig, type V1Job } from '@kubernetes/client-node';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { clusterActivities } from '../../activities/cluster/index.js';
import { checkpointJob, checkpointJobName, HASH_LABEL, restorePodName } from '../../activities/cluster/manifests.js';
import type { ClusterPolicy } from '../../activities/cluster/policy.js';
import { createContainerActivities } from '../../activities/node/container/activities.js';
import { kubernetesPodLookup } from '../../activities/node/container/pod-lookup.js';
import { TorporClient } from '../../client/index.js';
import { torporDataConverter } from '../../client/payload-codec.js';
import type { KubernetesWorkload } from '../../contract/kubernetes.js';
import { CONTROL_TASK_QUEUE, checkpointWorkflowId, nodeTaskQueue } from '../../contract/naming.js';
import type { CheckpointRequest } from '../../contract/spec.js';
import { createControlWorker } from '../../workers/control.js';
import { clusterActivitiesFromEnv } from '../../workers/control-config.js';
import { testClusterPolicy } from '../support/cluster-policy.js';
import { failureOf } from '../support/failures.js';
import { type KubeCluster, startKubeCluster } from '../support/kube-cluster.js';
import { RuncWorld } from '../support/runc-containers.js';
import { TestKubelet } from '../support/test-kubelet.js';

// Hostile requests against the kubernetes runtime: each is refused with a typed, non-retryable
// failure, and the API server shows nothing created or deleted. The control worker's activities run
// with the admin identity: every refusal below is Torpor's own, not RBAC's.
const NODE = 'node-a';
const NS = 'tenant-a';
const PINNED = `registry.example/pinned@sha256:${'a'.repeat(64)}`;
const POLICY: ClusterPolicy = testClusterPolicy([NS], { allowedImages: ['registry.example/llm:1.0', PINNED, 'registry.example/ml/*'] });
const env = new MockActivityEnvironment();
const call = async <A, R>(fn: (input: A) => Promise<R>, input: A): Promise<R> => (await env.run(fn, input)) as R;

let cluster: KubeCluster;
let admin: KubeConfig;
let core: CoreV1Api;
let batch: BatchV1Api;
let kubelet: TestKubelet;
let activities: ReturnType<typeof clusterActivities>;
let hostile = 0;

const workload = (overrides: Record<string, unknown> = {}): KubernetesWorkload => ({
  namespace: NS,
  image: 'registry.example/llm:1.0',
  gpus: 0,
  node: NODE,
  command: ['python3', '/app/serve.py'],
  env: {},
  ...overrides,
});

/** Every Job and Pod in the namespaces a hostile request aims at, by UID: the "nothing changed" check. */
async function apiObjects(): Promise<string[]> {
  const uids: string[] = [];
  for (const namespace of [NS, 'kube-system']) {
    for (const job of (await batch.listNamespacedJob({ namespace })).items)
      uids.push(`job ${namespace}/${job.metadata?.name} ${job.metadata?.uid}`);
    // Pods the Job controller makes for Jobs that already exist are no one's new action here.
    for (const pod of (await core.listNamespacedPod({ namespace })).items)
      if (!pod.metadata?.ownerReferences?.length) uids.push(`pod ${namespace}/${pod.metadata?.name} ${pod.metadata?.uid}`);
  }
  return uids.sort();
}

/** The attempt is refused with `type`, non-retryable, its message containing `text`, and the API server is unchanged. */
async function refused(attempt: () => Promise<unknown>, type: string, text: string | RegExp): Promise<void> {
  hostile++;
  const before = await apiObjects();
  const failure = await failureOf(attempt());
  expect(failure.type).toBe(type);
  expect(failure.nonRetryable).toBe(true);
  expect(failure.message).toMatch(text);
  expect(await apiObjects()).toEqual(before);
}

beforeAll(async () => {
  cluster = await startKubeCluster(path.join(os.tmpdir(), `torpor-kube-hostile-${process.pid}`));
  admin = cluster.kubeConfig(cluster.adminToken);
  core = admin.makeApiClient(CoreV1Api);
  batch = admin.makeApiClient(BatchV1Api);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  // A privileged ServiceAccount a tenant would like its pod to run as.
  await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'ops-admin' } } });
  kubelet = new TestKubelet(admin, NODE);
  await kubelet.registerNode();
  activities = clusterActivities({ kubeConfig: admin, ...POLICY });
}, 180_000);
afterAll(async () => {
  await cluster?.stop();
  console.log(`hostile kubernetes inputs refused: ${hostile}`);
});

describe('a request cannot choose what is mounted into its pods (C2)', () => {
  for (const [field, value] of [
    ['signalHostPath', '/'],
    ['checkpointPvc', 'someone-elses-checkpoints'],
    ['checkpointMountPath', '/host'],
  ] as const) {
    it(`refuses ${field}: ${value} on the checkpoint Job and the restore pod, naming the field as worker configuration`, async () => {
      const kubernetes = workload({ [field]: value });
      const text = new RegExp(`kubernetes\\.${field} is now control worker configuration`);
      await refused(() => call(activities.createCheckpointJob, { hash: `moved-${field.toLowerCase()}`, kubernetes }), 'InvalidSpec', text);
      await refused(() => call(activities.createRestorePod, { hash: 'moved', restoreId: 'r1', kubernetes }), 'InvalidSpec', text);
    });
  }
});

describe('images, ServiceAccounts and namespaces come from allow-lists (C2)', () => {
  it('refuses an unlisted image, a look-alike registry and a path that leaves an allowed prefix', async () => {
    for (const image of ['evil.example/rootkit:latest', 'registry.example.evil.com/llm:1.0', 'registry.example/ml/../../evil:1']) {
      const type = image.includes('..') ? 'InvalidSpec' : 'TargetNotAllowed';
      await refused(() => call(activities.createCheckpointJob, { hash: 'img-1', kubernetes: workload({ image }) }), type, /image/i);
    }
  });

  it('honours digest pinning: another digest of a pinned repository is refused', async () => {
    const other = PINNED.replace(/a{64}$/, 'b'.repeat(64));
    await refused(
      () => call(activities.createCheckpointJob, { hash: 'dig-1', kubernetes: workload({ image: other }) }),
      'TargetNotAllowed',
      /not in/,
    );
  });

  it('refuses an image by tag when digests are required, even one the allow-list names', async () => {
    const strict = clusterActivities({ kubeConfig: admin, ...POLICY, requireImageDigest: true });
    await refused(
      () => call(strict.createCheckpointJob, { hash: 'dig-2', kubernetes: workload({ image: 'registry.example/llm:1.0' }) }),
      'TargetNotAllowed',
      /not pinned by digest/,
    );
  });

  it('refuses a ServiceAccount that is not allow-listed (pods/create would otherwise grant its rights)', async () => {
    const kubernetes = workload({ serviceAccountName: 'ops-admin' });
    await refused(() => call(activities.createCheckpointJob, { hash: 'sa-1', kubernetes }), 'TargetNotAllowed', /ServiceAccount ops-admin/);
    await refused(() => call(activities.createRestorePod, { hash: 'sa-1', restoreId: 'r1', kubernetes }), 'TargetNotAllowed', /ops-admin/);
  });

  it('refuses kube-system, which is not listed, for Jobs, pods, waits and deletes', async () => {
    const kubernetes = workload({ namespace: 'kube-system' });
    await refused(() => call(activities.createCheckpointJob, { hash: 'ks-1', kubernetes }), 'TargetNotAllowed', /kube-system/);
    await refused(
      () => call(activities.createRestorePod, { hash: 'ks-1', restoreId: 'r1', kubernetes }),
      'TargetNotAllowed',
      /kube-system/,
    );
    await refused(
      () => call(activities.deleteCheckpointJob, { hash: 'ks-1', namespace: 'kube-system' }),
      'TargetNotAllowed',
      /kube-system/,
    );
  });

  it('does not start with an empty namespace or image allow-list: an empty list refuses everything', () => {
    for (const empty of [{ allowedNamespaces: [] }, { allowedImages: [] }]) {
      hostile++;
      expect(() => clusterActivities({ kubeConfig: admin, ...POLICY, ...empty })).toThrow(/an empty list refuses everything/);
    }
    hostile++;
    const envOf = { KUBECONFIG: '/nonexistent', TORPOR_ALLOWED_NAMESPACES: '', TORPOR_ALLOWED_IMAGES: 'registry.example/*' };
    expect(() => clusterActivitiesFromEnv(envOf)).toThrow(/TORPOR_ALLOWED_NAMESPACES/);
  });
});

describe('Torpor acts only on the objects it created (M1, M2)', () => {
  it('does not adopt or delete a foreign Job that copies the name and the labels of the hash', async () => {
    const foreign = await batch.createNamespacedJob({ namespace: NS, body: checkpointJob('copied-1', workload(), POLICY, 'someone-else') });
    await refused(
      () => call(activities.createCheckpointJob, { hash: 'copied-1', kubernetes: workload(), owner: 'run-1' }),
      'TargetNotAllowed',
      /not created by this Torpor run/,
    );
    hostile++;
    // The compensation of that run: it knows no UID, and the Job is not its own.
    expect(await call(activities.deleteCheckpointJob, { hash: 'copied-1', namespace: NS, owner: 'run-1' })).toEqual({ deleted: false });
    hostile++;
    // A UID that is not the object's: the API server's precondition refuses, the Job stays.
    const wrongUid = '00000000-0000-0000-0000-000000000000';
    expect(await call(activities.deleteCheckpointJob, { hash: 'copied-1', namespace: NS, uid: wrongUid })).toEqual({ deleted: false });
    const still = await batch.readNamespacedJob({ name: checkpointJobName('copied-1'), namespace: NS });
    expect([still.metadata?.uid, still.metadata?.deletionTimestamp]).toEqual([foreign.metadata?.uid, undefined]);
  });

  it('does not adopt or delete a foreign pod that has the restore pod’s name and labels', async () => {
    const name = restorePodName('copied-2', 'r1');
    const labels = {
      'app.kubernetes.io/managed-by': 'torpor',
      'torpor.dev/hash': 'copied-2',
      'torpor.dev/role': 'restore',
      'torpor.dev/restore-id': 'r1',
    };
    const foreign = await core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name, labels }, spec: { containers: [{ name: 'main', image: 'registry.example/llm:1.0' }] } },
    });
    const input = { hash: 'copied-2', restoreId: 'r1', kubernetes: workload(), owner: 'run-2' };
    await refused(() => call(activities.createRestorePod, input), 'TargetNotAllowed', /not created by this Torpor run/);
    hostile++;
    expect(await call(activities.deleteRestorePod, { hash: 'copied-2', restoreId: 'r1', namespace: NS, owner: 'run-2' })).toEqual({
      deleted: false,
    });
    const still = await core.readNamespacedPod({ name, namespace: NS });
    expect([still.metadata?.uid, still.metadata?.deletionTimestamp]).toEqual([foreign.metadata?.uid, undefined]);
  });

  it("never picks a tenant's pod with copied labels (even the Job's controller-uid label) as the checkpoint pod", async () => {
    hostile++;
    const { uid: jobUid } = await call(activities.createCheckpointJob, { hash: 'pick-1', kubernetes: workload(), owner: 'run-3' });
    const template = checkpointJob('pick-1', workload(), POLICY).spec?.template.metadata?.labels;
    const copied = { ...template, 'batch.kubernetes.io/controller-uid': jobUid, 'controller-uid': jobUid };
    // The tenant's own workload, labelled as the Job's pod: the Job controller even adopts it (owner reference).
    const decoy = await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'decoy', labels: copied },
        spec: { containers: [{ name: 'main', image: 'registry.example/llm:1.0', command: ['sh', '-c', 'cat /secrets/*'] }] },
      },
    });
    await kubelet.bind(decoy);
    await kubelet.run(decoy, true);
    const failure = await failureOf(call(activities.waitForCheckpointPod, { hash: 'pick-1', namespace: NS, timeoutMs: 3000, jobUid }));
    expect([failure.type, failure.nonRetryable]).toEqual(['WorkloadNotReady', true]);
  });
});

describe('through real workflows (real Temporal; the node agent answers findCheckpoint only)', () => {
  let client: Client;
  const workers: Worker[] = [];
  const running: Promise<void>[] = [];

  beforeAll(async () => {
    const address = inject('temporalAddress');
    const connection = await NativeConnection.connect({ address });
    workers.push(
      await createControlWorker(connection, 'default', {
        workflowBundle: { codePath: inject('workflowBundlePath') },
        activities: clusterActivities({ kubeConfig: admin, ...POLICY }),
      }),
    );
    workers.push(
      await Worker.create({
        connection,
        namespace: 'default',
        taskQueue: nodeTaskQueue(NODE),
        activities: { findCheckpoint: async () => null },
        dataConverter: torporDataConverter(),
      }),
    );
    for (const w of workers) running.push(w.run());
    client = new Client({ connection: await Connection.connect({ address }), dataConverter: torporDataConverter() });
  });
  afterAll(async () => {
    for (const w of workers) w.shutdown();
    await Promise.allSettled(running);
  });

  const request = (hash: string, kubernetes: Record<string, unknown>): CheckpointRequest =>
    ({
      hash,
      node: NODE,
      runtime: 'kubernetes',
      workload: { command: ['python3', '/app/serve.py'], env: {} },
      kubernetes,
      readyTimeoutMs: 20_000,
      exitTimeoutMs: 20_000,
    }) as CheckpointRequest;

  /** Starts the checkpoint workflow directly, as a caller without Torpor's client would, and returns its failure. */
  async function workflowFailure(req: CheckpointRequest): Promise<ApplicationFailure> {
    const err = await client.workflow
      .execute('checkpoint', { taskQueue: CONTROL_TASK_QUEUE, workflowId: checkpointWorkflowId(req.hash), args: [req] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause).toBeInstanceOf(ApplicationFailure);
    return (err as WorkflowFailedError).cause as ApplicationFailure;
  }

  it("a compensation does not delete the foreign Job with the hash's name that the step refused to adopt", async () => {
    hostile++;
    const foreign: V1Job = await batch.createNamespacedJob({
      namespace: NS,
      body: checkpointJob('wf-foreign', workload(), POLICY, 'someone-else'),
    });
    const failure = await workflowFailure(request('wf-foreign', { namespace: NS, image: 'registry.example/llm:1.0' }));
    expect([failure.type, failure.nonRetryable]).toEqual(['TargetNotAllowed', true]);
    await sleep(500);
    const still = await batch.readNamespacedJob({ name: checkpointJobName('wf-foreign'), namespace: NS });
    expect([still.metadata?.uid, still.metadata?.deletionTimestamp]).toEqual([foreign.metadata?.uid, undefined]);
  });

  it('refuses hostPath "/" from a caller that bypasses the client, creating nothing; the client refuses it before starting', async () => {
    hostile += 2;
    const before = await apiObjects();
    const req = request('wf-root', { namespace: NS, image: 'registry.example/llm:1.0', signalHostPath: '/' });
    const failure = await workflowFailure(req);
    expect([failure.type, failure.nonRetryable]).toEqual(['InvalidSpec', true]);
    expect(failure.message).toContain('kubernetes.signalHostPath is now control worker configuration');
    await expect(new TorporClient(client).checkpoint({ ...req, hash: 'wf-root-2' })).rejects.toMatchObject({ type: 'InvalidSpec' });
    expect(await apiObjects()).toEqual(before);
    expect((await batch.listNamespacedJob({ namespace: NS, labelSelector: `${HASH_LABEL}=wf-root` })).items).toEqual([]);
  });
});

describe('the node agent restores only into a placeholder Torpor created for that hash (M12, L4)', () => {
  const world = new RuncWorld(path.resolve('.torpor/test/hostile-placeholders'));
  const cri = (pod: string, namespace = NS) => ({
    'io.kubernetes.cri.sandbox-namespace': namespace,
    'io.kubernetes.cri.sandbox-name': pod,
    'io.kubernetes.cri.container-name': 'main',
  });

  afterAll(async () => {
    await world.cleanUp();
  });

  it('refuses a running container of a non-Torpor pod, and of a Torpor placeholder for another hash, writing nothing into it', async () => {
    await world.createImage();
    const agent = createContainerActivities({ ...world.config([NS]), pods: kubernetesPodLookup(admin) });
    const torporLabels = (hash: string) => ({
      'app.kubernetes.io/managed-by': 'torpor',
      'torpor.dev/role': 'restore',
      'torpor.dev/hash': hash,
    });
    for (const [id, labels] of [
      ['k-tenant', { app: 'tenant-web', 'torpor.dev/role': 'restore' }],
      ['k-other-hash', torporLabels('another-hash')],
    ] as const) {
      hostile++;
      const pod = await core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: id, labels }, spec: { containers: [{ name: 'main', image: 'registry.example/llm:1.0' }] } },
      });
      await kubelet.bind(pod);
      await kubelet.run(pod, true, `containerd://${id}`);
      const bundle = await world.createBundle(id, cri(id), { args: ['sleep', 'infinity'] });
      await world.run(id, bundle);
      const upperBefore = await readdir(path.join(bundle, 'upper'));
      const failure = await failureOf(agent.restoreIntoPlaceholder({ hash: 'llm-v1', placeholderContainerId: id, nodeName: NODE }));
      expect([failure.type, failure.nonRetryable]).toEqual(['TargetNotAllowed', true]);
      expect(failure.message).toContain('is not a Torpor restore placeholder for llm-v1');
      expect(await readdir(path.join(bundle, 'upper'))).toEqual(upperBefore);
      expect(await world.state(id)).toBe('running');
    }
  });

  it('refuses a container of a namespace it does not serve before asking the API about its pod', async () => {
    const looked: string[] = [];
    const lookup = kubernetesPodLookup(admin);
    const agent = createContainerActivities({
      ...world.config([NS]),
      pods: (namespace, name) => {
        looked.push(`${namespace}/${name}`);
        return lookup(namespace, name);
      },
    });
    const bundle = await world.createBundle('k-system', cri('coredns', 'kube-system'), { args: ['sleep', 'infinity'] });
    await world.run('k-system', bundle);
    for (const attempt of [
      () => agent.dumpContainer({ containerId: 'k-system', hash: 'sys-1', dumpId: 'sys-1.t' }),
      () => agent.restoreIntoPlaceholder({ hash: 'sys-1', placeholderContainerId: 'k-system', nodeName: NODE }),
    ]) {
      hostile++;
      const failure = await failureOf(attempt());
      expect([failure.type, failure.nonRetryable]).toEqual(['TargetNotAllowed', true]);
      expect(failure.message).toContain('pod namespace "kube-system"');
    }
    expect(looked).toEqual([]);
    expect(await readdir(path.join(world.store, 'sys-1')).catch(() => [])).toEqual([]);
    expect(await world.state('k-system')).toBe('running');
  });
});
