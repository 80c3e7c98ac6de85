import { ApplicationFailure } from '@temporalio/common';

/**
 * The GPU steps' failure types, shaped like contract/failures.ts's `Failures`, where they belong
 * (and where they would join NON_RETRYABLE_FAILURES); kept here until the contract adopts them.
 */
export const GpuFailures = {
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
} as const satisfies Record<string, { retryable: boolean; hint: string }>;

export type GpuFailureType = keyof typeof GpuFailures;

export function gpuFailure(type: GpuFailureType, message: string, details?: Record<string, unknown>): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message: `${message} (${GpuFailures[type].hint})`,
    nonRetryable: !GpuFailures[type].retryable,
    ...(details === undefined ? {} : { details: [details] }),
  });
}
