import { patched } from '@temporalio/workflow';
import type { CheckpointSpec } from '../contract/spec.js';
import type { CheckpointManifest } from '../contract/types.js';
import { clusterActivities } from './activity-policies.js';
import type { ProgressTracker } from './progress.js';

/**
 * The patch under which a kubernetes checkpoint without a node, for the shared store, first asks the
 * control worker whether the shared store holds the checkpoint already: the scheduler may place the
 * Job on a node whose cache lacks it, which would dump it again. Histories from before created the Job first.
 */
export const KUBERNETES_CHECKPOINT_SHARED_FIRST = 'kubernetes-checkpoint-shared-first';

/** The shared store's committed checkpoint for a request without a node, or null (then the Job is placed as before). */
export async function committedInSharedStore(spec: CheckpointSpec, tracker: ProgressTracker): Promise<CheckpointManifest | null> {
  if (spec.node !== undefined || spec.runtime !== 'kubernetes' || spec.sharedStore !== true) return null;
  if (!patched(KUBERNETES_CHECKPOINT_SHARED_FIRST)) return null;
  const cluster = clusterActivities(spec.agentTimeoutMs);
  return tracker.step('looking-up', () => cluster.quick.findSharedCheckpoint({ hash: spec.hash }));
}
