import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { freePort } from './free-port.js';

const BIN = fileURLToPath(new URL('../../.torpor/bin/', import.meta.url));

export interface KubeCluster {
  server: string;
  kubeConfig(token: string): KubeConfig;
  adminToken: string;
  /** The control worker's user: only what the RBAC manifests grant it. */
  controlToken: string;
  stop(): Promise<void>;
}

function kubeConfigFor(server: string, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'test', server, skipTLSVerify: true }],
    users: [{ name: 'user', token }],
    contexts: [{ name: 'test', cluster: 'test', user: 'user' }],
    currentContext: 'test',
  });
  return kc;
}

function start(name: string, args: string[], logFile: string): ChildProcess {
  const child = spawn(path.join(BIN, name), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const chunks: Buffer[] = [];
  child.stderr?.on('data', (c: Buffer) => chunks.push(c));
  child.on('exit', () => void writeFile(logFile, Buffer.concat(chunks)).catch(() => undefined));
  return child;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(250);
  }
  throw new Error(`${what} did not come up within ${timeoutMs} ms`);
}

/**
 * A real Kubernetes control plane on loopback: etcd, kube-apiserver (RBAC, token auth) and
 * kube-controller-manager (so Jobs create Pods), built by scripts/setup.sh from the Kubernetes Go
 * modules. No kubelet and no scheduler run: tests bind pods and set their status themselves.
 */
export async function startKubeCluster(dir: string): Promise<KubeCluster> {
  await mkdir(dir, { recursive: true });
  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  await writeFile(path.join(dir, 'sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
  await writeFile(path.join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  const adminToken = `admin-${Math.random().toString(36).slice(2)}`;
  const controlToken = `control-${Math.random().toString(36).slice(2)}`;
  await writeFile(
    path.join(dir, 'tokens.csv'),
    `${adminToken},admin,admin,"system:masters"\n${controlToken},torpor-control,torpor-control\n`,
  );

  const children: ChildProcess[] = [];
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  children.push(
    start(
      'etcd',
      [
        '--data-dir',
        path.join(dir, 'etcd'),
        '--listen-client-urls',
        etcdUrl,
        '--advertise-client-urls',
        etcdUrl,
        '--listen-peer-urls',
        `http://127.0.0.1:${peerPort}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${peerPort}`,
        '--initial-cluster',
        `default=http://127.0.0.1:${peerPort}`,
        '--name',
        'default',
        '--log-level',
        'error',
      ],
      path.join(dir, 'etcd.log'),
    ),
  );
  await until('etcd', async () => (await fetch(`${etcdUrl}/health`)).ok);

  const server = `https://127.0.0.1:${apiPort}`;
  children.push(
    start(
      'kube-apiserver',
      [
        '--etcd-servers',
        etcdUrl,
        '--bind-address',
        '127.0.0.1',
        '--secure-port',
        String(apiPort),
        '--advertise-address',
        '127.0.0.1',
        '--endpoint-reconciler-type',
        'none',
        '--cert-dir',
        path.join(dir, 'certs'),
        '--token-auth-file',
        path.join(dir, 'tokens.csv'),
        '--authorization-mode',
        'RBAC',
        '--service-cluster-ip-range',
        '10.96.0.0/24',
        '--service-account-issuer',
        'https://kubernetes.default.svc',
        '--service-account-key-file',
        path.join(dir, 'sa.pub'),
        '--service-account-signing-key-file',
        path.join(dir, 'sa.key'),
        '--disable-admission-plugins',
        'ServiceAccount',
        '--enable-priority-and-fairness=false',
        // A short compaction interval and no watch cache (watches go to etcd), so a test can
        // watch from a resourceVersion that has been compacted away and get 410 Gone.
        '--etcd-compaction-interval',
        '5s',
        '--watch-cache=false',
        // As on GPU clusters that run a privileged node agent (ChReK's DaemonSet too).
        '--allow-privileged=true',
        // A real test kubelet's node name resolves nowhere: dial it at its address (logs, exec).
        '--kubelet-preferred-address-types',
        'InternalIP',
      ],
      path.join(dir, 'kube-apiserver.log'),
    ),
  );
  const admin = kubeConfigFor(server, adminToken);
  const core = admin.makeApiClient(CoreV1Api);
  await until('kube-apiserver', async () => (await core.listNamespace()).items.some((n) => n.metadata?.name === 'default'), 120_000);

  const kubeconfigFile = path.join(dir, 'admin.kubeconfig');
  await writeFile(kubeconfigFile, admin.exportConfig());
  children.push(
    start(
      'kube-controller-manager',
      [
        '--kubeconfig',
        kubeconfigFile,
        '--controllers',
        'job,garbagecollector',
        '--leader-elect=false',
        '--secure-port',
        '0',
        '--use-service-account-credentials=false',
      ],
      path.join(dir, 'kube-controller-manager.log'),
    ),
  );

  return {
    server,
    adminToken,
    controlToken,
    kubeConfig: (token) => kubeConfigFor(server, token),
    async stop() {
      for (const child of children.reverse()) {
        child.kill('SIGTERM');
        await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(null)));
      }
      await rm(path.join(dir, 'etcd'), { recursive: true, force: true });
    },
  };
}
