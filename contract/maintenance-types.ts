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
  /** Chunk objects no manifest named, swept from the shared store; absent when the agent has none. */
  sharedOrphans?: SharedOrphanReport;
}

export interface SharedOrphanReport {
  /** Objects deleted, and their stored bytes. */
  removed: number;
  freedBytes: number;
  /** Checkpoints whose orphans were kept because an upload of them was running. */
  busy: string[];
  /** Partial writes a killed writer left (a shared directory's `.tmp/` files, S3's incomplete multipart uploads), older than the grace: removed. */
  leftovers?: { removed: number; freedBytes: number };
}

export interface GcResult extends GarbageReport {
  node: string;
  retention: RetentionReport[];
}
