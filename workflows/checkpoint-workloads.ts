import { patched, workflowInfo } from '@temporalio/workflow';
import { torporFailure } from '../contract/failures.js';
import type { GpuTarget } from '../contract/gpu-types.js';
import type { PodPlacement } from '../contract/kubernetes.js';
import { type CheckpointSpec, establishedPolicy } from '../contract/spec.js';
import type { StartUnlessCommittedResult } from '../contract/types.js';
import {
  clusterActivities,
  KUBERNETES_CONTAINER_STEPS,
  KUBERNETES_GPU_STEPS,
  KUBERNETES_PLACEMENT,
  nodeActivities,
} from './activity-policies.js';
import { type OneStepCheckpoint, oneStepCheckpoint } from './checkpoint-in-one-step.js';
import type { Compensations } from './compensations.js';
import type { ProgressTracker } from './progress.js';

type NodeAgent = ReturnType<typeof nodeActivities>;
/** A node and its agent's steps. */
interface OnNode {
  node: string;
  agent: NodeAgent;
}

/**
 * The steps of a checkpoint that differ between runtimes: how the workload is started, when it is
 * ready, when it has exited, and how it is removed; what the node agent does to it once it is ready
 * comes from `waitReady`. Committing and the GPU steps are the same everywhere.
 */
export interface CheckpointWorkload {
  start(): Promise<unknown>;
  /** The look-up of a committed checkpoint and, without one, the start, as one node step (the local runtime). */
  startUnlessCommitted?(): Promise<StartUnlessCommittedResult>;
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
  /** The same steps merged on the agent (the local runtime; patch local-checkpoint-in-one-step). */
  readonly inOneStep?: OneStepCheckpoint;
}

/** Where the checkpoint runs, and the workload there. */
export interface PlacedCheckpoint extends OnNode {
  workload: CheckpointWorkload;
  /** True when placing it started the workload (its undo registered): the scheduler chose the node. */
  started: boolean;
}

/**
 * The request's node, or (kubernetes without one) the node the scheduler binds the Job's pod to:
 * the Job is created, its undo registered first, and the node steps follow the pod.
 */
export async function placeCheckpoint(
  spec: CheckpointSpec,
  { tracker, undo }: { tracker: ProgressTracker; undo: Compensations },
): Promise<PlacedCheckpoint> {
  if (spec.node !== undefined) {
    const onNode = { node: spec.node, agent: nodeActivities(spec.node, spec.agentTimeoutMs) };
    const workload =
      spec.runtime === 'kubernetes' ? kubernetesCheckpointWorkload(spec, onNode) : localCheckpointWorkload(spec, onNode.agent);
    return { ...onNode, workload, started: false };
  }
  if (spec.runtime !== 'kubernetes' || !patched(KUBERNETES_PLACEMENT)) {
    throw torporFailure('InvalidSpec', 'Invalid checkpoint request: node is required for the local runtime');
  }
  const workload = kubernetesCheckpointWorkload(spec, undefined);
  undo.add('stop and remove the workload', () => workload.remove());
  await tracker.step('starting-workload', () => workload.start());
  const onNode = await tracker.step('placing', () => workload.waitBound());
  return { ...onNode, workload, started: true };
}

/** `local`: a process the node agent starts on its own host. */
function localCheckpointWorkload(spec: CheckpointSpec, agent: NodeAgent): CheckpointWorkload {
  const { hash } = spec;
  return {
    start: () => agent.quick.startWorkload({ hash, workload: spec.workload }),
    startUnlessCommitted: () => agent.quick.startUnlessCommitted({ hash, workload: spec.workload }),
    async waitReady() {
      await agent.wait(spec.readyTimeoutMs).waitWorkloadReady({ hash, timeoutMs: spec.readyTimeoutMs });
      return { ...processSteps(spec, agent), inOneStep: oneStepCheckpoint(spec, agent) };
    },
    async waitExit() {
      const exit = await agent.wait(spec.exitTimeoutMs).waitWorkloadExit({ hash, timeoutMs: spec.exitTimeoutMs });
      if (!exit.exited) await agent.quick.stopWorkload({ hash });
      return exit.exited;
    },
    remove: () => agent.quick.cleanupWorkload({ hash }),
  };
}

/**
 * `kubernetes`: ChReK's checkpoint Job, created by the control worker, pinned to the request's node
 * (`pinned`), or else placed by the scheduler: `waitBound` learns its node.
 */
function kubernetesCheckpointWorkload(
  spec: CheckpointSpec,
  pinned: OnNode | undefined,
): CheckpointWorkload & { waitBound(): Promise<OnNode> } {
  const { hash } = spec;
  const section = spec.kubernetes;
  if (section === undefined) throw torporFailure('InvalidSpec', 'kubernetes is required for the kubernetes runtime');
  const cluster = clusterActivities(spec.agentTimeoutMs);
  let placed = pinned;
  const kubernetes = { ...section, node: pinned?.node, command: spec.workload.command, env: spec.workload.env };
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
    async waitBound() {
      const timeoutMs = spec.readyTimeoutMs;
      const pod = await cluster.wait(timeoutMs).waitForCheckpointPodBound({ hash, namespace, timeoutMs, jobUid });
      placed = { node: pod.nodeName, agent: nodeActivities(pod.nodeName, spec.agentTimeoutMs) };
      return placed;
    },
    async waitReady() {
      const timeoutMs = spec.readyTimeoutMs;
      const pod = await cluster.wait(timeoutMs).waitForCheckpointPod({ hash, namespace, timeoutMs, jobUid });
      if (placed === undefined || pod.nodeName !== placed.node) {
        const expected = placed ? `not on ${placed.node}` : 'before it was bound';
        throw torporFailure('TargetNotAllowed', `Checkpoint pod ${namespace}/${pod.podName} runs on ${pod.nodeName}, ${expected}`);
      }
      // Histories from before the patch dumped the pod's process as the local runtime does.
      return patched(KUBERNETES_CONTAINER_STEPS) ? containerSteps(spec, placed, pod) : processSteps(spec, placed.agent);
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
function containerSteps(spec: CheckpointSpec, { node, agent }: OnNode, pod: PodPlacement): ReadyWorkload {
  const { hash } = spec;
  const container = { id: pod.containerId, role: 'source' as const };
  return {
    gpu: patched(KUBERNETES_GPU_STEPS) ? { hash, container, nodeName: node } : null,
    dump: (dumpId) => agent.heavy.dumpContainer({ containerId: pod.containerId, hash, dumpId, nodeName: node, workload: spec.workload }),
    signal: () => agent.quick.signalCheckpointPod({ hash }),
  };
}
