import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { execa } from 'execa';
import { inject } from 'vitest';
import { TorporClient } from '../../client/index.js';
import { torporDataConverter } from '../../client/payload-codec.js';
import { useLocalPayloadKeys } from '../../dev/payload-keys.js';
import {
  AGENT_KUBECONFIG_SECRET,
  type ChartSite,
  CONTROL_KUBECONFIG_SECRET,
  chartValues,
  PAYLOAD_KEYS_SECRET,
  podKubeconfig,
} from './installed-chart-values.js';
import { type KubeCluster, startKubeCluster } from './kube-cluster.js';
import { buildNodeImages, SAMPLE_IMAGE } from './kube-real-images.js';
import { CRI_RUNC_ROOT, type RealNode, startRealNode } from './kube-real-node.js';

export const CHART = path.resolve('deploy/helm/torpor');
export const RELEASE = 'torpor';
export const RELEASE_NS = 'torpor';
export const WORKER_REPO = 'localhost/torpor-worker';
export const WORKER_TAG = 'dev';
const WORKER_ARCHIVE = path.resolve('.torpor/images/torpor-worker.tar');

export interface InstalledChart {
  cluster: KubeCluster;
  node: RealNode;
  core: CoreV1Api;
  apps: AppsV1Api;
  torpor: TorporClient;
  client: Client;
  site: ChartSite;
  helm(args: string[]): Promise<string>;
  /** `helm install` (or `upgrade --install`) with the test's values and `extra` (--set) on top. */
  install(extra?: string[]): Promise<void>;
  stop(): Promise<void>;
}

const SUBNET = '10.244.9.0/24';
const RUNC_PARENT = path.dirname(path.dirname(CRI_RUNC_ROOT));

async function sharedBindMount(dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true });
  await execa('mount', ['--bind', dir, dir]);
  await execa('mount', ['--make-rshared', dir]);
  return async () => {
    await execa('umount', ['-l', dir]);
  };
}
const gatewayOf = (subnet: string) => subnet.replace(/\.0\/\d+$/, '.1');

/**
 * Forwards TCP connections to `host:port` from a port of its own on every address: the pods reach
 * loopback-only servers through it (the bridge's address exists only once the first pod is wired).
 */
async function forward(target: { host: string; port: number }): Promise<{ port: number; server: net.Server }> {
  const server = net.createServer((downstream) => {
    const upstream = net.connect(target.port, target.host);
    downstream.pipe(upstream).pipe(downstream);
    downstream.on('error', () => upstream.destroy());
    upstream.on('error', () => downstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, resolve));
  return { port: (server.address() as net.AddressInfo).port, server };
}

/**
 * The chart's Deployment and DaemonSet need their controllers, which the shared test control plane does
 * not run (its tests create Jobs and Pods only): a second controller manager runs just those.
 */
async function startWorkloadControllers(kubeconfig: string, log: string): Promise<() => Promise<void>> {
  const args = ['--kubeconfig', kubeconfig, '--controllers', 'deployment,replicaset,daemonset', '--leader-elect=false'];
  const logFile = await open(log, 'w');
  const child = spawn(
    path.resolve('.torpor/bin/kube-controller-manager'),
    [...args, '--secure-port', '0', '--use-service-account-credentials=false'],
    {
      stdio: ['ignore', 'ignore', logFile.fd],
    },
  );
  await logFile.close();
  return async () => {
    if (child.exitCode !== null) return;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  };
}

/** The worker image, built by scripts/build-images.sh (BuildKit; skipped while its inputs are unchanged). */
export async function workerImageArchive(): Promise<string> {
  await execa('bash', ['scripts/build-images.sh'], { stdio: 'inherit', env: { TORPOR_WORKER_IMAGE: `${WORKER_REPO}:${WORKER_TAG}` } });
  return WORKER_ARCHIVE;
}

async function createPayloadKeySecret(core: CoreV1Api): Promise<void> {
  await core.createNamespace({ body: { metadata: { name: RELEASE_NS } } });
  const keys = await readFile(useLocalPayloadKeys(), 'utf8');
  await core.createNamespacedSecret({
    namespace: RELEASE_NS,
    body: { metadata: { name: PAYLOAD_KEYS_SECRET }, stringData: { 'payload-keys': keys } },
  });
}

/** Tokens of the chart's ServiceAccounts, as kubeconfig Secrets the chart mounts (the test API server gives pods none). */
export async function createKubeconfigSecrets(core: CoreV1Api, server: string): Promise<void> {
  for (const [secret, sa] of [
    [CONTROL_KUBECONFIG_SECRET, `${RELEASE}-torpor-control`],
    [AGENT_KUBECONFIG_SECRET, `${RELEASE}-torpor-agent`],
  ] as const) {
    const { status } = await core.createNamespacedServiceAccountToken({
      name: sa,
      namespace: RELEASE_NS,
      body: { spec: { audiences: [], expirationSeconds: 7200 } },
    });
    const body = { metadata: { name: secret }, stringData: { kubeconfig: podKubeconfig(server, status?.token ?? '') } };
    await core.deleteNamespacedSecret({ name: secret, namespace: RELEASE_NS }).catch(() => undefined);
    await core.createNamespacedSecret({ namespace: RELEASE_NS, body });
  }
}

/**
 * The chart installed on a real node: the test control plane, a node (kubelet, containerd CRI, CNI) with
 * the worker image built by BuildKit imported into its containerd, and `helm install`. The pods reach
 * the test's Temporal and API server through forwarders on the node's address (both listen on loopback).
 */
export async function startInstalledChart(options: { namespaces: string[]; nodeName: string }): Promise<InstalledChart> {
  const work = path.join(os.tmpdir(), `torpor-chart-${process.pid}`);
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch((err) => console.error(`installed chart teardown: ${err}`));
    await rm(work, { recursive: true, force: true });
  };
  try {
    await mkdir(path.join(work, 'store'), { recursive: true });
    await mkdir(path.join(work, 'signals'), { recursive: true });
    const worker = await workerImageArchive();
    const cluster = await startKubeCluster(path.join(work, 'control-plane'));
    stops.push(() => cluster.stop());
    const images = [...(await buildNodeImages(path.join(work, 'images'))), worker];
    // The agent's HostToContainer mounts need shared (or slave) host mounts, as on a systemd host; this
    // VM's / is private, so the node's directories and runc's root are shared bind mounts of themselves.
    const nodeRoot = `/tmp/tchr${process.pid}`;
    const nodeDir = path.join(nodeRoot, `tch${process.pid}`);
    stops.push(() => rm(nodeRoot, { recursive: true, force: true }));
    for (const dir of [RUNC_PARENT, nodeRoot]) stops.push(await sharedBindMount(dir));
    const node = await startRealNode(cluster, { dir: nodeDir, nodeName: options.nodeName, images, subnet: SUBNET });
    stops.push(() => node.stop());
    const [temporalHost, temporalPort] = inject('temporalAddress').split(':');
    const temporal = await forward({ host: temporalHost ?? '127.0.0.1', port: Number(temporalPort) });
    const api = await forward({ host: '127.0.0.1', port: Number(new URL(cluster.server).port) });
    // Pods on the CNI bridge have no default route: they reach the host at the bridge's gateway address.
    const hostIp = gatewayOf(SUBNET);
    stops.push(async () => {
      temporal.server.close();
      api.server.close();
    });
    const admin = cluster.kubeConfig(cluster.adminToken);
    const kubeconfigFile = path.join(work, 'admin.kubeconfig');
    await writeFile(kubeconfigFile, admin.exportConfig());
    await mkdir(path.resolve('.torpor/test'), { recursive: true });
    stops.push(await startWorkloadControllers(kubeconfigFile, path.resolve('.torpor/test/installed-chart-controllers.log')));
    const core = admin.makeApiClient(CoreV1Api);
    for (const name of options.namespaces) await core.createNamespace({ body: { metadata: { name } } });
    await createPayloadKeySecret(core);
    const site: ChartSite = {
      image: { repository: WORKER_REPO, tag: WORKER_TAG },
      nodeName: options.nodeName,
      temporalAddress: `${hostIp}:${temporal.port}`,
      namespaces: options.namespaces,
      allowedImages: [SAMPLE_IMAGE.split(':')[0] as string],
      storeHostPath: path.join(work, 'store'),
      signalHostPath: path.join(work, 'signals'),
      runtimeHostPaths: [RUNC_PARENT, nodeDir],
    };
    const valuesFile = path.join(work, 'values.json');
    await writeFile(valuesFile, JSON.stringify(chartValues(site)));
    const helm = async (args: string[]) =>
      (
        await execa('helm', ['--kubeconfig', kubeconfigFile, '--namespace', RELEASE_NS, ...args], {
          env: { HELM_CACHE_HOME: path.join(work, 'helm') },
        })
      ).stdout;
    const client = new Client({
      connection: await Connection.connect({ address: inject('temporalAddress') }),
      dataConverter: torporDataConverter(),
    });
    stops.push(async () => {
      await helm(['uninstall', RELEASE, '--wait', '--timeout', '60s']).catch(() => undefined);
      await client.connection.close();
    });
    const install = async (extra: string[] = []) => {
      await helm(['upgrade', '--install', RELEASE, CHART, '--values', valuesFile, ...extra.flatMap((e) => ['--set', e])]);
      await createKubeconfigSecrets(core, `https://${hostIp}:${api.port}`);
    };
    return {
      cluster,
      node,
      core,
      apps: admin.makeApiClient(AppsV1Api),
      torpor: new TorporClient(client),
      client,
      site,
      helm,
      install,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
