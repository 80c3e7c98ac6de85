/** Inputs and outputs of the node agent's GPU activities (CUDA checkpoint API). */

/** The CUDA driver's CUprocessState values. */
export type GpuProcessState = 'running' | 'locked' | 'checkpointed' | 'failed';

/** Names the process by the agent's own records: the checkpoint workload, or a restored copy. */
export interface GpuTarget {
  hash: string;
  /** Absent: the checkpoint workload of `hash`; present: the process that restore brought back. */
  restoreId?: string;
}

export interface GpuFreezeInput extends GpuTarget {
  /** How long the driver may wait for the process's running GPU work before the lock fails. */
  lockTimeoutMs: number;
}

/** `none`: the process holds no CUDA state (a CPU workload); `gone`: it no longer runs. */
export type GpuTargetState = GpuProcessState | 'none' | 'gone';

export interface GpuDevice {
  index: number;
  name: string;
  uuid: string;
  memoryTotalBytes: number;
  memoryUsedBytes: number;
}

export interface GpuNodeInfo {
  /** Null where the node has no NVIDIA driver (nvidia-smi missing or failing). */
  driverVersion: string | null;
  gpus: GpuDevice[];
}

/** What a checkpoint's manifest records about the GPUs, so a restore can refuse an unlike node. */
export interface GpuCheckpointRecord {
  driverVersion: string;
  gpus: Array<Pick<GpuDevice, 'name' | 'uuid' | 'memoryTotalBytes'>>;
  /**
   * GPU memory the process held when frozen (nvidia-smi's per-process figure): what its allocator
   * reserved, not only what its tensors use; the CRIU image grows by about this much.
   */
  processMemoryBytes: number;
}

export interface GpuFreezeResult {
  pid: number;
  before: GpuTargetState;
  after: GpuTargetState;
  lockMs: number;
  checkpointMs: number;
  /** Null for a process without CUDA state. */
  gpu: GpuCheckpointRecord | null;
}

export interface GpuThawResult {
  pid: number;
  before: GpuTargetState;
  after: GpuTargetState;
  restoreMs: number;
  unlockMs: number;
}

export interface GpuStateResult {
  pid: number;
  state: GpuTargetState;
}

export interface GpuRestoreCheckInput {
  /** The checkpoint's record; null for a checkpoint of a process without CUDA state. */
  recorded: GpuCheckpointRecord | null;
}
