import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HASH_LABEL, ROLE_LABEL } from '../../activities/cluster/manifests.js';
import { kubernetesPodLookup } from '../../activities/node/container/pod-lookup.js';
import type { PodLookup } from '../../activities/node/container/target-policy.js';
import { createNodeActivities } from '../../activities/node/index.js';
import { TorporClient } from '../../client/index.js';
import { CHECKPOINT_SOURCE_LABEL } from '../../contract/chrek.js';
import { nodeAgentConfigFromEnv } from '../../workers/node-agent-config.js';
import { sharedKeyFile } from '../shared-store/fixtures.js';
import { exists } from '../support/leftovers.js';
import { eventually, RuncWorld, readStatus } from '../support/runc-containers.js';
import { type S3Server, startS3Server } from '../support/s3-server.js';
import { containerEnv, TestKubelet } from '../support/test-kubelet.js';
import { type PlacementWorld, podsOn, startPlacementWorld } from './placement-world.js';

// Everything real but the kubelets: Temporal, the control plane with the real kube-scheduler, two
// nodes, each with its own real node agent (its own NODE_NAME and local store; runc and CRIU) and
// its own test kubelet running the pods the scheduler bound to it as runc containers. The nodes
// share only the real S3 server (SeaweedFS). No request names a node.
const NS = 'ml';
const A = 'node-a';
const B = 'node-b';
const HASH = 'anywhere-1';
const IMAGE = 'registry.example/llm:1.0';
const world = new RuncWorld(path.resolve('.torpor/test/placement-real'));
const signals = path.join(world.dir, 'signals');
const stores: Record<string, string> = {};
/** Pod name → its runc container (id, bundle, node). */
const containerOf = new Map<string, { id: string; bundle: string; node: string }>();
let env: PlacementWorld;
let s3: S3Server;
let core: CoreV1Api;
let torpor: TorporClient;
let keyFile = '';
let lookup: PodLookup = async () => undefined;
let stop = false;
let kubelets: Promise<void>[] = [];
const STATE_QUERY = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/state', timeout=10).read().decode())";
const dir = path.join(os.tmpdir(), `torpor-placement-real-${process.pid}`);

/** A node's real agent: its own store and name; pods looked up in the API server (set once it runs). */
async function agentOf(node: string) {
  stores[node] = await mkdtemp(path.join(os.tmpdir(), `torpor-${node}-`));
  const { runcPath, runcRoot, criuPath } = world.config([]);
  return createNodeActivities({
    ...nodeAgentConfigFromEnv({
      ...process.env,
      ...s3.agentEnv(),
      TORPOR_MANIFEST_KEY_FILE: keyFile,
      TORPOR_STORAGE_ROOT: stores[node] as string,
      NODE_NAME: node,
    }),
    criuPath,
    signalDir: signals,
    containers: {
      runcPath,
      runcRoot,
      allowedNamespaces: [NS],
      checkpointSourceLabel: CHECKPOINT_SOURCE_LABEL,
      pods: (namespace, name) => lookup(namespace, name),
    },
  });
}

const cri = (pod: V1Pod) => ({
  'io.kubernetes.cri.sandbox-namespace': NS,
  'io.kubernetes.cri.sandbox-name': pod.metadata?.name ?? '',
  'io.kubernetes.cri.container-name': 'main',
});

/**
 * Starts the pod's runc container on `node`; a placeholder mounts that node's own store at /checkpoints.
 * The pod's env matters: a placeholder placed by the scheduler is told to wait for the fetch
 * (TORPOR_CHECKPOINT_WAIT_SECONDS); without it, it cold-starts the app, whose listener then holds
 * the port the restored one must bind in the same network namespace.
 */
async function startContainer(pod: V1Pod, node: string, kubelet: TestKubelet): Promise<void> {
  const name = pod.metadata?.name as string;
  const hash = pod.metadata?.labels?.[HASH_LABEL] as string;
  const id = `k-${name}`.slice(0, 60);
  const placeholder = pod.metadata?.labels?.[ROLE_LABEL] === 'restore';
  const store = stores[node] as string;
  const bundle = await world.createBundle(id, cri(pod), {
    env: containerEnv(pod),
    ...(placeholder ? { placeholderFor: { hash, store } } : {}),
  });
  await world.run(id, bundle);
  containerOf.set(name, { id, bundle, node });
  await kubelet.run(pod, false, `containerd://${id}`);
}

/** What a kubelet does for one of its pods on one pass: start it, report it Ready, end it once signalled. */
async function syncPod(pod: V1Pod, node: string, kubelet: TestKubelet, seen: { started: Set<string>; ready: Set<string> }) {
  const name = pod.metadata?.name as string;
  const isRestore = pod.metadata?.labels?.[ROLE_LABEL] === 'restore';
  if (!seen.started.has(name)) {
    seen.started.add(name);
    return startContainer(pod, node, kubelet);
  }
  const c = containerOf.get(name);
  const status = c && (await readStatus(c.bundle));
  if (!c || !status) return;
  if (!seen.ready.has(name) && (!isRestore || status.restored)) {
    seen.ready.add(name);
    await kubelet.run(pod, true, `containerd://${c.id}`);
  }
  const hash = pod.metadata?.labels?.[HASH_LABEL] as string;
  if (!isRestore && pod.status?.phase === 'Running' && (await exists(path.join(signals, `${hash}.done`)))) {
    await world.deleteContainer(c.id);
    await kubelet.succeed(pod);
  }
}

/** One node's kubelet: runs only the pods the scheduler bound to `node` (it binds none itself). */
async function kubeletLoop(node: string): Promise<void> {
  const kubelet = new TestKubelet(env.cluster.kubeConfig(env.cluster.adminToken), node);
  const seen = { started: new Set<string>(), ready: new Set<string>() };
  while (!stop) {
    for (const pod of await podsOn(core, NS, node).catch(() => [])) {
      await syncPod(pod, node, kubelet, seen).catch((err) => console.error(`test kubelet ${node}: ${pod.metadata?.name}: ${err}`));
    }
    await sleep(200);
  }
}

beforeAll(async () => {
  s3 = await startS3Server();
  keyFile = await sharedKeyFile();
  await world.createImage();
  await mkdir(signals, { recursive: true });
  env = await startPlacementWorld({
    dir,
    namespace: NS,
    nodes: { [A]: { labels: { 'torpor.test/pool': 'a' } }, [B]: { labels: {} } },
    agents: { [A]: await agentOf(A), [B]: await agentOf(B) },
    s3Env: s3.agentEnv(),
  });
  core = env.core;
  lookup = kubernetesPodLookup(env.cluster.kubeConfig(env.cluster.adminToken));
  torpor = new TorporClient(env.client);
  kubelets = [A, B].map(kubeletLoop);
}, 240_000);

afterAll(async () => {
  stop = true;
  await Promise.all(kubelets);
  await world.cleanUp();
  await env?.stop();
  await s3?.stop();
  for (const store of Object.values(stores)) await rm(store, { recursive: true, force: true });
  if (keyFile) await rm(path.dirname(keyFile), { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
});

describe('checkpoint on the node the scheduler picks, restore on another through the shared store (real agents, runc, CRIU, S3)', () => {
  it('dumps on node A by A’s agent, restores on node B by B’s agent into its placeholder, with the same memory', async () => {
    const checkpoint = await torpor.checkpoint({
      hash: HASH,
      runtime: 'kubernetes',
      // 64 MiB of state: B's fetch then takes longer than its placeholder's start, as on a cluster.
      workload: { command: ['python3', '/app/app.py'], env: { APP_TABLE_KB: '65536' } },
      kubernetes: { namespace: NS, image: IMAGE, nodeSelector: { 'torpor.test/pool': 'a' } },
      sharedStore: true,
      readyTimeoutMs: 60_000,
      exitTimeoutMs: 60_000,
    });
    expect(checkpoint).toMatchObject({ outcome: 'created', node: A, workloadEnd: 'exited' });
    expect(checkpoint.manifest).toMatchObject({ runtime: 'kubernetes', node: A });
    // A's agent wrote the checkpoint into A's store; B's store has nothing yet.
    expect(await exists(path.join(stores[A] as string, HASH))).toBe(true);
    expect(await exists(path.join(stores[B] as string, HASH))).toBe(false);
    const source = [...containerOf.values()].find((c) => c.node === A);
    const before = source && (await readStatus(source.bundle));
    expect(before?.checksum).toBeTruthy();

    // Node A cordoned: the scheduler must put the placeholder on B, which holds no copy.
    const nodeA = await core.readNode({ name: A });
    await core.replaceNode({ name: A, body: { ...nodeA, spec: { ...nodeA.spec, unschedulable: true } } });
    const restored = await torpor.restore({
      hash: HASH,
      runtime: 'kubernetes',
      restoreId: 'r1',
      sharedStore: true,
      kubernetes: { namespace: NS, image: IMAGE },
      readyTimeoutMs: 60_000,
    });
    expect(restored.node).toBe(B);
    const pod = (await core.listNamespacedPod({ namespace: NS, labelSelector: 'torpor.dev/restore-id=r1' })).items[0] as V1Pod;
    expect(pod.spec?.nodeName).toBe(B);
    expect(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    // B's agent fetched it into B's own store from S3, and restored it there.
    expect(await exists(path.join(stores[B] as string, HASH))).toBe(true);
    const placeholder = containerOf.get(pod.metadata?.name as string);
    expect(placeholder?.node).toBe(B);
    const after = placeholder && (await readStatus(placeholder.bundle));
    expect(after).toMatchObject({ iid: before?.iid, checksum: before?.checksum, restored: true });
    // The placeholder waited for B's fetch (told so by the pod) instead of cold-starting the app; it
    // may still be in its wait loop when the agent restores into it, so the line can come after.
    const waited = `checkpoint ${HASH} found; waiting`;
    await eventually(async () => (await world.output(placeholder?.id as string)).includes(waited) || undefined, waited);
    expect(await world.output(placeholder?.id as string)).not.toContain('cold start');
    // The restored process answers on its listening socket, now in B's placeholder's network namespace.
    const answer = await world.exec(placeholder?.id as string, ['python3', '-c', STATE_QUERY]);
    expect(JSON.parse(answer.stdout)).toMatchObject({ iid: before?.iid, checksum: before?.checksum, restored: true });
  });
});
