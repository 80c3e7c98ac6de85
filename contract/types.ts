import type { GpuCheckpointRecord } from './gpu-types.js';
import type { CheckpointManifest } from './manifest-types.js';
import type { EstablishedPolicy } from './network.js';
import type { ReadinessProbe, Runtime, WorkloadSpec } from './spec.js';

export type { CheckpointInfo, CheckpointLocation, CheckpointSummary, CheckpointUse, RemovedCheckpoint } from './catalog-types.js';
export type {
  GarbageInput,
  GarbageReport,
  GcResult,
  RefreshOutcome,
  RefreshResult,
  RetentionReport,
  SharedOrphanReport,
} from './maintenance-types.js';
export type { CheckpointManifest, ManifestFile, WorkloadContractFiles } from './manifest-types.js';
export type { FetchResult, SharedStoreInput, UploadResult } from './shared-store-types.js';

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

export interface VerifyInput extends HashInput {
  /**
   * `now` (absent: histories from before it) hashes every byte; `at-restore` checks the marker, the
   * manifest and every file's size here and leaves the bytes to the restore, which verifies them
   * while CRIU reads the image and holds the process until they match.
   */
  contents?: 'now' | 'at-restore';
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
  /** Bytes the restore verified while CRIU read them (local restores); absent where the workflow verified first. */
  verifiedBytes?: number;
  /** Hashing lanes beside CRIU: a few from a cold page cache, one per core when the checkpoint was cached. */
  verifyLanes?: number;
  /** From CRIU's start: when verification ended, and when CRIU held the restored tree at the gate (local restores). */
  verifyDoneMs?: number;
  gateHeldMs?: number;
  /** Mapped files (libraries) read ahead before the verification lanes started (what CRIU reads of them), the bytes asked for, and how long it took. */
  mappedFilesWarmed?: number;
  warmedBytes?: number;
  warmMs?: number;
  /** Why nothing was read ahead, when the warming could not run (no files image, openat2 missing, ...). */
  warmSkipped?: string;
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
  /** Waiting until the scheduler binds the pod (kubernetes without a node): then the node steps know their node. */
  | 'placing'
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
  | 'uploading'
  | 'fetching'
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
  /** The variables of `workload.env` that count (all, unless the request names a subset); a result shows names only (value `<redacted>`). */
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

/** The local runtime's checkpoint after ready as one node step (patch local-checkpoint-in-one-step). */
export interface CheckpointProcessInput extends DumpWorkloadInput {
  startToReadyMs: number;
  /** How long the driver may wait for the process's running GPU work before the lock fails. */
  lockTimeoutMs: number;
}
export interface CheckpointProcessResult {
  dump: DumpResult;
  manifest: CheckpointManifest;
  /** True when the app was signalled beside the commit; false when its GPU state must be thawed first (the workflow then thaws and signals). */
  signalled: boolean;
  /** Set when the app exited (and was cleaned up) within the agent's short wait after the commit; null: the workflow waits. */
  finished: WorkloadExit | null;
  /** The agent's wall time of each step it ran: freezing-gpu, dumping, signalling, committing, waiting-exit. */
  stepMs: Record<string, number>;
}
/** The local runtime's look-up and start as one node step (patch local-start-with-look-up). */
export interface StartUnlessCommittedResult {
  /** The committed checkpoint of the hash (nothing was started), or null: the workload was started. */
  existing: CheckpointManifest | null;
  /** The agent's wall time of the look-up, reported apart from the start. */
  lookupMs: number;
}
