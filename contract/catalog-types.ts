import type { CheckpointManifest } from './manifest-types.js';

/**
 * A restored copy of a checkpoint that still runs: the checkpoint may not be deleted meanwhile.
 * `leased`: another node's live lease in the shared store (it fetches, restores or runs a copy);
 * then `node` names it, `restoreId` says what for, `pid` is 0 and `expiresAt` ends it unless renewed.
 */
export interface CheckpointUse {
  restoreId: string;
  pid: number;
  /** `restoring`: CRIU is still at work on it. */
  state: 'running' | 'restoring' | 'leased';
  node?: string;
  expiresAt?: string;
}

/** Where a checkpoint is: in the shared store, and in which nodes' caches (this node's own, and those that said so in the shared store). */
export interface CheckpointLocation {
  shared: boolean;
  nodeCaches: string[];
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
  /** Present when the agent has a shared store. */
  location?: CheckpointLocation;
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
  /** With a shared store: whether its manifest was there and removed now, and how many objects went with it. */
  shared?: { manifestRemoved: boolean; objectsRemoved: number };
}
