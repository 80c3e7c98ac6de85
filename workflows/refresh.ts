import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  ApplicationFailure,
  ChildWorkflowFailure,
  ContinueAsNew,
  continueAsNew,
  executeChild,
  ParentClosePolicy,
  patched,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import { checkpointWorkflowId } from '../contract/naming.js';
import { type CheckpointRequest, parseOrReject, type RefreshRequest, refreshRequestSchema } from '../contract/spec.js';
import type { RefreshOutcome, RefreshResult } from '../contract/types.js';
import { nodeActivities } from './activity-policies.js';
import { checkpoint } from './checkpoint.js';
import { surfaceFailure } from './failures.js';
import { applyRetention, madeOn } from './retention.js';
import { enterPhase, tagExecution } from './tagging.js';

/** How often a refresh that met an in-flight checkpoint of its hash looks whether it has committed. */
const JOIN_POLL = '5 seconds';
/**
 * The patch (Temporal workflow versioning) under which the join loop backs off (5 s doubling to
 * 1 min) and continues as a new run every `pollsPerRun` polls, or sooner when Temporal suggests it:
 * behind a 24 h checkpoint its history stays small. Histories from before replay unchanged.
 */
export const REFRESH_JOIN_BACKOFF = 'refresh-join-backoff';
const JOIN_POLL_FIRST_MS = 5_000;
const JOIN_POLL_MAX_MS = 60_000;
const POLLS_PER_RUN = 100;

/** What a refresh hands the next run of itself when it continues as new while joining. */
export interface RefreshRun {
  /** The hash whose in-flight checkpoint the previous run was joining. */
  joining?: string;
  /** Polls before continuing as new (100; tests use fewer). */
  pollsPerRun?: number;
}

type NodeAgent = ReturnType<typeof nodeActivities>;

/**
 * refresh (what a Temporal Schedule runs): derive the spec hash from the node's files, GPUs and tools
 * → committed already? nothing to do → else checkpoint it as the child `checkpoint/<hash>`, or join
 * the one in flight → keep the newest `keep` checkpoints of the workload, delete the rest (never one
 * a running restore uses).
 */
export async function refresh(request: RefreshRequest, run: RefreshRun = {}): Promise<RefreshResult> {
  const spec = parseOrReject(refreshRequestSchema, request, 'refresh request');
  const { name, node, keep } = spec;
  const agent = nodeActivities(node, spec.agentTimeoutMs);
  tagExecution(node);
  try {
    let hash = run.joining;
    if (hash === undefined) {
      enterPhase('deriving-hash');
      ({ hash } = await agent.heavy.deriveSpecHash({ name, runtime: spec.runtime, workload: spec.workload, hashEnv: spec.hashEnv }));
    }
    tagExecution(node, hash);
    enterPhase('looking-up');
    let outcome: RefreshOutcome = 'unchanged';
    let childWorkflowId: string | null = null;
    const committed = (await agent.quick.findCheckpoint({ hash })) !== null;
    if (committed && run.joining !== undefined) {
      // The checkpoint the previous run was joining committed in between.
      outcome = 'joined';
      childWorkflowId = checkpointWorkflowId(hash);
    } else if (!committed) {
      enterPhase('checkpointing');
      childWorkflowId = checkpointWorkflowId(hash);
      const continueJoining = () => continueAsNew<typeof refresh>(request, { ...run, joining: hash });
      outcome = await checkpointOrJoin(agent, run.pollsPerRun ?? POLLS_PER_RUN, continueJoining, {
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
    const retention = await applyRetention(agent, madeOn(await agent.quick.listCommitted({}), node), { name, keep, protect: [hash] });
    enterPhase('done');
    return { name, node, hash, outcome, checkpointWorkflowId: childWorkflowId, retention };
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    enterPhase('failed');
    throw surfaceFailure(err instanceof ChildWorkflowFailure && err.cause instanceof ApplicationFailure ? err.cause : err, node);
  }
}

/**
 * Runs the checkpoint as a child with the content-derived ID. Someone else's checkpoint of the same
 * hash in flight (a caller, another node's schedule) holds that ID: then wait until it has committed,
 * or start again once it has ended without a commit.
 */
async function checkpointOrJoin(
  agent: NodeAgent,
  pollsPerRun: number,
  continueJoining: () => Promise<never>,
  request: CheckpointRequest,
): Promise<RefreshOutcome> {
  for (let poll = 0; ; poll++) {
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
    if (!patched(REFRESH_JOIN_BACKOFF)) {
      await sleep(JOIN_POLL);
    } else {
      if (poll >= pollsPerRun || workflowInfo().continueAsNewSuggested) await continueJoining();
      await sleep(Math.min(JOIN_POLL_FIRST_MS * 2 ** poll, JOIN_POLL_MAX_MS));
    }
    if ((await agent.quick.findCheckpoint({ hash: request.hash })) !== null) return 'joined';
  }
}
