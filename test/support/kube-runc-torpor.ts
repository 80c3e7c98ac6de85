import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { clusterActivities } from '../../activities/cluster/index.js';
import { kubernetesPodLookup } from '../../activities/node/container/pod-lookup.js';
import { CHECKPOINT_SOURCE_LABEL } from '../../contract/chrek.js';
import { testClusterPolicy } from './cluster-policy.js';
import { type KubeCluster, startKubeCluster } from './kube-cluster.js';
import type { RuncWorld } from './runc-containers.js';
import { TestKubelet } from './test-kubelet.js';
import { type HarnessOptions, startTorpor, type TorporHarness } from './torpor-harness.js';

export interface KubeRuncTorpor {
  cluster: KubeCluster;
  core: CoreV1Api;
  /** The node's test kubelet: the test's own loop plays it (binds pods, starts their runc containers). */
  kubelet: TestKubelet;
  h: TorporHarness;
  stop(): Promise<void>;
}

/**
 * Everything real but the kubelet, for the kubernetes runtime end to end: a kube-apiserver (and
 * controller-manager) with one namespace and a TestKubelet node; Torpor with the cluster activities
 * and a node agent on runc and CRIU that looks pods up in the API, signals in `signals`. `agent`
 * adds to the node agent (a GPU driver, interceptors).
 */
export async function startKubeRuncTorpor(options: {
  world: RuncWorld;
  namespace: string;
  node: string;
  signals: string;
  agent?: Pick<HarnessOptions, 'gpu' | 'agentInterceptors'>;
}): Promise<KubeRuncTorpor> {
  const { world } = options;
  const cluster = await startKubeCluster(path.join(os.tmpdir(), `torpor-${path.basename(world.dir)}-${process.pid}`));
  try {
    return await startOn(cluster, options);
  } catch (err) {
    await world.cleanUp();
    await cluster.stop();
    throw err;
  }
}

async function startOn(cluster: KubeCluster, options: Parameters<typeof startKubeRuncTorpor>[0]): Promise<KubeRuncTorpor> {
  const { world, namespace, node, signals } = options;
  const admin = cluster.kubeConfig(cluster.adminToken);
  const core = admin.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const kubelet = new TestKubelet(admin, node);
  await kubelet.registerNode();
  await world.createImage();
  await mkdir(signals, { recursive: true });
  const { runcPath, runcRoot, criuPath } = world.config([]);
  const h = await startTorpor({
    node,
    ...options.agent,
    controlActivities: clusterActivities({ kubeConfig: admin, ...testClusterPolicy([namespace], { signalHostPath: signals }) }),
    config: {
      criuPath,
      signalDir: signals,
      containers: {
        runcPath,
        runcRoot,
        allowedNamespaces: [namespace],
        checkpointSourceLabel: CHECKPOINT_SOURCE_LABEL,
        pods: kubernetesPodLookup(admin),
      },
    },
  });
  return {
    cluster,
    core,
    kubelet,
    h,
    async stop() {
      await world.cleanUp();
      await h.stop();
      await cluster.stop();
    },
  };
}
