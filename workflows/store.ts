import { torporFailure } from '../contract/failures.js';
import {
  type CheckpointRef,
  checkpointRefSchema,
  type NodeRequest,
  nodeRequestSchema,
  parseOrReject,
  type SpecHashRequest,
  specHashRequestSchema,
} from '../contract/spec.js';
import type { CheckpointInfo, CheckpointSummary, RemovedCheckpoint, SpecHashResult } from '../contract/types.js';
import { nodeActivities } from './activity-policies.js';
import { surfaceFailure } from './failures.js';
import { enterPhase, tagExecution } from './tagging.js';

/**
 * Short workflows through which callers reach a node's checkpoint store: the store lives on the node,
 * and only the node's agent touches it. Each is one or two activities; the history shows who asked.
 */

/** The committed checkpoints on a node, newest first, with the restores that use them. */
export async function listCheckpoints(request: NodeRequest): Promise<CheckpointSummary[]> {
  const spec = parseOrReject(nodeRequestSchema, request, 'list request');
  tagExecution(spec.node);
  return nodeActivities(spec.node, spec.agentTimeoutMs)
    .quick.listCommitted({})
    .catch((err: unknown) => Promise.reject(surfaceFailure(err, spec.node)));
}

/** One committed checkpoint: its manifest and users. Unknown hash: CheckpointNotFound. */
export async function inspectCheckpoint(request: CheckpointRef): Promise<CheckpointInfo> {
  const spec = parseOrReject(checkpointRefSchema, request, 'inspect request');
  tagExecution(spec.node, spec.hash);
  const found = await nodeActivities(spec.node, spec.agentTimeoutMs)
    .quick.describeCheckpoint({ hash: spec.hash })
    .catch((err: unknown) => Promise.reject(surfaceFailure(err, spec.node)));
  if (found === null) throw torporFailure('CheckpointNotFound', `No committed checkpoint ${spec.hash} on node ${spec.node}`);
  return found;
}

/**
 * Deletes a checkpoint: CheckpointNotFound when there is none, CheckpointInUse while a restore runs
 * from it. Workflow ID `delete/<hash>/<node>`.
 */
export async function deleteCheckpoint(request: CheckpointRef): Promise<RemovedCheckpoint> {
  const spec = parseOrReject(checkpointRefSchema, request, 'delete request');
  const agent = nodeActivities(spec.node, spec.agentTimeoutMs);
  tagExecution(spec.node, spec.hash);
  try {
    enterPhase('looking-up');
    if ((await agent.quick.describeCheckpoint({ hash: spec.hash })) === null) {
      throw torporFailure('CheckpointNotFound', `No committed checkpoint ${spec.hash} on node ${spec.node}`);
    }
    enterPhase('deleting');
    const removed = await agent.heavy.removeCheckpoint({ hash: spec.hash });
    enterPhase('done');
    return removed;
  } catch (err) {
    enterPhase('failed');
    throw surfaceFailure(err, spec.node);
  }
}

/** The spec hash the node derives for a workload (contract/spec-hash.ts), without checkpointing it. */
export async function specHash(request: SpecHashRequest): Promise<SpecHashResult> {
  const spec = parseOrReject(specHashRequestSchema, request, 'spec hash request');
  tagExecution(spec.node);
  return nodeActivities(spec.node, spec.agentTimeoutMs)
    .heavy.deriveSpecHash({ name: spec.name, runtime: spec.runtime, workload: spec.workload, hashEnv: spec.hashEnv })
    .catch((err: unknown) => Promise.reject(surfaceFailure(err, spec.node)));
}
