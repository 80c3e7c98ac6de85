import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api } from '@kubernetes/client-node';
import { execa } from 'execa';
import { freePort } from './free-port.js';
import type { KubeCluster } from './kube-cluster.js';
import { cgroupDirs, hostSnapshot, removeLeftovers } from './kube-real-cleanup.js';
import { cniConfig, containerdConfig, kubeletConfig, type RealNodeLayout, socketOf } from './kube-real-config.js';
import { PAUSE_IMAGE } from './kube-real-images.js';

const BIN = path.resolve('.torpor/bin');
const CNI_BIN = path.resolve('.torpor/cni/bin');
/** containerd's runc shim keeps runc's state here for the CRI plugin's namespace. */
export const CRI_RUNC_ROOT = '/run/containerd/runc/k8s.io';

export interface RealNode {
  layout: RealNodeLayout;
  ctr(args: string[]): Promise<{ exitCode?: number | undefined; stdout: string; stderr: string }>;
  importImage(archive: string): Promise<void>;
  stop(): Promise<void>;
}

function daemon(name: string, args: string[], log: string): ChildProcess {
  const child = spawn(path.join(BIN, name), args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PATH: `${BIN}:${process.env.PATH ?? ''}` },
  });
  child.stderr?.pipe(createWriteStream(log));
  // A daemon that cannot start (spawn error) or exits says so in the wait's failure, not a bare timeout.
  child.on('error', (err) => void writeFile(`${log}.exit`, `spawn failed: ${err.message}\n`).catch(() => undefined));
  child.on('exit', (code, sig) => void writeFile(`${log}.exit`, `exited: code ${code} signal ${sig}\n`).catch(() => undefined));
  return child;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(250);
  }
  const tail = (await readFile(logFile, 'utf8').catch(() => '')).split('\n').slice(-30).join('\n');
  const exit = await readFile(`${logFile}.exit`, 'utf8').catch(() => 'still running\n');
  throw new Error(`${what} did not come up within ${timeoutMs} ms (${exit.trim()}); its log ends:\n${tail}`);
}

/**
 * A real Kubernetes node on this host for `cluster`: containerd with its CRI plugin, CNI (bridge,
 * host-local, loopback), the kubelet and kube-scheduler, all built or unpacked by the set-up.
 * `images` (OCI archives) are imported before the kubelet starts. `stop` deletes every pod, stops
 * the daemons and removes what they left: containers, mounts, network namespaces, the bridge, cgroups.
 */
export async function startRealNode(
  cluster: KubeCluster,
  options: { dir: string; nodeName: string; images: string[]; subnet?: string },
): Promise<RealNode> {
  const { dir, nodeName } = options;
  const layout: RealNodeLayout = {
    dir,
    nodeName,
    bin: BIN,
    cniBin: CNI_BIN,
    cgroupRoot: `/torpor-${path.basename(dir)}`,
    bridge: `tp${path.basename(dir).slice(-10)}`.slice(0, 15),
    subnet: options.subnet ?? '10.244.7.0/24',
    kubeletPort: await freePort(),
    nodeIp: hostAddress(),
  };
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.join(dir, 'net.d'), { recursive: true });
  const before = await hostSnapshot();
  const children: ChildProcess[] = [];
  const ctr = (args: string[]) => execa(path.join(BIN, 'ctr'), ['--address', socketOf(layout), '-n', 'k8s.io', ...args], { reject: false });
  const core = cluster.kubeConfig(cluster.adminToken).makeApiClient(CoreV1Api);

  const stop = async () => {
    await deleteAllPods(core, nodeName);
    const [containerd, ...rest] = children;
    for (const child of rest.reverse()) await terminate(child);
    if (containerd) {
      await removeContainers(ctr);
      await terminate(containerd);
    }
    await removeLeftovers(layout, before);
  };
  const node: RealNode = {
    layout,
    ctr,
    async importImage(archive) {
      const r = await ctr(['images', 'import', archive]);
      if (r.exitCode !== 0) throw new Error(`ctr images import ${archive}: ${r.stderr}`);
    },
    stop,
  };
  try {
    await writeFile(path.join(dir, 'containerd.toml'), containerdConfig(layout, PAUSE_IMAGE));
    await writeFile(path.join(dir, 'net.d', '10-torpor.conflist'), cniConfig(layout));
    await writeFile(path.join(dir, 'kubelet.json'), kubeletConfig(layout));
    await writeFile(path.join(dir, 'kubeconfig'), cluster.kubeConfig(cluster.adminToken).exportConfig());
    for (const d of await cgroupDirs(layout.cgroupRoot)) await mkdir(d, { recursive: true });

    children.push(daemon('containerd', ['--config', path.join(dir, 'containerd.toml')], path.join(dir, 'containerd.log')));
    await until('containerd', async () => (await ctr(['version'])).exitCode === 0, 30_000, path.join(dir, 'containerd.log'));
    for (const archive of options.images) await node.importImage(archive);

    children.push(daemon('kubelet', kubeletArgs(layout), path.join(dir, 'kubelet.log')));
    await until('the kubelet (node Ready)', () => nodeReady(core, nodeName), 120_000, path.join(dir, 'kubelet.log'));
    await untaint(core, nodeName);
    children.push(
      daemon(
        'kube-scheduler',
        ['--kubeconfig', path.join(dir, 'kubeconfig'), '--leader-elect=false', '--secure-port', '0'],
        path.join(dir, 'kube-scheduler.log'),
      ),
    );
    return node;
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The first non-loopback IPv4 address of this host. */
function hostAddress(): string {
  const all = Object.values(os.networkInterfaces()).flatMap((list) => list ?? []);
  const address = all.find((a) => a.family === 'IPv4' && !a.internal)?.address;
  if (!address) throw new Error('the real test node needs a non-loopback IPv4 address for the kubelet');
  return address;
}

function kubeletArgs(l: RealNodeLayout): string[] {
  return [
    '--config',
    path.join(l.dir, 'kubelet.json'),
    '--kubeconfig',
    path.join(l.dir, 'kubeconfig'),
    '--root-dir',
    path.join(l.dir, 'kubelet'),
    '--cert-dir',
    path.join(l.dir, 'kubelet-pki'),
    // The node's name is the test's (Torpor pins pods by kubernetes.io/hostname), not the VM's.
    '--hostname-override',
    l.nodeName,
    '--node-ip',
    l.nodeIp,
  ];
}

/**
 * The kubelet registers its node tainted not-ready; the node lifecycle controller, which the test
 * control plane does not run, lifts the taint once the node is Ready. This plays that controller.
 */
async function untaint(core: CoreV1Api, name: string): Promise<void> {
  const node = await core.readNode({ name });
  const taints = (node.spec?.taints ?? []).filter((t) => !t.key.startsWith('node.kubernetes.io/'));
  await core.replaceNode({ name, body: { ...node, spec: { ...node.spec, taints } } });
}

async function nodeReady(core: CoreV1Api, name: string): Promise<boolean> {
  const node = await core.readNode({ name });
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** Deletes every pod on the node and waits (bounded) for the kubelet to stop them: it tears down their sandboxes and networks. */
async function deleteAllPods(core: CoreV1Api, nodeName: string): Promise<void> {
  const list = async () =>
    (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${nodeName}` }).catch(() => ({ items: [] }))).items;
  for (const pod of await list()) {
    const { name, namespace } = pod.metadata as { name: string; namespace: string };
    await core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 1 }).catch(() => undefined);
  }
  const deadline = Date.now() + 30_000;
  while ((await list()).length > 0 && Date.now() < deadline) await sleep(500);
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await Promise.race([new Promise((r) => child.once('exit', r)), sleep(10_000)]);
}

/** What the kubelet did not remove (sandboxes wait for its garbage collection): tasks, then containers. */
async function removeContainers(ctr: RealNode['ctr']): Promise<void> {
  const ids = (await ctr(['containers', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
  for (const id of ids) {
    await ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
    for (let i = 0; i < 20 && (await ctr(['tasks', 'rm', '-f', id])).exitCode !== 0; i++) await sleep(100);
    await ctr(['containers', 'rm', id]);
  }
}
