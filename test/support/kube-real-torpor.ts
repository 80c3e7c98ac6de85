import { mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { clusterActivities } from '../../activities/cluster/index.js';
import { kubernetesPodLookup } from '../../activities/node/container/pod-lookup.js';
import { CHECKPOINT_SOURCE_LABEL } from '../../contract/chrek.js';
import { testClusterPolicy } from './cluster-policy.js';
import { type KubeCluster, startKubeCluster } from './kube-cluster.js';
import { buildNodeImages } from './kube-real-images.js';
import { CRI_RUNC_ROOT, type RealNode, startRealNode } from './kube-real-node.js';
import { startTorpor, type TorporHarness } from './torpor-harness.js';

export interface RealKubeTorpor {
  cluster: KubeCluster;
  node: RealNode;
  core: CoreV1Api;
  h: TorporHarness;
  /** The agent's store on the node: the restore pod mounts `<store>/<hash>` from it. */
  store: string;
  stop(): Promise<void>;
}

/**
 * Everything real for the kubernetes runtime: the test control plane, a real node (kubelet,
 * containerd's CRI, CNI, scheduler) and Torpor whose node agent finds the kubelet's containers
 * under containerd's runc root and checks them against the API.
 */
export async function startRealKubeTorpor(options: { namespace: string; nodeName: string; name: string }): Promise<RealKubeTorpor> {
  const work = path.join(os.tmpdir(), `torpor-${options.name}-${process.pid}`);
  const store = path.join(work, 'store');
  const signals = path.join(work, 'signals');
  await mkdir(store, { recursive: true });
  await mkdir(signals, { recursive: true });
  const cluster = await startKubeCluster(path.join(work, 'control-plane'));
  const stops: Array<() => Promise<void>> = [() => cluster.stop()];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch((err) => console.error(`real node teardown: ${err}`));
    await rm(work, { recursive: true, force: true });
  };
  try {
    const admin = cluster.kubeConfig(cluster.adminToken);
    const images = await buildNodeImages(path.join(work, 'images'));
    const node = await startRealNode(cluster, { dir: `/tmp/trn${process.pid}`, nodeName: options.nodeName, images });
    stops.push(() => node.stop());
    const core = admin.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: options.namespace } } });
    const policy = testClusterPolicy([options.namespace], { signalHostPath: signals, checkpointHostPath: store });
    const h = await startTorpor({
      node: options.nodeName,
      controlActivities: clusterActivities({ kubeConfig: admin, ...policy }),
      config: {
        storageRoot: store,
        signalDir: signals,
        criuPath: path.resolve('.torpor/bin/criu'),
        // As the runc container tests: the lock that needs no iptables binary on the node.
        networkLock: 'nftables',
        containers: {
          runcPath: path.resolve('.torpor/bin/runc'),
          runcRoot: CRI_RUNC_ROOT,
          allowedNamespaces: [options.namespace],
          checkpointSourceLabel: CHECKPOINT_SOURCE_LABEL,
          pods: kubernetesPodLookup(admin),
        },
      },
    });
    stops.push(() => h.stop());
    return { cluster, node, core, h, store, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
