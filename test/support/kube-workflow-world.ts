import { rm } from 'node:fs/promises';
import { CoreV1Api } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { clusterActivities } from '../../activities/cluster/index.js';
import { torporDataConverter } from '../../client/payload-codec.js';
import { nodeTaskQueue } from '../../contract/naming.js';
import { createControlWorker } from '../../workers/control.js';
import { testClusterPolicy } from './cluster-policy.js';
import { type KubeCluster, startKubeCluster } from './kube-cluster.js';
import { TestKubelet } from './test-kubelet.js';

export interface TorporWorkers {
  client: Client;
  stop(): Promise<void>;
}

/**
 * Torpor's workers on the test's Temporal server: the control worker (the workflows and
 * `controlActivities`) and, for each node, a worker answering that node agent's queue with its
 * activities; and a client.
 */
export async function startTorporWorkers(controlActivities: object, agents: Record<string, object>): Promise<TorporWorkers> {
  const address = inject('temporalAddress');
  const connection = await NativeConnection.connect({ address });
  const workers = [
    await createControlWorker(connection, 'default', {
      workflowBundle: { codePath: inject('workflowBundlePath') },
      activities: controlActivities,
    }),
    ...(await Promise.all(
      Object.entries(agents).map(([node, activities]) =>
        Worker.create({
          connection,
          namespace: 'default',
          taskQueue: nodeTaskQueue(node),
          activities,
          dataConverter: torporDataConverter(),
        }),
      ),
    )),
  ];
  const running = workers.map((w) => w.run());
  const client = new Client({ connection: await Connection.connect({ address }), dataConverter: torporDataConverter() });
  return {
    client,
    async stop() {
      for (const w of workers) w.shutdown();
      await Promise.allSettled(running);
    },
  };
}

/** A real kube-apiserver with one namespace and a TestKubelet node, the control worker, and a worker answering the node agent's queue with `nodeActivities`. */
export interface KubeWorkflowWorld {
  cluster: KubeCluster;
  core: CoreV1Api;
  kubelet: TestKubelet;
  client: Client;
  stop(): Promise<void>;
}

export async function startKubeWorkflowWorld(options: {
  dir: string;
  namespace: string;
  node: string;
  nodeActivities: object;
}): Promise<KubeWorkflowWorld> {
  const cluster = await startKubeCluster(options.dir);
  const admin = cluster.kubeConfig(cluster.adminToken);
  const core = admin.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: options.namespace } } });
  const kubelet = new TestKubelet(admin, options.node);
  await kubelet.registerNode();
  // The control worker uses the admin identity here; its RBAC is proven in cluster-activities.test.ts.
  const control = clusterActivities({ kubeConfig: admin, ...testClusterPolicy([options.namespace]) });
  const workers = await startTorporWorkers(control, { [options.node]: options.nodeActivities });
  const { client } = workers;
  return {
    cluster,
    core,
    kubelet,
    client,
    async stop() {
      await workers.stop();
      await cluster.stop();
      await rm(options.dir, { recursive: true, force: true });
    },
  };
}
