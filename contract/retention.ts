import type { CheckpointSummary } from './types.js';

/** `<name>-<16 hex>`: the shape of a spec hash (contract/spec-hash.ts). */
const SPEC_HASH_SHAPE = /^([a-z0-9](?:[a-z0-9-]{0,44}[a-z0-9])?)-[0-9a-f]{16}$/;

/** The workload name of a spec hash; null for a hash chosen by hand, which retention never touches. */
export function workloadNameOf(hash: string): string | null {
  return SPEC_HASH_SHAPE.exec(hash)?.[1] ?? null;
}

export interface RetentionPlan {
  keep: string[];
  remove: string[];
  /** Past retention, but a running restore uses it. */
  inUse: string[];
}

/**
 * Which checkpoints of workload `name` to keep: the `protect`ed ones (the current spec's), then the
 * newest by creation time up to `keep` in all; the rest go, except those a running restore uses.
 * Pure, so a workflow can call it on an activity's listing.
 */
export function planRetention(
  checkpoints: readonly CheckpointSummary[],
  policy: { name: string; keep: number; protect?: readonly string[] },
): RetentionPlan {
  const protect = new Set(policy.protect ?? []);
  const mine = checkpoints
    .filter((c) => workloadNameOf(c.hash) === policy.name)
    .sort((a, b) => (a.createdAt === b.createdAt ? (a.hash < b.hash ? -1 : 1) : a.createdAt < b.createdAt ? 1 : -1));
  const keep = mine.filter((c) => protect.has(c.hash)).map((c) => c.hash);
  for (const c of mine) if (keep.length < policy.keep && !keep.includes(c.hash)) keep.push(c.hash);
  const past = mine.filter((c) => !keep.includes(c.hash));
  return {
    keep,
    remove: past.filter((c) => c.usedBy.length === 0).map((c) => c.hash),
    inUse: past.filter((c) => c.usedBy.length > 0).map((c) => c.hash),
  };
}
