import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContainerActivities } from '../../activities/node/container/activities.js';
import { kubernetesPodLookup } from '../../activities/node/container/pod-lookup.js';
import { failureOf } from '../support/failures.js';
import { type KubeCluster, startKubeCluster } from '../support/kube-cluster.js';
import { checkpointContainer, eventually, RuncWorld, waitForStatus } from '../support/runc-containers.js';
import { TestKubelet } from '../support/test-kubelet.js';

const NS = 'team-a';
const LABEL = 'nvidia.com/checkpoint-source';
const world = new RuncWorld(path.resolve('.torpor/test/container-pods'));
let cluster: KubeCluster;
let core: CoreV1Api;
const kubelets: Record<string, TestKubelet> = {};

/** containerd's annotations: the pod is named, its labels are not there (only the API has them). */
const cri = (pod: string) => ({
  'io.kubernetes.cri.sandbox-namespace': NS,
  'io.kubernetes.cri.sandbox-name': pod,
  'io.kubernetes.cri.container-name': 'main',
});

/** The labels of a restore placeholder Torpor creates for `hash`. */
const TORPOR_RESTORE = (hash: string) => ({
  'app.kubernetes.io/managed-by': 'torpor',
  'torpor.dev/role': 'restore',
  'torpor.dev/hash': hash,
});

/** A pod the API server knows, bound to `node`, whose status lists `containerId`. */
async function pod(name: string, node: string, containerId: string, labels: Record<string, string> = {}): Promise<void> {
  const created = await core.createNamespacedPod({
    namespace: NS,
    body: { metadata: { name, labels }, spec: { containers: [{ name: 'main', image: 'registry.example/llm:1' }] } },
  });
  const kubelet = kubelets[node] as TestKubelet;
  await kubelet.bind(created);
  await kubelet.run(created, true, `containerd://${containerId}`);
}

async function container(id: string, podName: string): Promise<string> {
  const bundle = await world.createBundle(id, cri(podName));
  await world.run(id, bundle);
  await waitForStatus(bundle, () => true);
  return bundle;
}

describe('container targets checked against the Kubernetes API (real kube-apiserver, runc and CRIU)', () => {
  let activities: ReturnType<typeof createContainerActivities>;

  beforeAll(async () => {
    cluster = await startKubeCluster(path.join(os.tmpdir(), `torpor-kube-containers-${process.pid}`));
    const admin = cluster.kubeConfig(cluster.adminToken);
    core = admin.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
    for (const node of ['node-a', 'node-b']) {
      kubelets[node] = new TestKubelet(admin, node);
      await kubelets[node].registerNode();
    }
    await world.createImage();
    activities = createContainerActivities({ ...world.config([NS]), checkpointSourceLabel: LABEL, pods: kubernetesPodLookup(admin) });
  }, 180_000);
  afterAll(async () => {
    await world.cleanUp();
    await cluster?.stop();
  });

  it('refuses, before freezing anything: a pod without the label, a pod on another node, a pod that does not list the container, a pod that does not exist', async () => {
    await pod('unlabelled', 'node-a', 'k-unlabelled');
    await pod('elsewhere', 'node-b', 'k-elsewhere', { [LABEL]: 'true' });
    await pod('stale', 'node-a', 'some-other-container', { [LABEL]: 'true' });
    const cases: Array<[string, string, string]> = [
      ['k-unlabelled', 'unlabelled', `does not carry ${LABEL}`],
      ['k-elsewhere', 'elsewhere', 'runs on node "node-b"'],
      ['k-stale', 'stale', 'does not list container k-stale'],
      ['k-ghost', 'ghost', 'does not know'],
    ];
    for (const [id, podName, text] of cases) {
      const bundle = await container(id, podName);
      const failure = await failureOf(activities.dumpContainer({ containerId: id, hash: `ck-${id}`, dumpId: `ck-${id}.t` }));
      expect(failure.type, id).toBe('TargetNotAllowed');
      expect(failure.message, id).toContain(text);
      expect(await readdir(path.join(world.store, `ck-${id}`)).catch(() => [])).toEqual([]);
      expect(await world.state(id)).toBe('running');
      const before = await waitForStatus(bundle, () => true);
      await waitForStatus(bundle, (s) => s.n > before.n);
      await world.deleteContainer(id);
    }
  });

  it('dumps a labelled pod’s container on this node and restores it into the placeholder pod’s container', async () => {
    await pod('llm-0', 'node-a', 'k-source', { [LABEL]: 'true' });
    const source = await container('k-source', 'llm-0');
    const before = await waitForStatus(source, (s) => s.n >= 3);
    const dumped = await checkpointContainer(world, activities, { containerId: 'k-source', hash: 'llm-v1', nodeName: 'node-a' });
    expect(dumped.labels).toEqual({ podNamespace: NS, podName: 'llm-0', containerName: 'main' });
    await world.deleteContainer('k-source');

    // The restore pod carries the labels Torpor's control worker gives it, is on this node and holds the placeholder container.
    await pod('llm-restore', 'node-a', 'k-placeholder', TORPOR_RESTORE('llm-v1'));
    const bundle = await world.createBundle('k-placeholder', cri('llm-restore'), {
      placeholderFor: { hash: 'llm-v1', store: world.store },
    });
    await world.run('k-placeholder', bundle);
    await eventually(
      async () => ((await world.output('k-placeholder')).includes('waiting for the node agent') ? true : undefined),
      'the placeholder',
    );
    await pod('foreign-restore', 'node-b', 'k-foreign', TORPOR_RESTORE('llm-v1'));
    const foreign = await world.createBundle('k-foreign', cri('foreign-restore'), { args: ['sleep', 'infinity'] });
    await world.run('k-foreign', foreign);
    const elsewhere = await failureOf(activities.restoreIntoPlaceholder({ hash: 'llm-v1', placeholderContainerId: 'k-foreign' }));
    expect(elsewhere.message).toContain('runs on node "node-b"');

    await activities.restoreIntoPlaceholder({ hash: 'llm-v1', placeholderContainerId: 'k-placeholder', nodeName: 'node-a' });
    const restored = await waitForStatus(bundle, (s) => s.restored);
    expect(restored.iid).toBe(before.iid);
    expect(restored.checksum).toBe(before.checksum);
  });
});
