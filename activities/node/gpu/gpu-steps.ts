import { type CudaCheckpointDriver, CudaDriverError, type GpuProcessState, isNoCudaState } from './cuda-checkpoint-driver.js';

/**
 * The GPU halves of a checkpoint and a restore, written against the driver interface so that tests
 * drive them with a fake. Each step reads the process state first and does only what is left, so an
 * activity retried after a crash (or a compensation run twice) finishes the job instead of failing
 * on an "illegal state".
 */

export type GpuStepState = GpuProcessState | 'none';

export interface FreezeStep {
  before: GpuStepState;
  after: GpuStepState;
  lockMs: number;
  checkpointMs: number;
}

export interface ThawStep {
  before: GpuStepState;
  after: GpuStepState;
  restoreMs: number;
  unlockMs: number;
}

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

async function timed(action: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await action();
  return performance.now() - started;
}

/**
 * running → locked → checkpointed. Already checkpointed is success; a process without CUDA state is
 * left alone. If the checkpoint fails after this step locked the process, it unlocks it again before
 * reporting the failure: a frozen workload must never be left behind by a failed freeze.
 */
export async function freezeGpu(driver: CudaCheckpointDriver, pid: number, lockTimeoutMs: number): Promise<FreezeStep> {
  const before = await readGpuState(driver, pid);
  const step: FreezeStep = { before, after: before, lockMs: 0, checkpointMs: 0 };
  if (before === 'none' || before === 'checkpointed') return step;
  if (before === 'failed') throw new GpuStateError(pid, before, `The CUDA driver reports process ${pid} in the failed state`);
  if (before === 'running') step.lockMs = await timed(() => driver.lock(pid, lockTimeoutMs));
  try {
    step.checkpointMs = await timed(() => driver.checkpoint(pid));
  } catch (err) {
    if (before === 'running') await driver.unlock(pid).catch(() => undefined);
    throw err;
  }
  step.after = 'checkpointed';
  return step;
}

/**
 * checkpointed → locked → running. Running (or no CUDA state) is success, so it serves as the
 * compensation of a freeze at any point and as the last step of a restore.
 */
export async function thawGpu(driver: CudaCheckpointDriver, pid: number): Promise<ThawStep> {
  const before = await readGpuState(driver, pid);
  const step: ThawStep = { before, after: before, restoreMs: 0, unlockMs: 0 };
  if (before === 'none' || before === 'running') return step;
  if (before === 'failed') throw new GpuStateError(pid, before, `The CUDA driver reports process ${pid} in the failed state`);
  if (before === 'checkpointed') step.restoreMs = await timed(() => driver.restore(pid));
  step.unlockMs = await timed(() => driver.unlock(pid));
  step.after = 'running';
  return step;
}

/** One line for a person: the driver's error name and which call it came from. */
export function describeGpuError(err: unknown): string {
  if (err instanceof CudaDriverError || err instanceof GpuStateError) return err.message;
  return err instanceof Error ? err.message : String(err);
}
