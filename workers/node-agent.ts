import { pathToFileURL } from 'node:url';
import { type NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { assertSupportedCriu, describeCriu } from '../activities/node/criu/runner.js';
import type { GpuActivityDeps } from '../activities/node/gpu/index.js';
import { createNodeActivities, type NodeAgentConfig } from '../activities/node/index.js';
import { assertCanDumpLocalWorkloads } from '../activities/node/local/runtime-switch.js';
import { torporDataConverter } from '../client/payload-codec.js';
import { nodeTaskQueue } from '../contract/naming.js';
import { connectWorker, runMain, shutdownOnTlsRotation, temporalTargetFromEnv } from './connection.js';
import { agentWorkerTuningFromEnv, nodeAgentConfigFromEnv } from './node-agent-config.js';

/**
 * The privileged agent of one node: node activities only, on `torpor-node-<node>`. It refuses to
 * start with a CRIU older than Torpor supports, or with local workloads it could not checkpoint.
 */
export async function createNodeAgent(
  connection: NativeConnection,
  namespace: string,
  config: NodeAgentConfig,
  options: Partial<WorkerOptions> = {},
  gpu?: GpuActivityDeps,
) {
  await assertSupportedCriu(config.criuPath);
  assertCanDumpLocalWorkloads(config);
  return Worker.create({
    connection,
    namespace,
    taskQueue: nodeTaskQueue(config.nodeName),
    activities: createNodeActivities(config, gpu),
    dataConverter: torporDataConverter(),
    ...agentWorkerTuningFromEnv(),
    ...options,
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runMain(async () => {
    const target = temporalTargetFromEnv();
    const config = nodeAgentConfigFromEnv();
    const worker = await createNodeAgent(await connectWorker(target), target.namespace, config);
    console.log(
      `node agent for ${config.nodeName} polling ${nodeTaskQueue(config.nodeName)}; storage ${config.storageRoot}; ` +
        `CRIU network lock ${config.networkLock}; workload launcher ${config.workloadLauncher ?? 'none'}; ` +
        `heavy steps ${config.heavyStepLimit} at once; CRIU ${await describeCriu(config.criuPath)}`,
    );
    shutdownOnTlsRotation(worker);
    await worker.run();
  });
}
