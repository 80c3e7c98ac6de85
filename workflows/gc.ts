import { workloadNameOf } from '../contract/retention.js';
import { type GcRequest, gcRequestSchema, parseOrReject } from '../contract/spec.js';
import type { GcResult, RetentionReport } from '../contract/types.js';
import { nodeActivities } from './activity-policies.js';
import { surfaceFailure } from './failures.js';
import { applyRetention, madeOn } from './retention.js';
import { enterPhase, tagExecution } from './tagging.js';

/**
 * gc: remove what interrupted or abandoned work left on a node (temporary dumps, incomplete
 * checkpoints, stale run and restore files, trash; with a shared store, its orphan chunk objects),
 * then, when asked, apply retention to every workload found; reports each path removed. Workflow ID
 * `gc/<node>`.
 */
export async function gc(request: GcRequest): Promise<GcResult> {
  const spec = parseOrReject(gcRequestSchema, request, 'gc request');
  const agent = nodeActivities(spec.node, spec.agentTimeoutMs);
  tagExecution(spec.node);
  try {
    enterPhase('collecting');
    const garbage = await agent.heavy.collectGarbage({ tmpMaxAgeMs: spec.tmpMaxAgeMs, runMaxAgeMs: spec.runMaxAgeMs });
    const retention: RetentionReport[] = [];
    if (spec.keepPerName !== undefined) {
      enterPhase('retention');
      const listed = madeOn(await agent.quick.listCommitted({}), spec.node);
      const names = [...new Set(listed.flatMap((c) => workloadNameOf(c.hash) ?? []))].sort();
      for (const name of names) retention.push(await applyRetention(agent, listed, { name, keep: spec.keepPerName }));
    }
    enterPhase('done');
    return { node: spec.node, ...garbage, retention };
  } catch (err) {
    enterPhase('failed');
    throw surfaceFailure(err, spec.node);
  }
}
