import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { ApplicationFailure, ChildWorkflowFailure, executeChild, ParentClosePolicy, sleep } from '@temporalio/workflow';
import { checkpointWorkflowId } from '../contract/naming.js';
import { type CheckpointRequest, parseOrReject, type RefreshRequest, refreshRequestSchema } from '../contract/spec.js';
import type { RefreshOutcome, RefreshResult } from '../contract/types.js';
import { nodeActivities } from './activity-policies.js';
import { checkpoint } from './checkpoint.js';
import { surfaceFailure } from './failures.js';
import { applyRetention } from './retention.js';
import { enterPhase, tagExecution } from './tagging.js';

/** How often a refresh that met an in-flight checkpoint of its hash looks whether it has committed. */
const JOIN_POLL = '5 seconds';

type NodeAgent = ReturnType<typeof nodeActivities>;

/**
 * refresh (what a Temporal Schedule runs): derive the spec hash from the node's files, GPUs and tools
 * → committed already? nothing to do → else checkpoint it as the child `checkpoint/<hash>`, or join
 * the one in flight → keep the newest `keep` checkpoints of the workload, delete the rest (never one
 * a running restore uses).
 */
export async function refresh(request: RefreshRequest): Promise<RefreshResult> {
  const spec = parseOrReject(refreshRequestSchema, request, 'refresh request');
  const { name, node, keep } = spec;
  const agent = nodeActivities(node, spec.agentTimeoutMs);
  tagExecution(node);
  try {
    enterPhase('deriving-hash');
    const { hash } = await agent.heavy.deriveSpecHash({ name, runtime: spec.runtime, workload: spec.workload, hashEnv: spec.hashEnv });
    tagExecution(node, hash);
    enterPhase('looking-up');
    let outcome: RefreshOutcome = 'unchanged';
    let childWorkflowId: string | null = null;
    if ((await agent.quick.findCheckpoint({ hash })) === null) {
      enterPhase('checkpointing');
      childWorkflowId = checkpointWorkflowId(hash);
      outcome = await checkpointOrJoin(agent, {
        hash,
        node,
        runtime: spec.runtime,
        workload: spec.workload,
        readyTimeoutMs: spec.readyTimeoutMs,
        exitTimeoutMs: spec.exitTimeoutMs,
        gpuLockTimeoutMs: spec.gpuLockTimeoutMs,
        agentTimeoutMs: spec.agentTimeoutMs,
      });
    }
    enterPhase('retention');
    const retention = await applyRetention(agent, await agent.quick.listCommitted({}), { name, keep, protect: [hash] });
    enterPhase('done');
    return { name, node, hash, outcome, checkpointWorkflowId: childWorkflowId, retention };
  } catch (err) {
    enterPhase('failed');
    throw surfaceFailure(err instanceof ChildWorkflowFailure && err.cause instanceof ApplicationFailure ? err.cause : err, node);
  }
}

/**
 * Runs the checkpoint as a child with the content-derived ID. Someone else's checkpoint of the same
 * hash in flight (a caller, another node's schedule) holds that ID: then wait until it has committed,
 * or start again once it has ended without a commit.
 */
async function checkpointOrJoin(agent: NodeAgent, request: CheckpointRequest): Promise<RefreshOutcome> {
  for (;;) {
    try {
      const result = await executeChild(checkpoint, {
        workflowId: checkpointWorkflowId(request.hash),
        args: [request],
        // The checkpoint cleans up after itself; others may have joined it, so it outlives this refresh.
        parentClosePolicy: ParentClosePolicy.ABANDON,
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        staticSummary: `Checkpoint ${request.hash} on ${request.node} (refresh)`,
      });
      return result.outcome === 'created' ? 'created' : 'unchanged';
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    await sleep(JOIN_POLL);
    if ((await agent.quick.findCheckpoint({ hash: request.hash })) !== null) return 'joined';
  }
}
