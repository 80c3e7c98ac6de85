import { ApplicationFailure } from '@temporalio/common';

/**
 * Every way a Torpor step can fail, as a stable type name workflows and callers can reason about.
 * `retryable: false` where retrying the same input cannot help.
 */
export const Failures = {
  InvalidSpec: { retryable: false, hint: 'Fix the request and submit it again.' },
  TargetNotAllowed: { retryable: false, hint: 'The node agent refused the target; check the hash and the agent configuration.' },
  WorkloadStartFailed: { retryable: false, hint: 'Check that the command exists on the node and is executable.' },
  WorkloadExited: { retryable: false, hint: 'The workload exited on its own; its log tail is in the failure details.' },
  WorkloadNotReady: { retryable: false, hint: 'The workload did not become ready in time; raise the timeout or check its log.' },
  DumpFailed: { retryable: false, hint: 'CRIU could not dump the process; the CRIU log excerpt says why.' },
  CheckpointNotFound: { retryable: false, hint: 'No committed checkpoint exists for this hash on that node; create one first.' },
  CheckpointCorrupt: { retryable: false, hint: 'The checkpoint files do not match their manifest; delete it and checkpoint again.' },
  RestoreFailed: { retryable: false, hint: 'CRIU could not restore the checkpoint; the CRIU log excerpt says why.' },
  GpuCheckpointFailed: {
    retryable: false,
    hint: 'The CUDA driver could not lock or checkpoint the process; the workload was unlocked again. Check the driver error and the app (a kernel that never finishes makes the lock time out).',
  },
  GpuRestoreFailed: {
    retryable: false,
    hint: "The CUDA driver could not restore or unlock the process's GPU state; the driver error says why (GPU memory in use by others, a different GPU).",
  },
  GpuMismatch: {
    retryable: false,
    hint: 'Restore on a node with the GPU model and NVIDIA driver the checkpoint was taken on, or checkpoint again on this kind of node.',
  },
  Forbidden: {
    retryable: false,
    hint: 'Kubernetes RBAC refused the control worker; grant its ServiceAccount the Role in deploy/ (or check the namespace).',
  },
  PidBusy: { retryable: true, hint: 'Retried by Temporal: the PID frees once the exited process is reaped.' },
  RuntimeDisabled: {
    retryable: false,
    hint: 'The local runtime is off on this node agent (the default): start the agent with TORPOR_LOCAL_RUNTIME=on to let it run local workloads, as TORPOR_LOCAL_UID/TORPOR_LOCAL_GID (65534 by default, never root).',
  },
  ProcessWontExit: {
    retryable: true,
    hint: 'Retried by Temporal: the process did not exit after SIGKILL, most likely stuck in the kernel (D state); check the node (dmesg) if it persists.',
  },
  CheckpointConflict: {
    retryable: false,
    hint: 'A checkpoint of this hash is already running for another node, runtime or workload; wait for it to finish, or derive the hash from the spec.',
  },
  CheckpointInUse: {
    retryable: false,
    hint: 'A running restore uses this checkpoint; stop the restored process first (retention skips it and tries again on its next run).',
  },
  ScheduleNotFound: { retryable: false, hint: 'No refresh schedule has that name on that node; list them with `torpor schedule list`.' },
  SharedStoreMisconfigured: {
    retryable: false,
    hint: "Check the node agent's shared store configuration (TORPOR_S3_ENDPOINT, TORPOR_S3_BUCKET, its credentials): the bucket must exist and the credentials must be allowed to read and write it.",
  },
  SharedStoreBusy: {
    retryable: true,
    hint: "Retried by Temporal: a gc is sweeping this checkpoint's orphan objects in the shared store; it ends within minutes.",
  },
  NodeCacheFull: {
    retryable: false,
    hint: 'Raise TORPOR_NODE_CACHE_BYTES, stop restored copies that hold cached checkpoints, or delete checkpoints on this node that were never uploaded.',
  },
  AgentUnavailable: {
    retryable: false,
    hint: "No node agent polls that node's task queue; start it (npm run agent) or pick another node.",
  },
} as const satisfies Record<string, { retryable: boolean; hint: string }>;

export type FailureType = keyof typeof Failures;

export const NON_RETRYABLE_FAILURES: FailureType[] = (Object.keys(Failures) as FailureType[]).filter((type) => !Failures[type].retryable);

/** Builds the ApplicationFailure for `type`; the message ends with what to do about it. */
export function torporFailure(type: FailureType, message: string, details?: Record<string, unknown>): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message: `${message} (${Failures[type].hint})`,
    nonRetryable: !Failures[type].retryable,
    ...(details === undefined ? {} : { details: [details] }),
  });
}
