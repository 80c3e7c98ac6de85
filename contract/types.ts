import type { GpuCheckpointRecord } from './gpu-types.js';
import type { EstablishedPolicy, NetworkPolicy } from './network.js';
import type { ReadinessProbe, Runtime, WorkloadSpec } from './spec.js';

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

export interface HashInput {
  hash: string;
}

export interface StartWorkloadInput extends HashInput {
  workload: WorkloadSpec;
}
export interface StartedWorkload {
  pid: number;
  logFile: string;
}

export interface WaitInput extends HashInput {
  timeoutMs: number;
}
export interface WaitedFor {
  waitedMs: number;
}

export interface WorkloadExit {
  exited: boolean;
  exitCode: number | null;
  waitedMs: number;
}

export interface DumpInput extends HashInput {
  /** Names the temporary directory; chosen by the workflow so a retried dump reuses (and first clears) it. */
  dumpId: string;
}

export interface DumpWorkloadInput extends DumpInput {
  /** The request's policy for established TCP connections; `close` when absent (histories from before it existed). */
  established?: EstablishedPolicy;
}
export interface DumpResult {
  dumpId: string;
  imageBytes: number;
  criuMs: number;
}

export interface CommitInput extends DumpInput {
  startToReadyMs: number;
  dumpMs: number;
  gpu: GpuCheckpointRecord | null;
}

export interface VerifiedCheckpoint {
  manifest: CheckpointManifest;
  verifiedBytes: number;
  verifyMs: number;
}

export interface RestoreInput extends HashInput {
  restoreId: string;
}
export interface RestoredProcess {
  pid: number;
  logFile: string;
  criuMs: number;
}

export interface RestoredReadyInput extends RestoreInput {
  readiness: ReadinessProbe;
  timeoutMs: number;
}

export type CheckpointOutcome = 'created' | 'existing';

export interface CheckpointResult {
  hash: string;
  node: string;
  outcome: CheckpointOutcome;
  manifest: CheckpointManifest;
  /** How the checkpoint workload ended after the signal: exited by itself, or stopped by Torpor (with network.established "keep", by the dump). */
  workloadEnd: 'exited' | 'stopped' | 'not-started';
  /** Wall times seen by the workflow, per step, in milliseconds. */
  stepMs: Record<string, number>;
}

export interface RestoreResult {
  hash: string;
  node: string;
  restoreId: string;
  pid: number;
  logFile: string;
  stepMs: Record<string, number>;
  criuRestoreMs: number;
}

export type Phase =
  | 'validating'
  | 'looking-up'
  | 'starting-workload'
  | 'waiting-ready'
  | 'freezing-gpu'
  | 'dumping'
  | 'committing'
  | 'thawing-gpu'
  | 'signalling'
  | 'waiting-exit'
  | 'verifying'
  | 'checking-gpu'
  | 'restoring'
  | 'waiting-restored-ready'
  | 'compensating'
  | 'done'
  | 'failed';

export interface Progress {
  phase: Phase;
  stepMs: Record<string, number>;
  /** Bytes of CRIU images written (checkpoint) or verified (restore) by the steps finished so far. */
  bytesWritten: number;
}

/** What a spec hash is derived from (contract/spec-hash.ts documents each field). */
export interface SpecHashInputs {
  formatVersion: 1;
  name: string;
  runtime: Runtime;
  /** The container image's digest (kubernetes runtime); null for the local runtime. */
  imageDigest: string | null;
  /** Local runtime: the program (resolved on PATH, symlinks followed) and every argument that names a file. */
  files: Array<{ path: string; sha256: string }>;
  command: string[];
  cwd: string | null;
  /** The variables of `workload.env` that count (all, unless the request names a subset). */
  env: Record<string, string>;
  gpu: { models: string[]; driverVersion: string | null };
  criuVersion: string;
}

export interface SpecHashInput {
  name: string;
  runtime: Runtime;
  workload: WorkloadSpec;
  hashEnv?: string[] | undefined;
}

export interface SpecHashResult {
  hash: string;
  inputs: SpecHashInputs;
}

/** A restored copy of a checkpoint that still runs: the checkpoint may not be deleted meanwhile. */
export interface CheckpointUse {
  restoreId: string;
  pid: number;
  /** `restoring`: CRIU is still at work on it. */
  state: 'running' | 'restoring';
}

/** One committed checkpoint as listings show it. */
export interface CheckpointSummary {
  hash: string;
  node: string;
  /** The workload name of a spec hash (`<name>-<16 hex>`); null for a hash chosen by hand. */
  name: string | null;
  createdAt: string;
  totalBytes: number;
  fileCount: number;
  command: string[];
  gpu: string | null;
  usedBy: CheckpointUse[];
}

export interface CheckpointInfo {
  summary: CheckpointSummary;
  manifest: CheckpointManifest;
}

export interface RemovedCheckpoint {
  hash: string;
  node: string;
  /** False when it was already gone (a retried delete). */
  removed: boolean;
  freedBytes: number;
}

export interface RetentionReport {
  name: string;
  keep: number;
  kept: string[];
  deleted: string[];
  /** Past retention but used by a running restore: kept until a later run. */
  inUse: string[];
}

export type RefreshOutcome = 'created' | 'unchanged' | 'joined';

export interface RefreshResult {
  name: string;
  node: string;
  hash: string;
  outcome: RefreshOutcome;
  /** The checkpoint workflow this refresh started or joined; null when the checkpoint already existed. */
  checkpointWorkflowId: string | null;
  retention: RetentionReport;
}

export interface GarbageInput {
  tmpMaxAgeMs: number;
  runMaxAgeMs: number;
}

/** What one garbage collection removed, as paths relative to the storage root. */
export interface GarbageReport {
  removed: string[];
  /** Stale checkpoint workloads that were still running and were stopped. */
  stoppedWorkloads: string[];
  /** Left alone because a process still uses it (a CRIU run, a live restore). */
  busy: string[];
  freedBytes: number;
}

export interface GcResult extends GarbageReport {
  node: string;
  retention: RetentionReport[];
}
