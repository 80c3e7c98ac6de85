import { ActivityCancellationType, type ActivityOptions, proxyActivities } from '@temporalio/workflow';
import type { ClusterActivities } from '../activities/cluster/index.js';
import type { NodeActivities } from '../activities/node/index.js';
import { NON_RETRYABLE_FAILURES } from '../contract/failures.js';
import { CONTROL_TASK_QUEUE, nodeTaskQueue } from '../contract/naming.js';

/**
 * Timeouts and retry policies of every activity group, in one place.
 * - quick: bookkeeping on the node (look-ups, signals, stops); short, freely retried.
 * - heavy: CRIU dump/restore and hashing of images; long, heartbeating bytes every second.
 * - wait: waiting for the workload, as long as the caller's timeout; heartbeating.
 * A dead agent is noticed by the heartbeat timeout (seconds); a missing agent by the
 * schedule-to-start timeout (the request's agentTimeoutMs), which becomes AgentUnavailable.
 * Every group waits for a cancelled activity to finish before the workflow goes on, so a
 * compensation never runs while the step it undoes is still running.
 */
/**
 * Every node-agent step heartbeats once a second for its whole run, whatever it is doing
 * (activities/node/heartbeat.ts, stepHeartbeat), and every cluster wait once a second whether the
 * pod watch speaks or not (activities/cluster/pod-watch.ts): 5 and 30 missed beats in a row mean a
 * dead worker, never a slow step. A duplicate attempt on the agent waits for the first
 * (activities/node/step-lock.ts).
 */
export const HEARTBEAT_TIMEOUT_MS = 5_000;
export const CLUSTER_WAIT_HEARTBEAT_TIMEOUT_MS = 30_000;
/**
 * The patch (Temporal workflow versioning) under which the kubernetes runtime dumps and restores
 * the pod's container instead of calling the process steps; histories from before replay unchanged.
 */
export const KUBERNETES_CONTAINER_STEPS = 'kubernetes-container-steps';
/**
 * The patch under which the kubernetes runtime freezes and thaws the GPU state of the pod's
 * container, and checks and restores it against the placeholder's GPUs; histories from before
 * recorded no GPU steps for a pod (and checked the node's GPUs before creating the placeholder).
 */
export const KUBERNETES_GPU_STEPS = 'kubernetes-gpu-steps';
/**
 * The patch under which a request with `sharedStore` uploads the committed checkpoint (checkpoint)
 * or fetches it into the node cache first (restore); histories from before had neither step.
 */
export const SHARED_STORE = 'shared-store';
/**
 * The patch under which the kubernetes runtime runs without a node: the checkpoint Job's pod and the
 * restore placeholder are placed by the scheduler and the node steps follow them. Requests from
 * before always named the node, so their histories never reach the code behind it.
 */
export const KUBERNETES_PLACEMENT = 'kubernetes-placement';
export const QUICK_START_TO_CLOSE_MS = 15_000;
/**
 * A heavy step's budget includes its wait in the agent's heavy-step queue (TORPOR_HEAVY_STEPS at
 * once per agent, activities/node/heavy-steps.ts): a queued step heartbeats "queued" meanwhile, and
 * no schedule-to-close is set, so only this bound counts. Two hours hold a 50 GB restore (about
 * 40 s) behind a queue of a hundred on one node.
 */
export const HEAVY_START_TO_CLOSE_MS = 2 * 60 * 60 * 1000;
const retry = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '10 seconds',
  nonRetryableErrorTypes: NON_RETRYABLE_FAILURES,
};

/** What the Temporal UI shows for each step, so an execution's history reads as a story. */
const SUMMARIES: Record<keyof NodeActivities | keyof ClusterActivities, string> = {
  createCheckpointJob: 'Create the checkpoint Job',
  waitForCheckpointPod: "Wait for the Job's pod to be Ready",
  waitForCheckpointPodBound: "Wait until the scheduler binds the Job's pod to a node",
  waitForCheckpointPodExit: "Wait for the Job's pod to exit",
  deleteCheckpointJob: 'Delete the checkpoint Job',
  createRestorePod: 'Create the restore placeholder pod',
  waitForRestorePod: 'Wait for the placeholder pod',
  deleteRestorePod: 'Delete the restore placeholder pod',
  describeSharedCheckpoint: "Read the checkpoint's GPU model from the shared store (placement)",
  findSharedCheckpoint: 'Look for the checkpoint in the shared store before creating a Job',
  findCheckpoint: 'Look for a committed checkpoint',
  startWorkload: 'Start the workload',
  startUnlessCommitted: 'Look for a committed checkpoint; without one, start the workload',
  waitWorkloadReady: 'Wait for the ready file',
  dumpWorkload: 'CRIU dump',
  commitCheckpoint: 'Commit: sha256, manifest, rename, marker',
  discardDump: 'Discard the temporary dump',
  signalWorkload: 'Write the signal file',
  waitWorkloadExit: 'Wait for the workload to exit',
  stopWorkload: 'Stop the workload',
  cleanupWorkload: 'Remove run files',
  verifyCheckpoint: 'Verify marker and checksums',
  restoreCheckpoint: 'CRIU restore',
  waitRestoredReady: 'Wait for the restored app to be ready',
  stopRestored: 'Stop the restored process',
  gpuFreeze: 'Lock all, then checkpoint all CUDA processes (GPU state)',
  gpuThaw: 'Restore all (GPU UUIDs paired), then unlock all CUDA processes',
  gpuState: 'Read the GPU checkpoint state',
  gpuInfo: "Read the node's GPUs",
  gpuCheckRestore: "Check the target's GPUs (model, driver, count) against the checkpoint",
  deriveSpecHash: 'Derive the spec hash (files, env, GPU, CRIU)',
  listCommitted: 'List committed checkpoints',
  describeCheckpoint: 'Read a checkpoint and its users',
  removeCheckpoint: 'Delete a checkpoint (rename out of place, then remove)',
  collectGarbage: 'Remove stale dumps, run files and trash',
  dumpContainer: 'Dump the container (runc checkpoint) and commit it',
  restoreIntoPlaceholder: "Restore into the placeholder container's namespaces",
  signalCheckpointPod: 'Write the signal file the checkpoint pod waits for',
  uploadCheckpoint: 'Upload to the shared store (chunks, then the manifest)',
  fetchCheckpoint: 'Fetch from the shared store into the node cache (every chunk verified)',
  checkpointProcess: 'GPU freeze (none without CUDA), CRIU dump, then commit (the app signalled beside it)',
  finishWorkload: 'Wait for the workload to exit (stop it if not), then remove its run files',
};

type Group<A> = { [K in keyof A]: A[K] extends (input: infer I) => infer R ? (input: I) => R : never };

function group<A extends NodeActivities | ClusterActivities>(
  taskQueue: string,
  agentTimeoutMs: number,
  options: Omit<ActivityOptions, 'taskQueue' | 'scheduleToStartTimeout'>,
): Group<A> {
  const proxies = proxyActivities<A>({
    taskQueue,
    scheduleToStartTimeout: agentTimeoutMs,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    ...options,
  });
  return new Proxy({} as Group<A>, {
    get(_, name: keyof NodeActivities & keyof A) {
      return (input?: { hash?: string }) =>
        (proxies[name] as unknown as { executeWithOptions: (o: ActivityOptions, a: unknown[]) => Promise<unknown> }).executeWithOptions(
          { summary: input?.hash ? `${SUMMARIES[name]} · ${input.hash}` : SUMMARIES[name] },
          input === undefined ? [] : [input],
        );
    },
  });
}

export function nodeActivities(node: string, agentTimeoutMs: number) {
  const queue = nodeTaskQueue(node);
  return {
    quick: group<NodeActivities>(queue, agentTimeoutMs, {
      startToCloseTimeout: QUICK_START_TO_CLOSE_MS,
      retry: { ...retry, maximumAttempts: 5 },
    }),
    heavy: group<NodeActivities>(queue, agentTimeoutMs, {
      startToCloseTimeout: HEAVY_START_TO_CLOSE_MS,
      heartbeatTimeout: HEARTBEAT_TIMEOUT_MS,
      retry: { ...retry, maximumAttempts: 5 },
    }),
    /** Waits are bounded by the workload's own timeout; the activity reports that timeout as a typed failure first. */
    wait: (timeoutMs: number) =>
      group<NodeActivities>(queue, agentTimeoutMs, {
        startToCloseTimeout: timeoutMs + 60_000,
        heartbeatTimeout: HEARTBEAT_TIMEOUT_MS,
        retry: { ...retry, maximumAttempts: 5 },
      }),
  };
}

/** The control worker's Kubernetes activities: API calls (quick) and pod waits (bounded by the request's timeout). */
export function clusterActivities(agentTimeoutMs: number) {
  return {
    quick: group<ClusterActivities>(CONTROL_TASK_QUEUE, agentTimeoutMs, {
      startToCloseTimeout: '1 minute',
      retry: { ...retry, maximumAttempts: 5 },
    }),
    wait: (timeoutMs: number) =>
      group<ClusterActivities>(CONTROL_TASK_QUEUE, agentTimeoutMs, {
        startToCloseTimeout: timeoutMs + 60_000,
        heartbeatTimeout: CLUSTER_WAIT_HEARTBEAT_TIMEOUT_MS,
        retry: { ...retry, maximumAttempts: 5 },
      }),
  };
}
