import { readFile } from 'node:fs/promises';
import { readProcStat } from '../proc/identity.js';
import type { CudaCheckpointDriver, GpuPair } from './cuda-checkpoint-driver.js';
import { GpuStateError, type GpuStepState, readGpuState } from './gpu-steps.js';

/**
 * The GPU halves of a checkpoint and a restore for a group of processes (a container's tree, a
 * launcher with its ranks): every process the driver knows is a member, the others are left alone.
 * All are locked before any is checkpointed, so no member's CUDA work sees another frozen halfway;
 * all are restored before any is unlocked. Each step reads the states first and does only what is
 * left, so a retried activity or a compensation run twice finishes the job.
 */

export interface GroupMember {
  pid: number;
  before: GpuStepState;
}

export interface GroupFreeze {
  members: GroupMember[];
  lockMs: number;
  checkpointMs: number;
}

export interface GroupThaw {
  members: GroupMember[];
  restoreMs: number;
  unlockMs: number;
}

/** A driver call failed for one member; the group was taken back to running first where it could be. */
export class GroupMemberError extends Error {
  constructor(
    readonly pid: number,
    readonly step: 'state' | 'lock' | 'checkpoint' | 'restore' | 'unlock',
    readonly failure: unknown,
  ) {
    super(`${step} of process ${pid}: ${failure instanceof Error ? failure.message : String(failure)}`);
    this.name = 'GroupMemberError';
  }
}

/**
 * Whether a process could hold CUDA state: it is still there, not a zombie, and has the driver
 * library mapped. False where /proc cannot say (the process is gone).
 */
async function mayHoldCuda(pid: number): Promise<boolean> {
  const stat = await readProcStat(pid);
  if (stat === null || stat.state === 'Z' || stat.state === 'X') return false;
  return (await readFile(`/proc/${pid}/maps`, 'utf8').catch(() => '')).includes('libcuda.so');
}

/**
 * The state of one process of the tree. The driver answers some processes with an error other than
 * "no CUDA state" (seen on the GPU machine: CUDA_ERROR_OPERATING_SYSTEM for a process of a
 * placeholder's entrypoint): a process that has exited since the tree was listed, or that never
 * loaded the driver's library, holds no CUDA state; for any other the error stands, naming the PID.
 */
async function memberState(driver: CudaCheckpointDriver, pid: number): Promise<GpuStepState> {
  try {
    return await readGpuState(driver, pid);
  } catch (err) {
    if (!(await mayHoldCuda(pid))) return 'none';
    throw new GroupMemberError(pid, 'state', err);
  }
}

/** The processes of `pids` that hold CUDA state, with their state; a failed one is refused. */
export async function cudaMembers(driver: CudaCheckpointDriver, pids: number[]): Promise<GroupMember[]> {
  const members: GroupMember[] = [];
  for (const pid of pids) {
    const before = await memberState(driver, pid);
    if (before === 'failed') throw new GpuStateError(pid, before, `The CUDA driver reports process ${pid} in the failed state`);
    if (before !== 'none') members.push({ pid, before });
  }
  return members;
}

async function eachMember(
  members: GroupMember[],
  step: GroupMemberError['step'],
  wanted: (m: GroupMember) => boolean,
  call: (pid: number) => Promise<void>,
): Promise<number> {
  const due = members.filter(wanted);
  // A step with nothing left to do took no time (a retried freeze, a thaw of a running group).
  if (due.length === 0) return 0;
  const started = performance.now();
  for (const member of due) {
    try {
      await call(member.pid);
    } catch (err) {
      throw new GroupMemberError(member.pid, step, err);
    }
  }
  return performance.now() - started;
}

/**
 * running → locked (all) → checkpointed (all). A member that fails takes the whole group back:
 * the checkpointed are restored and the locked unlocked, before the failure naming it is thrown.
 */
export async function freezeGroup(driver: CudaCheckpointDriver, pids: number[], lockTimeoutMs: number): Promise<GroupFreeze> {
  const members = await cudaMembers(driver, pids);
  try {
    const lockMs = await eachMember(
      members,
      'lock',
      (m) => m.before === 'running',
      (pid) => driver.lock(pid, lockTimeoutMs),
    );
    const checkpointMs = await eachMember(
      members,
      'checkpoint',
      (m) => m.before !== 'checkpointed',
      (pid) => driver.checkpoint(pid),
    );
    return { members, lockMs, checkpointMs };
  } catch (err) {
    await thawGroup(
      driver,
      members.map((m) => m.pid),
    ).catch(() => undefined);
    throw err;
  }
}

/** checkpointed → locked (all, onto the paired GPUs) → running (all). Running or no CUDA state is success. */
export async function thawGroup(driver: CudaCheckpointDriver, pids: number[], pairs: GpuPair[] = []): Promise<GroupThaw> {
  const members = await cudaMembers(driver, pids);
  const restore = (pid: number) => (pairs.length > 0 ? driver.restore(pid, pairs) : driver.restore(pid));
  const restoreMs = await eachMember(members, 'restore', (m) => m.before === 'checkpointed', restore);
  const unlockMs = await eachMember(
    members,
    'unlock',
    (m) => m.before === 'checkpointed' || m.before === 'locked',
    (pid) => driver.unlock(pid),
  );
  return { members, restoreMs, unlockMs };
}
