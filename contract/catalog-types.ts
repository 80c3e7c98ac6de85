import type { CheckpointManifest } from './manifest-types.js';

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
