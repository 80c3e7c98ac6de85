/**
 * The CUDA driver's checkpoint API (driver 550+; `cuCheckpointProcess*`), as the node agent uses it.
 * https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__CHECKPOINT.html
 *
 * A process moves running → locked → checkpointed (GPU memory copied into its host memory, its
 * device handles released) and back checkpointed → locked → running. Every call names the process
 * by PID, so the agent drives a workload from outside it, as `cuda-checkpoint` does.
 */

import type { GpuPair, GpuProcessState } from '../../../contract/gpu-types.js';

export type { GpuPair, GpuProcessState };

/** What the agent calls; the real one goes through libcuda, tests pass an in-memory fake. */
export interface CudaCheckpointDriver {
  /** The process's checkpoint state; throws CudaDriverError when it holds no CUDA context. */
  getState(pid: number): Promise<GpuProcessState>;
  /** Blocks new CUDA calls of the process and waits for its work to finish, at most `timeoutMs` (0: forever). */
  lock(pid: number, timeoutMs: number): Promise<void>;
  /** Copies the locked process's GPU memory into its host memory and releases its GPUs. */
  checkpoint(pid: number): Promise<void>;
  /**
   * Re-acquires the GPUs and copies the memory back; the process stays locked. With `pairs`, what ran
   * on each old GPU goes onto its new one (every GPU the process checkpointed must be paired).
   */
  restore(pid: number, pairs?: GpuPair[]): Promise<void>;
  /** Lets the process's CUDA calls run again. */
  unlock(pid: number): Promise<void>;
  /** The thread the driver uses inside the process to restore it (CRIU's CUDA plugin needs it). */
  restoreThreadId(pid: number): Promise<number>;
}

/** A CUresult other than CUDA_SUCCESS, with the driver's own name for it. */
export class CudaDriverError extends Error {
  constructor(
    readonly call: string,
    readonly code: number,
    readonly errorName: string,
  ) {
    super(`${call} failed: ${errorName} (${code})`);
    this.name = 'CudaDriverError';
  }
}

/** CUprocessState values from cuda.h; later drivers may add transient ones, reported as failed-to-read. */
const STATES: Record<number, GpuProcessState> = { 0: 'running', 1: 'locked', 2: 'checkpointed', 3: 'failed' };

export function processStateName(value: number): GpuProcessState {
  const state = STATES[value];
  if (state === undefined) throw new CudaDriverError('cuCheckpointProcessGetState', -1, `unknown CUprocessState ${value}`);
  return state;
}

/**
 * Codes that mean "this PID has no CUDA state to checkpoint" rather than "the driver failed":
 * a CPU-only workload goes through the same workflow, and its GPU steps are no-ops. Driver 580 on
 * the H100 machine answers CUDA_ERROR_NOT_INITIALIZED for a process that never used CUDA.
 */
export const NO_CUDA_STATE_ERRORS = new Set(['CUDA_ERROR_NOT_FOUND', 'CUDA_ERROR_INVALID_VALUE', 'CUDA_ERROR_NOT_INITIALIZED']);

export function isNoCudaState(err: unknown): boolean {
  return err instanceof CudaDriverError && err.call === 'cuCheckpointProcessGetState' && NO_CUDA_STATE_ERRORS.has(err.errorName);
}
