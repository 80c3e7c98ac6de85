import { Context } from '@temporalio/activity';
import { torporFailure } from '../../../contract/failures.js';
import type {
  GpuCheckpointRecord,
  GpuFreezeInput,
  GpuFreezeResult,
  GpuNodeInfo,
  GpuPair,
  GpuRestoreCheckInput,
  GpuStateResult,
  GpuTarget,
  GpuThawInput,
  GpuThawResult,
} from '../../../contract/gpu-types.js';
import type { NodeAgentConfig } from '../agent-config.js';
import { provideGpuNodes } from '../container/gpu-device-nodes.js';
import { containerAgentConfig } from '../container/node-config.js';
import { heartbeating } from '../heartbeat.js';
import type { StoreLayout } from '../store/layout.js';
import { readRecord, writeRecord } from '../store/run-records.js';
import type { CudaCheckpointDriver } from './cuda-checkpoint-driver.js';
import { cudaMembers, freezeGroup, type GroupMember, GroupMemberError, thawGroup } from './gpu-group.js';
import { type ComputeApp, groupGpus, groupRecord, queryComputeApps, queryGpus } from './gpu-info.js';
import { remapping } from './gpu-pairing.js';
import { type RestoreTargetGpus, restorePairs, targetOf } from './gpu-restore-target.js';
import { selectGpus } from './gpu-selection.js';
import { describeGpuError, readGpuState } from './gpu-steps.js';
import { type GpuGroup, resolveGpuGroup } from './gpu-targets.js';
import { loadLibcudaDriver } from './libcuda-driver.js';

export interface GpuActivityDeps {
  /** Called once, at the first GPU step; null means this node has no CUDA driver. */
  loadDriver: () => CudaCheckpointDriver | null;
  queryGpus: () => Promise<GpuNodeInfo>;
  /** nvidia-smi's compute apps: which process holds how much memory on which GPU. */
  queryComputeApps: () => Promise<ComputeApp[]>;
}

const realDeps: GpuActivityDeps = { loadDriver: () => loadLibcudaDriver(), queryGpus, queryComputeApps };

/** A driver call failed: the failure names the process, the driver's error and the state the process was left in. */
async function driverFailure(type: 'GpuCheckpointFailed' | 'GpuRestoreFailed', what: string, driver: CudaCheckpointDriver, err: unknown) {
  const pid = err instanceof GroupMemberError ? err.pid : ((err as { pid?: number }).pid ?? 0);
  const cause = err instanceof GroupMemberError ? `${err.step} failed: ${describeGpuError(err.failure)}` : describeGpuError(err);
  const stateAfterFailure = await readGpuState(driver, pid).catch(() => 'unknown');
  return torporFailure(type, `${what} (pid ${pid}): ${cause}`, { pid, stateAfterFailure });
}

const noneFrozen = (pid: number): GpuFreezeResult => ({
  pid,
  pids: [],
  before: 'none',
  after: 'none',
  lockMs: 0,
  checkpointMs: 0,
  gpu: null,
});
const noneThawed = (pid: number, state: 'none' | 'gone'): GpuThawResult => ({
  pid,
  pids: [],
  before: state,
  after: state,
  restoreMs: 0,
  unlockMs: 0,
  pairs: [],
});

/** The GPU steps on this node's process groups, with the CUDA driver loaded on first use. */
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

  private group(target: GpuTarget): Promise<GpuGroup> {
    return resolveGpuGroup(this.layout, containerAgentConfig(this.config), target);
  }

  private recordFile({ hash, restoreId, container }: GpuTarget): string {
    return restoreId === undefined || container ? this.layout.workloadGpuRecord(hash) : this.layout.restoreFiles(hash, restoreId).gpuRecord;
  }

  /**
   * Read before the lock and kept on disk: once checkpointed, the processes hold no GPU memory to
   * measure. A kept record of other processes (an earlier run of the hash) is not reused.
   */
  private async gpuRecord(target: GpuTarget, group: GpuGroup, pids: number[]): Promise<GpuCheckpointRecord> {
    const kept = await readRecord<GpuCheckpointRecord>(this.recordFile(target));
    if (kept && (kept.processes === undefined || kept.processes.map((p) => p.pid).join() === pids.join())) return kept;
    const info = await this.deps.queryGpus();
    const apps = await this.deps.queryComputeApps();
    const visible = selectGpus(info, group.devices);
    const gpus = groupGpus(info, 'problem' in visible ? [] : visible, apps, pids);
    const record = groupRecord(info.driverVersion, gpus, apps, pids);
    await writeRecord(this.recordFile(target), record);
    return record;
  }

  /** Locks all, then checkpoints all CUDA processes of the target (running → checkpointed); already checkpointed is success. */
  async freeze(input: GpuFreezeInput): Promise<GpuFreezeResult> {
    // Only a checkpoint source is frozen: a placeholder holds a restored tree the agent only thaws.
    if (input.container?.role === 'placeholder') throw torporFailure('TargetNotAllowed', 'A placeholder container is never frozen');
    const group = await this.group(input);
    if (!group.running)
      throw torporFailure('WorkloadExited', `Workload ${input.hash} (pid ${group.rootPid}) exited before its GPU state was frozen`);
    const driver = this.cuda();
    if (driver === null) return noneFrozen(group.rootPid);
    const what = `Cannot freeze the GPU state of ${group.what}`;
    let members: GroupMember[];
    try {
      members = await cudaMembers(driver, group.pids);
    } catch (err) {
      throw await driverFailure('GpuCheckpointFailed', what, driver, err);
    }
    const first = members[0];
    if (first === undefined) return noneFrozen(group.rootPid);
    const pids = members.map((m) => m.pid);
    const gpu = await this.gpuRecord(input, group, pids);
    try {
      const step = await heartbeating('gpu-freeze', freezeGroup(driver, pids, input.lockTimeoutMs));
      Context.current().log.info('GPU state frozen', { hash: input.hash, pids, lockMs: step.lockMs, checkpointMs: step.checkpointMs });
      return {
        pid: first.pid,
        pids,
        before: first.before,
        after: 'checkpointed',
        lockMs: step.lockMs,
        checkpointMs: step.checkpointMs,
        gpu,
      };
    } catch (err) {
      throw await driverFailure('GpuCheckpointFailed', what, driver, err);
    }
  }

  /** Restores all, then unlocks all CUDA processes of the target, onto its own GPUs; running, no CUDA state or gone is success. */
  async thaw(input: GpuThawInput): Promise<GpuThawResult> {
    const group = await this.group(input);
    if (!group.running) return noneThawed(group.rootPid, 'gone');
    const driver = this.cuda();
    if (driver === null) return noneThawed(group.rootPid, 'none');
    const pairs = input.recorded ? remapping(await this.pairsFor(input.recorded, targetOf(input, group.devices))) : [];
    if (input.container?.role === 'placeholder') await provideGpuNodes(group.pids, group.gpuNodes ?? []);
    try {
      const step = await heartbeating('gpu-thaw', thawGroup(driver, group.pids, pairs));
      const first = step.members[0];
      if (first === undefined) return noneThawed(group.rootPid, 'none');
      const pids = step.members.map((m) => m.pid);
      Context.current().log.info('GPU state thawed', { hash: input.hash, pids, pairs, restoreMs: step.restoreMs, unlockMs: step.unlockMs });
      return { pid: first.pid, pids, before: first.before, after: 'running', restoreMs: step.restoreMs, unlockMs: step.unlockMs, pairs };
    } catch (err) {
      throw await driverFailure('GpuRestoreFailed', `Cannot restore the GPU state of ${group.what}`, driver, err);
    }
  }

  async state(input: GpuTarget): Promise<GpuStateResult> {
    const group = await this.group(input);
    if (!group.running) return { pid: group.rootPid, state: 'gone' };
    const driver = this.cuda();
    if (driver === null) return { pid: group.rootPid, state: 'none' };
    const first = (await cudaMembers(driver, group.pids))[0];
    return first ? { pid: first.pid, state: first.before } : { pid: group.rootPid, state: 'none' };
  }

  /** Refuses, before any CRIU work, a restore onto GPUs of another model or driver, or too few of them. */
  async checkRestore(input: GpuRestoreCheckInput): Promise<void> {
    if (input.recorded === null) return;
    if (input.placeholderContainerId === undefined) {
      await this.pairsFor(input.recorded, targetOf(input, 'all'));
      return;
    }
    const container = { id: input.placeholderContainerId, role: 'placeholder' as const };
    const group = await this.group({ hash: input.hash ?? '', container, ...(input.nodeName ? { nodeName: input.nodeName } : {}) });
    await this.pairsFor(input.recorded, { devices: group.devices, requested: false, what: group.what });
  }

  private async pairsFor(recorded: GpuCheckpointRecord, target: RestoreTargetGpus): Promise<GpuPair[]> {
    return restorePairs(recorded, target, await this.deps.queryGpus(), this.config.nodeName);
  }
}

/**
 * The node agent's GPU activities: freeze a target's CUDA process group before its CRIU dump, thaw
 * it after a CRIU restore (onto the target's GPUs, UUIDs paired) and as the compensation of a
 * freeze, report state and the node's GPUs, and refuse a restore on GPUs unlike the checkpoint's.
 * Targets come from the agent's own records and runc, never from a PID in the input.
 */
export function gpuActivities(config: NodeAgentConfig, layout: StoreLayout, deps: GpuActivityDeps = realDeps) {
  const gpu = new GpuSteps(config, layout, deps);
  return {
    gpuFreeze: (input: GpuFreezeInput) => gpu.freeze(input),
    gpuThaw: (input: GpuThawInput) => gpu.thaw(input),
    gpuState: (input: GpuTarget) => gpu.state(input),
    /** This node's GPUs and driver, for the manifest and for choosing a node to restore on. */
    gpuInfo: (): Promise<GpuNodeInfo> => deps.queryGpus(),
    gpuCheckRestore: (input: GpuRestoreCheckInput) => gpu.checkRestore(input),
  };
}

export type GpuActivities = ReturnType<typeof gpuActivities>;
