import { type CudaCheckpointDriver, CudaDriverError, type GpuProcessState, isNoCudaState } from './cuda-checkpoint-driver.js';

/**
 * One process's CUDA state as the GPU steps see it (gpu-group.ts takes groups of processes through
 * freeze and thaw), and how their failures read.
 */

export type GpuStepState = GpuProcessState | 'none';

/** A state no step can move on from (the driver reports the process failed). */
export class GpuStateError extends Error {
  constructor(
    readonly pid: number,
    readonly state: GpuStepState,
    message: string,
  ) {
    super(message);
    this.name = 'GpuStateError';
  }
}

/** The process's state, or `none` when the driver says it has no CUDA state at all. */
export async function readGpuState(driver: CudaCheckpointDriver, pid: number): Promise<GpuStepState> {
  try {
    return await driver.getState(pid);
  } catch (err) {
    if (isNoCudaState(err)) return 'none';
    throw err;
  }
}

/** One line for a person: the driver's error name and which call it came from. */
export function describeGpuError(err: unknown): string {
  if (err instanceof CudaDriverError || err instanceof GpuStateError) return err.message;
  return err instanceof Error ? err.message : String(err);
}
