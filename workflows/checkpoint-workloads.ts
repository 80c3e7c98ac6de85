import { patched, workflowInfo } from '@temporalio/workflow';
import { torporFailure } from '../contract/failures.js';
import type { GpuTarget } from '../contract/gpu-types.js';
import type { PodPlacement } from '../contract/kubernetes.js';
import { type CheckpointSpec, establishedPolicy } from '../contract/spec.js';
import { clusterActivities, KUBERNETES_CONTAINER_STEPS, KUBERNETES_GPU_STEPS, type nodeActivities } from './activity-policies.js';

type NodeAgent = ReturnType<typeof nodeActivities>;

/**
 * The steps of a checkpoint that differ between runtimes: how the workload is started, when it is
 * ready, when it has exited, and how it is removed; what the node agent does to it once it is ready
 * comes from `waitReady`. Committing and the GPU steps are the same everywhere.
 */
export interface CheckpointWorkload {
  start(): Promise<unknown>;
  /** Waits until the app has initialized; the answer holds the node steps on what is now running. */
  waitReady(): Promise<ReadyWorkload>;
  /** True when it exited by itself after the signal; false when it had to be stopped. */
  waitExit(): Promise<boolean>;
  /** Stops it if still running and removes what it left (also its compensation). */
  remove(): Promise<unknown>;
}

/** The node agent's steps on a ready workload. */
export interface ReadyWorkload {
  /** Whose GPU state is frozen before the dump and thawed after; null: none is, and the manifest records no GPU. */
  readonly gpu: GpuTarget | null;
  /** Dumps it into the temporary dump `dumpId`. */
  dump(dumpId: string): Promise<{ imageBytes: number; dumpMs: number }>;
  /** Tells the app to exit. */
  signal(): Promise<unknown>;
}

/** The request's runtime. */
export function checkpointWorkload(spec: CheckpointSpec, agent: NodeAgent): CheckpointWorkload {
  return spec.runtime === 'kubernetes' ? kubernetesCheckpointWorkload(spec, agent) : localCheckpointWorkload(spec, agent);
}

/** `local`: a process the node agent starts on its own host. */
function localCheckpointWorkload(spec: CheckpointSpec, agent: NodeAgent): CheckpointWorkload {
  const { hash } = spec;
  return {
    start: () => agent.quick.startWorkload({ hash, workload: spec.workload }),
    async waitReady() {
      await agent.wait(spec.readyTimeoutMs).waitWorkloadReady({ hash, timeoutMs: spec.readyTimeoutMs });
      return processSteps(spec, agent);
    },
    async waitExit() {
      const exit = await agent.wait(spec.exitTimeoutMs).waitWorkloadExit({ hash, timeoutMs: spec.exitTimeoutMs });
      if (!exit.exited) await agent.quick.stopWorkload({ hash });
      return exit.exited;
    },
    remove: () => agent.quick.cleanupWorkload({ hash }),
  };
}

/** `kubernetes`: ChReK's checkpoint Job, pinned to the request's node, created by the control worker. */
function kubernetesCheckpointWorkload(spec: CheckpointSpec, agent: NodeAgent): CheckpointWorkload {
  const { hash, node } = spec;
  const section = spec.kubernetes;
  if (section === undefined) throw torporFailure('InvalidSpec', 'kubernetes is required for the kubernetes runtime');
  const cluster = clusterActivities(spec.agentTimeoutMs);
  const kubernetes = { ...section, node, command: spec.workload.command, env: spec.workload.env };
  const { namespace } = section;
  // The Job this run created, by UID: its pods are waited for and only it is deleted (never a foreign Job of that name).
  const owner = workflowInfo().runId;
  let jobUid: string | undefined;
  return {
    async start() {
      const created = await cluster.quick.createCheckpointJob({ hash, kubernetes, owner });
      jobUid = created.uid || undefined;
      return created;
    },
    async waitReady() {
      const timeoutMs = spec.readyTimeoutMs;
      const pod = await cluster.wait(timeoutMs).waitForCheckpointPod({ hash, namespace, timeoutMs, jobUid });
      if (pod.nodeName !== node) {
        throw torporFailure('TargetNotAllowed', `Checkpoint pod ${namespace}/${pod.podName} runs on ${pod.nodeName}, not on ${node}`);
      }
      // Histories from before the patch dumped the pod's process as the local runtime does.
      return patched(KUBERNETES_CONTAINER_STEPS) ? containerSteps(spec, agent, pod) : processSteps(spec, agent);
    },
    async waitExit() {
      const timeoutMs = spec.exitTimeoutMs;
      const exit = await cluster.wait(timeoutMs).waitForCheckpointPodExit({ hash, namespace, timeoutMs, jobUid });
      return exit.exited;
    },
    remove: () => cluster.quick.deleteCheckpointJob({ hash, namespace, uid: jobUid, owner }),
  };
}

/** A process tree the agent dumps with CRIU and signals through the workload's signal file. */
function processSteps(spec: CheckpointSpec, agent: NodeAgent): ReadyWorkload {
  const { hash } = spec;
  const established = establishedPolicy(spec);
  return {
    gpu: { hash },
    async dump(dumpId) {
      const { imageBytes, criuMs } = await agent.heavy.dumpWorkload({ hash, dumpId, established });
      return { imageBytes, dumpMs: criuMs };
    },
    signal: () => agent.quick.signalWorkload({ hash }),
  };
}

/**
 * The pod's container, which the agent finds from the ID in the pod's status and signals through
 * the file the Job waits for; the GPU steps act on every CUDA process of its tree (histories from
 * before the patch checkpointed no GPU state of a container).
 */
function containerSteps(spec: CheckpointSpec, agent: NodeAgent, pod: PodPlacement): ReadyWorkload {
  const { hash, node } = spec;
  const container = { id: pod.containerId, role: 'source' as const };
  return {
    gpu: patched(KUBERNETES_GPU_STEPS) ? { hash, container, nodeName: node } : null,
    dump: (dumpId) => agent.heavy.dumpContainer({ containerId: pod.containerId, hash, dumpId, nodeName: node, workload: spec.workload }),
    signal: () => agent.quick.signalCheckpointPod({ hash }),
  };
}
