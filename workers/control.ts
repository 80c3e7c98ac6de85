import { pathToFileURL } from 'node:url';
import { type NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { torporDataConverter } from '../client/payload-codec.js';
import { CONTROL_TASK_QUEUE } from '../contract/naming.js';
import { connectWorker, runMain, shutdownOnTlsRotation, temporalTargetFromEnv } from './connection.js';
import { clusterActivitiesFromEnv, controlWorkerTuningFromEnv } from './control-config.js';
import { workflowSource } from './workflow-source.js';

/** The unprivileged control worker: the workflows, and the Kubernetes activities when it has a cluster, on `torpor-control`. */
export function createControlWorker(connection: NativeConnection, namespace: string, options: Partial<WorkerOptions> = {}) {
  return Worker.create({
    connection,
    namespace,
    taskQueue: CONTROL_TASK_QUEUE,
    dataConverter: torporDataConverter(),
    ...workflowSource(options.workflowBundle),
    ...controlWorkerTuningFromEnv(),
    ...options,
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runMain(async () => {
    const target = temporalTargetFromEnv();
    const activities = clusterActivitiesFromEnv();
    const worker = await createControlWorker(await connectWorker(target), target.namespace, activities ? { activities } : {});
    console.log(`control worker polling ${CONTROL_TASK_QUEUE} on ${target.address}`);
    shutdownOnTlsRotation(worker);
    await worker.run();
  });
}
