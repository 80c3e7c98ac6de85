import type { GpuCheckpointRecord } from './gpu-types.js';
import type { NetworkPolicy } from './network.js';
import type { Runtime, WorkloadSpec } from './spec.js';

/** One file of a committed checkpoint, relative to the checkpoint directory. */
export interface ManifestFile {
  path: string;
  sizeBytes: number;
  sha256: string;
}

/** The files an app was given under the ChReK contract; a restore writes the marker where the app looks. */
export interface WorkloadContractFiles {
  readyFile: string;
  signalFile: string;
  restoreMarkerFile: string;
  logFile: string;
  location: string;
}

export interface CheckpointManifest {
  formatVersion: 1;
  hash: string;
  node: string;
  runtime: Runtime;
  createdAt: string;
  workload: WorkloadSpec;
  contract: WorkloadContractFiles;
  process: { pid: number };
  files: ManifestFile[];
  totalBytes: number;
  tools: { criu: string; kernel: string; node: string; torpor: string };
  timings: { startToReadyMs: number; dumpMs: number; commitMs: number };
  criu: { dumpArgs: string[] };
  /** The GPUs and driver the process ran on; null for a process without CUDA state. */
  gpu: GpuCheckpointRecord | null;
  /** What the dump did with established connections; absent in manifests written before CRIU 4.2 (nothing was saved). */
  network?: NetworkPolicy;
}
