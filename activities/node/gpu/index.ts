import { Context } from '@temporalio/activity';
import { torporFailure } from '../../../contract/failures.js';
import type {
  GpuCheckpointRecord,
  GpuFreezeInput,
  GpuFreezeResult,
  GpuNodeInfo,
  GpuRestoreCheckInput,
  GpuStateResult,
  GpuTarget,
  GpuThawResult,
} from '../../../contract/gpu-types.js';
import type { NodeAgentConfig } from '../agent-config.js';
import { heartbeating } from '../heartbeat.js';
import type { StoreLayout } from '../store/layout.js';
import { readRecord, writeRecord } from '../store/run-records.js';
import type { CudaCheckpointDriver } from './cuda-checkpoint-driver.js';
import { checkpointRecord, gpuMismatch, queryGpus, queryProcessGpuMemory } from './gpu-info.js';
import { describeGpuError, freezeGpu, readGpuState, thawGpu } from './gpu-steps.js';
import { resolveGpuTarget } from './gpu-targets.js';
import { loadLibcudaDriver } from './libcuda-driver.js';

export interface GpuActivityDeps {
  /** Called once, at the first GPU step; null means this node has no CUDA driver. */
  loadDriver: () => CudaCheckpointDriver | null;
  queryGpus: () => Promise<GpuNodeInfo>;
  queryProcessGpuMemory: (pid: number) => Promise<number>;
}

const realDeps: GpuActivityDeps = { loadDriver: () => loadLibcudaDriver(), queryGpus, queryProcessGpuMemory };

/** A driver call failed: the failure names the driver's error and the state the process was left in. */
async function driverFailure(
  type: 'GpuCheckpointFailed' | 'GpuRestoreFailed',
  what: string,
  driver: CudaCheckpointDriver,
  pid: number,
  err: unknown,
) {
  const stateAfterFailure = await readGpuState(driver, pid).catch(() => 'unknown');
  return torporFailure(type, `${what} (pid ${pid}): ${describeGpuError(err)}`, { pid, stateAfterFailure });
}

/** The GPU steps on this node's processes, with the CUDA driver loaded on first use. */
class GpuSteps {
  private driver: CudaCheckpointDriver | null | undefined;

  constructor(
    private readonly config: NodeAgentConfig,
    private readonly layout: StoreLayout,
    private readonly deps: GpuActivityDeps,
  ) {}

  private cuda(): CudaCheckpointDriver | null {
    this.driver ??= this.deps.loadDriver();
    return this.driver;
  }

  private recordFile({ hash, restoreId }: GpuTarget): string {
    return restoreId === undefined ? this.layout.workloadGpuRecord(hash) : this.layout.restoreFiles(hash, restoreId).gpuRecord;
  }

  /** Read before the lock and kept on disk: once checkpointed, the process holds no GPU memory to measure. */
  private async gpuRecord(target: GpuTarget, pid: number): Promise<GpuCheckpointRecord> {
    const kept = await readRecord<GpuCheckpointRecord>(this.recordFile(target));
    if (kept) return kept;
    const record = checkpointRecord(await this.deps.queryGpus(), await this.deps.queryProcessGpuMemory(pid));
    await writeRecord(this.recordFile(target), record);
    return record;
  }

  /** Locks and checkpoints the workload's CUDA state (running → checkpointed); already checkpointed is success. */
  async freeze(input: GpuFreezeInput): Promise<GpuFreezeResult> {
    const { id, running } = await resolveGpuTarget(this.layout, input);
    if (!running) throw torporFailure('WorkloadExited', `Workload ${input.hash} (pid ${id.pid}) exited before its GPU state was frozen`);
    const driver = this.cuda();
    if (driver === null) return { pid: id.pid, before: 'none', after: 'none', lockMs: 0, checkpointMs: 0, gpu: null };
    const state = await readGpuState(driver, id.pid);
    if (state === 'none') return { pid: id.pid, before: 'none', after: 'none', lockMs: 0, checkpointMs: 0, gpu: null };
    const gpu = await this.gpuRecord(input, id.pid);
    try {
      const step = await heartbeating('gpu-freeze', freezeGpu(driver, id.pid, input.lockTimeoutMs));
      Context.current().log.info('GPU state frozen', { hash: input.hash, pid: id.pid, ...step, gpuMemoryBytes: gpu.processMemoryBytes });
      return { pid: id.pid, ...step, gpu };
    } catch (err) {
      throw await driverFailure('GpuCheckpointFailed', `Cannot freeze the GPU state of ${input.hash}`, driver, id.pid, err);
    }
  }

  /** Restores and unlocks the process's CUDA state (checkpointed → running); running, no CUDA state or gone is success. */
  async thaw(input: GpuTarget): Promise<GpuThawResult> {
    const { id, running } = await resolveGpuTarget(this.layout, input);
    if (!running) return { pid: id.pid, before: 'gone', after: 'gone', restoreMs: 0, unlockMs: 0 };
    const driver = this.cuda();
    if (driver === null) return { pid: id.pid, before: 'none', after: 'none', restoreMs: 0, unlockMs: 0 };
    try {
      const step = await heartbeating('gpu-thaw', thawGpu(driver, id.pid));
      Context.current().log.info('GPU state thawed', { hash: input.hash, pid: id.pid, ...step });
      return { pid: id.pid, ...step };
    } catch (err) {
      throw await driverFailure('GpuRestoreFailed', `Cannot restore the GPU state of ${input.hash}`, driver, id.pid, err);
    }
  }

  async state(input: GpuTarget): Promise<GpuStateResult> {
    const { id, running } = await resolveGpuTarget(this.layout, input);
    if (!running) return { pid: id.pid, state: 'gone' };
    const driver = this.cuda();
    return { pid: id.pid, state: driver === null ? 'none' : await readGpuState(driver, id.pid) };
  }

  /** Refuses, before any CRIU work, a restore whose checkpoint was taken on other GPUs or another driver. */
  async checkRestore({ recorded }: GpuRestoreCheckInput): Promise<void> {
    if (recorded === null) return;
    const problem = gpuMismatch(recorded, await this.deps.queryGpus());
    if (problem !== null) throw torporFailure('GpuMismatch', `Cannot restore on node ${this.config.nodeName}: ${problem}`, { recorded });
  }
}

/**
 * The node agent's GPU activities: freeze a workload's CUDA state before its CRIU dump, thaw it after
 * a CRIU restore (and as the compensation of a freeze), report state and the node's GPUs, and refuse
 * a restore on GPUs unlike the checkpoint's. Targets come from the agent's own records.
 */
export function gpuActivities(config: NodeAgentConfig, layout: StoreLayout, deps: GpuActivityDeps = realDeps) {
  const gpu = new GpuSteps(config, layout, deps);
  return {
    gpuFreeze: (input: GpuFreezeInput) => gpu.freeze(input),
    gpuThaw: (input: GpuTarget) => gpu.thaw(input),
    gpuState: (input: GpuTarget) => gpu.state(input),
    /** This node's GPUs and driver, for the manifest and for choosing a node to restore on. */
    gpuInfo: (): Promise<GpuNodeInfo> => deps.queryGpus(),
    gpuCheckRestore: (input: GpuRestoreCheckInput) => gpu.checkRestore(input),
  };
}

export type GpuActivities = ReturnType<typeof gpuActivities>;
