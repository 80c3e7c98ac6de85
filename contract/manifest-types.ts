import type { GpuCheckpointRecord } from './gpu-types.js';
import type { NetworkPolicy } from './network.js';
import type { Runtime } from './spec.js';

/** One file of a committed checkpoint, relative to the checkpoint directory. */
export interface ManifestFile {
  path: string;
  sizeBytes: number;
  /** sha256 of each `chunkBytes` chunk of the file, in order (the last may be shorter): format 2. */
  chunkSha256?: string[];
  /** sha256 of the whole file: manifests of format 1. */
  sha256?: string;
}

/** The files an app was given under the ChReK contract; a restore writes the marker where the app looks. */
export interface WorkloadContractFiles {
  readyFile: string;
  signalFile: string;
  restoreMarkerFile: string;
  logFile: string;
  location: string;
}

/**
 * What manifests and the agent's records keep of a workload: the names of its environment
 * variables, never their values (they may be secrets; the checkpoint's hash already covers them).
 */
export interface RecordedWorkload {
  command: string[];
  cwd?: string;
  envNames: string[];
}

export interface CheckpointManifest {
  /** 2: per-chunk digests, verified in parallel; 1: whole-file digests (read and verified as before). */
  formatVersion: 1 | 2;
  /** The chunk size of every file's `chunkSha256` (format 2). */
  chunkBytes?: number;
  hash: string;
  node: string;
  runtime: Runtime;
  createdAt: string;
  workload: RecordedWorkload;
  contract: WorkloadContractFiles;
  process: { pid: number };
  files: ManifestFile[];
  totalBytes: number;
  tools: { criu: string; kernel: string; node: string; torpor: string };
  /** hashedWhileDumpingBytes: bytes of whole chunks hashed while CRIU wrote them, which the commit did not read again. */
  timings: { startToReadyMs: number; dumpMs: number; commitMs: number; hashedWhileDumpingBytes?: number };
  criu: { dumpArgs: string[] };
  /** The GPUs and driver the process ran on; null for a process without CUDA state. */
  gpu: GpuCheckpointRecord | null;
  /** What the dump did with established connections; absent in manifests written before CRIU 4.2 (nothing was saved). */
  network?: NetworkPolicy;
}
