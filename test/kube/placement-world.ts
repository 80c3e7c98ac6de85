import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import type { Client } from '@temporalio/client';
import { clusterActivities } from '../../activities/cluster/index.js';
import { sharedStoreConfigFromEnv } from '../../activities/node/store/shared/config.js';
import { testClusterPolicy } from '../support/cluster-policy.js';
import { type KubeCluster, startKubeCluster } from '../support/kube-cluster.js';
import { startTorporWorkers } from '../support/kube-workflow-world.js';

const SCHEDULER = fileURLToPath(new URL('../../.torpor/bin/kube-scheduler', import.meta.url));

/**
 * The real kube-scheduler (built by the set-up from the pinned Kubernetes module) against the test
 * control plane: it needs only a kubeconfig; without leader election and its secure port it runs
 * as root on loopback with nothing else.
 */
async function startScheduler(cluster: KubeCluster, dir: string): Promise<ChildProcess> {
  const kubeconfig = path.join(dir, 'scheduler.kubeconfig');
  await writeFile(kubeconfig, cluster.kubeConfig(cluster.adminToken).exportConfig());
  const child = spawn(SCHEDULER, ['--kubeconfig', kubeconfig, '--leader-elect=false', '--secure-port', '0'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log: Buffer[] = [];
  child.stderr?.on('data', (c: Buffer) => log.push(c));
  child.on('exit', () => void writeFile(path.join(dir, 'kube-scheduler.log'), Buffer.concat(log)).catch(() => undefined));
  return child;
}

/**
 * A node as a kubelet registers it: labels, and the status the scheduler filters by (allocatable
 * CPU, memory, pods and GPUs). The API server's TaintNodesByCondition admission taints a new node
 * not-ready, and no node-lifecycle controller runs to lift it once Ready: it is lifted here.
 */
export async function registerNode(core: CoreV1Api, name: string, labels: Record<string, string>, images: string[] = []): Promise<void> {
  await core.createNode({ body: { metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } } } });
  const resources = { cpu: '64', memory: '512Gi', pods: '110', 'nvidia.com/gpu': '8' };
  const current = await core.readNodeStatus({ name });
  await core.replaceNodeStatus({
    name,
    body: {
      ...current,
      status: {
        capacity: resources,
        allocatable: resources,
        conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }],
        images: images.map((image) => ({ names: [image], sizeBytes: 2e9 })),
      },
    },
  });
  const node = await core.readNode({ name });
  const taints = (node.spec?.taints ?? []).filter((t) => !t.key.startsWith('node.kubernetes.io/'));
  await core.replaceNode({ name, body: { ...node, spec: { ...node.spec, taints } } });
}

export interface PlacementWorld {
  cluster: KubeCluster;
  core: CoreV1Api;
  client: Client;
  stop(): Promise<void>;
}

/**
 * A real kube-apiserver, controller-manager and kube-scheduler with one namespace and the nodes
 * `nodes` (name → labels); the control worker (cluster activities reading the shared store `s3Env`)
 * and, for each node, a worker answering its agent's queue with `agents[node]`.
 */
export async function startPlacementWorld(options: {
  dir: string;
  namespace: string;
  /** Each node's labels, and the images it holds already (the scheduler prefers those nodes). */
  nodes: Record<string, { labels: Record<string, string>; images?: string[] }>;
  agents: Record<string, object>;
  s3Env: Record<string, string>;
}): Promise<PlacementWorld> {
  await mkdir(options.dir, { recursive: true });
  const cluster = await startKubeCluster(options.dir);
  const scheduler = await startScheduler(cluster, options.dir);
  const admin = cluster.kubeConfig(cluster.adminToken);
  const core = admin.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: options.namespace } } });
  for (const [name, { labels, images }] of Object.entries(options.nodes)) await registerNode(core, name, labels, images);
  const sharedStore = sharedStoreConfigFromEnv(options.s3Env);
  const control = clusterActivities({ kubeConfig: admin, ...testClusterPolicy([options.namespace]), sharedStore });
  const workers = await startTorporWorkers(control, options.agents);
  const { client } = workers;
  return {
    cluster,
    core,
    client,
    async stop() {
      await workers.stop();
      scheduler.kill('SIGTERM');
      await new Promise((r) => (scheduler.exitCode === null ? scheduler.once('exit', r) : r(null)));
      await cluster.stop();
    },
  };
}

/** The pods of `namespace` bound to `node`: what that node's kubelet would run. */
export async function podsOn(core: CoreV1Api, namespace: string, node: string): Promise<V1Pod[]> {
  return (await core.listNamespacedPod({ namespace })).items.filter((p) => p.spec?.nodeName === node && !p.metadata?.deletionTimestamp);
}
