import { randomUUID } from 'node:crypto';
import {
  ApplicationFailure,
  type Client,
  type WorkflowHandleWithFirstExecutionRunId as StartedWorkflow,
  WorkflowFailedError,
} from '@temporalio/client';
import type { FailureType } from '../contract/failures.js';
import { CONTROL_TASK_QUEUE, checkpointWorkflowId, restoreWorkflowId } from '../contract/naming.js';
import {
  type CheckpointRequest,
  checkpointRequestSchema,
  parseOrReject,
  type RestoreRequest,
  restoreRequestSchema,
} from '../contract/spec.js';
import type { CheckpointResult, Progress, RestoreResult } from '../contract/types.js';
import type { checkpoint, restore } from '../workflows/index.js';

export type { CheckpointRequest, RestoreRequest } from '../contract/spec.js';
export type { CheckpointManifest, CheckpointResult, Progress, RestoreResult } from '../contract/types.js';

/** A Torpor failure as callers see it: the stable `type` and the message that says what to do. */
export class TorporError extends Error {
  constructor(
    readonly type: FailureType | 'Unknown',
    message: string,
    readonly workflowId?: string,
  ) {
    super(message);
    this.name = `TorporError(${type})`;
  }
}

function toTorporError(err: unknown, workflowId?: string): unknown {
  const cause = err instanceof WorkflowFailedError ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    return new TorporError((cause.type ?? 'Unknown') as FailureType, cause.message, workflowId);
  }
  return err;
}

/** Validates on the caller's side first, so bad input fails before any workflow starts. */
function validated<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw toTorporError(err);
  }
}

export type RestoreStart = Omit<RestoreRequest, 'restoreId'> & { restoreId?: string };

/** What other services import: start checkpoints and restores, and await typed results. */
export class TorporClient {
  constructor(private readonly client: Client) {}

  /**
   * Starts (or joins) the checkpoint of `request.hash`. One workflow ID per hash: a request for an
   * in-flight hash joins it; one for a committed hash returns that checkpoint without dumping again.
   */
  async startCheckpoint(request: CheckpointRequest): Promise<StartedWorkflow<typeof checkpoint>> {
    validated(() => parseOrReject(checkpointRequestSchema, request, 'checkpoint request'));
    return this.client.workflow.start<typeof checkpoint>('checkpoint', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: checkpointWorkflowId(request.hash),
      args: [request],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      staticSummary: `Checkpoint ${request.hash} on ${request.node}`,
      staticDetails: `Checkpoint of \`${request.workload.command.join(' ')}\` (${request.runtime} runtime) into hash **${request.hash}** on node **${request.node}**.`,
    });
  }

  async startRestore(request: RestoreStart): Promise<StartedWorkflow<typeof restore>> {
    const full: RestoreRequest = { ...request, restoreId: request.restoreId ?? randomUUID().slice(0, 8) };
    validated(() => parseOrReject(restoreRequestSchema, full, 'restore request'));
    return this.client.workflow.start<typeof restore>('restore', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: restoreWorkflowId(full.hash, full.restoreId),
      args: [full],
      workflowIdConflictPolicy: 'FAIL',
      staticSummary: `Restore ${full.hash} on ${full.node}`,
      staticDetails: `Restore ${full.restoreId} of checkpoint **${full.hash}** on node **${full.node}** (${full.runtime} runtime).`,
    });
  }

  async checkpoint(request: CheckpointRequest): Promise<CheckpointResult> {
    const handle = await this.startCheckpoint(request);
    return handle.result().catch((err: unknown) => Promise.reject(toTorporError(err, handle.workflowId)));
  }

  async restore(request: RestoreStart): Promise<RestoreResult> {
    const handle = await this.startRestore(request);
    return handle.result().catch((err: unknown) => Promise.reject(toTorporError(err, handle.workflowId)));
  }

  /** The `progress` query of a running (or finished) checkpoint or restore. */
  async progress(workflowId: string): Promise<Progress> {
    return this.client.workflow.getHandle(workflowId).query<Progress>('progress');
  }
}

/** The Temporal Web UI page of a workflow execution. */
export function workflowUiUrl(uiBase: string, namespace: string, workflowId: string, runId?: string): string {
  const base = `${uiBase.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${base}/${runId}/history` : base;
}
