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
 * Keeps the newest `keep` checkpoints of workload `name` (the `protect`ed ones always) and deletes
 * the rest, one at a time; one a restore started using meanwhile is reported as in use, not deleted.
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
