/** Inputs and outputs of the node agent's GPU activities (CUDA checkpoint API). */

/** The CUDA driver's CUprocessState values. */
export type GpuProcessState = 'running' | 'locked' | 'checkpointed' | 'failed';

/**
 * A container whose process tree a GPU step acts on, found and verified by the agent through runc:
 * `source`, a checkpoint source container (the dump's target policy); `placeholder`, a restore
 * placeholder for the target's hash.
 */
export interface GpuContainerRef {
  id: string;
  role: 'source' | 'placeholder';
}

/**
 * Names the process group by the agent's own records: the checkpoint workload, a restored copy, or a
 * container's process tree. Every CUDA process of the tree is a member; the others (a launcher) are not.
 */
export interface GpuTarget {
  hash: string;
  /** Absent: the checkpoint workload of `hash`; present: the process that restore brought back. */
  restoreId?: string;
  /** A container instead of a local process (then `restoreId` is not used). */
  container?: GpuContainerRef;
  /** The node the caller believes the container is on; the agent refuses a request meant for another. */
  nodeName?: string;
}

/**
 * GPUs a restore target should get: UUIDs ("GPU-…") or nvidia-smi indexes ("0"), in the order the
 * restored process will see them. Used by the local runtime only; a placeholder's GPUs come from its
 * own bundle.
 */
export type GpuSelection = string[];

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

/**
 * A GPU the checkpointed group could see. `index` is its CUDA ordinal as the group saw it (the
 * nvidia-smi index for a local process, the position in a container's visible devices); records of
 * format 1 have none, and their position stands for it.
 */
export type RecordedGpu = Pick<GpuDevice, 'name' | 'uuid' | 'memoryTotalBytes'> & { index?: number };

/** One CUDA process of a checkpointed group. */
export interface GpuProcessRecord {
  pid: number;
  /** nvidia-smi's used_memory of the process, summed over its GPUs. */
  memoryBytes: number;
  /** The GPUs it held memory on (nvidia-smi's gpu_uuid); empty where nvidia-smi did not list it. */
  gpuUuids: string[];
}

/** What a checkpoint's manifest records about the GPUs, so a restore can refuse an unlike node and pair UUIDs. */
export interface GpuCheckpointRecord {
  driverVersion: string;
  gpus: RecordedGpu[];
  /**
   * GPU memory the group held when frozen (nvidia-smi's per-process figures, summed): what the
   * allocators reserved, not only what tensors use; the CRIU image grows by about this much.
   */
  processMemoryBytes: number;
  /** Every CUDA process of the group; absent in records of a single process made before groups. */
  processes?: GpuProcessRecord[];
}

/** Restore onto `newUuid` what ran on `oldUuid` (CUcheckpointGpuPair). */
export interface GpuPair {
  oldUuid: string;
  newUuid: string;
}

export interface GpuFreezeResult {
  /** The group's first member (the target's root process when it has no CUDA state). */
  pid: number;
  /** Every CUDA process of the group, in tree order. */
  pids?: number[];
  before: GpuTargetState;
  after: GpuTargetState;
  lockMs: number;
  checkpointMs: number;
  /** Null for a process without CUDA state. */
  gpu: GpuCheckpointRecord | null;
}

/** A thaw; the recorded GPUs and, for the local runtime, the GPUs to restore onto, for the UUID pairs. */
export interface GpuThawInput extends GpuTarget {
  /** The checkpoint's GPU record; absent or null: restore onto the same GPUs (no pairs). */
  recorded?: GpuCheckpointRecord | null;
  gpus?: GpuSelection;
}

export interface GpuThawResult {
  pid: number;
  pids?: number[];
  /** The UUID pairs passed to the driver (empty: none). */
  pairs?: GpuPair[];
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
  /** Local runtime: the GPUs the request names (default: the node's, in index order). */
  gpus?: GpuSelection;
  /** A placeholder container: its GPUs are what its bundle was given (needs `hash`). */
  placeholderContainerId?: string;
  hash?: string;
  nodeName?: string;
}

/** A GPU as nvidia-smi names it. */
export const GPU_UUID_PATTERN = /^GPU-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** A GPU in a restore request: its UUID or its nvidia-smi index. */
export const GPU_SELECTOR_PATTERN = new RegExp(`${GPU_UUID_PATTERN.source}|^[0-9]{1,3}$`);
