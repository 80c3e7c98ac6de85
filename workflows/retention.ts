import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';
import { planRetention } from '../contract/retention.js';
import type { CheckpointSummary, RetentionReport } from '../contract/types.js';
import type { nodeActivities } from './activity-policies.js';

type NodeAgent = ReturnType<typeof nodeActivities>;

/** True for an activity that failed with the typed failure `type`. */
export function failedWith(err: unknown, type: string): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === type;
}

/**
 * The checkpoints of a listing that node `node` made. With a shared store a listing holds every
 * node's checkpoints; a workload's spec hash differs by GPU model, driver and tools, so another
 * node's newest checkpoint of the same name may be the only one its nodes can restore: retention
 * run for one node judges that node's own. Without a shared store every listed checkpoint is the node's.
 */
export function madeOn(listed: readonly CheckpointSummary[], node: string): CheckpointSummary[] {
  return listed.filter((c) => c.node === node);
}

/**
 * Keeps the newest `keep` checkpoints of workload `name` (the `protect`ed ones always) and deletes
 * the rest, one at a time; one a restore started using meanwhile, or another node holds a lease on
 * in the shared store, is reported as in use, not deleted.
 */
export async function applyRetention(
  agent: NodeAgent,
  listed: readonly CheckpointSummary[],
  policy: { name: string; keep: number; protect?: readonly string[] },
): Promise<RetentionReport> {
  const plan = planRetention(listed, policy);
  const report: RetentionReport = { name: policy.name, keep: policy.keep, kept: plan.keep, deleted: [], inUse: [...plan.inUse] };
  for (const hash of plan.remove) {
    try {
      await agent.heavy.removeCheckpoint({ hash });
      report.deleted.push(hash);
    } catch (err) {
      if (!failedWith(err, 'CheckpointInUse')) throw err;
      report.inUse.push(hash);
    }
  }
  return report;
}
