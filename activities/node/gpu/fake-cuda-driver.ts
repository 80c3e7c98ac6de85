import { type CudaCheckpointDriver, CudaDriverError, type GpuPair, type GpuProcessState } from './cuda-checkpoint-driver.js';

type Call = 'getState' | 'lock' | 'checkpoint' | 'restore' | 'unlock' | 'restoreThreadId';

/**
 * An in-memory stand-in for the CUDA driver's checkpoint API, for tests and the benchmark's CPU dry
 * run. It enforces the driver's transitions (an illegal one fails as CUDA_ERROR_ILLEGAL_STATE), knows
 * only the PIDs it was told about, records every call and fails a named call on demand.
 */
export class FakeCudaDriver implements CudaCheckpointDriver {
  readonly calls: Array<{ call: Call; pid: number }> = [];
  /** The UUID pairs each restore got, by PID (the last one). */
  readonly pairs = new Map<number, GpuPair[]>();
  private readonly states = new Map<number, GpuProcessState>();
  private readonly failures = new Map<Call, string>();
  private readonly failingPids = new Map<Call, Set<number>>();

  /** Makes `pid` a CUDA process in `state` (default running). */
  track(pid: number, state: GpuProcessState = 'running'): this {
    this.states.set(pid, state);
    return this;
  }

  /** The next call of `call` fails with the driver error `errorName`. */
  failNext(call: Call, errorName = 'CUDA_ERROR_UNKNOWN'): this {
    this.failures.set(call, errorName);
    return this;
  }

  /** Every call of `call` for `pid` fails with `errorName` (one member of a group failing). */
  failFor(call: Call, pid: number): this {
    const pids = this.failingPids.get(call) ?? new Set<number>();
    this.failingPids.set(call, pids.add(pid));
    return this;
  }

  /** Every PID it knows as a CUDA process. */
  tracked(): number[] {
    return [...this.states.keys()];
  }

  stateOf(pid: number): GpuProcessState | undefined {
    return this.states.get(pid);
  }

  async getState(pid: number): Promise<GpuProcessState> {
    return this.current('getState', pid);
  }
  async lock(pid: number): Promise<void> {
    this.move('lock', pid, 'running', 'locked');
  }
  async checkpoint(pid: number): Promise<void> {
    this.move('checkpoint', pid, 'locked', 'checkpointed');
  }
  async restore(pid: number, pairs?: GpuPair[]): Promise<void> {
    this.move('restore', pid, 'checkpointed', 'locked');
    if (pairs !== undefined) this.pairs.set(pid, pairs);
  }
  async unlock(pid: number): Promise<void> {
    this.move('unlock', pid, 'locked', 'running');
  }
  async restoreThreadId(pid: number): Promise<number> {
    this.current('restoreThreadId', pid);
    return pid + 1;
  }

  private current(call: Call, pid: number): GpuProcessState {
    this.calls.push({ call, pid });
    const injected = this.failures.get(call);
    if (injected !== undefined) {
      this.failures.delete(call);
      throw new CudaDriverError(`cuCheckpointProcess(${call})`, 999, injected);
    }
    if (this.failingPids.get(call)?.has(pid)) throw new CudaDriverError(`cuCheckpointProcess(${call})`, 2, 'CUDA_ERROR_OUT_OF_MEMORY');
    const state = this.states.get(pid);
    if (state === undefined) throw new CudaDriverError('cuCheckpointProcessGetState', 500, 'CUDA_ERROR_NOT_FOUND');
    return state;
  }

  private move(call: Call, pid: number, from: GpuProcessState, to: GpuProcessState): void {
    if (this.current(call, pid) !== from) throw new CudaDriverError(`cuCheckpointProcess(${call})`, 401, 'CUDA_ERROR_ILLEGAL_STATE');
    this.states.set(pid, to);
  }
}
