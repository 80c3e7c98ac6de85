import type { Client, WorkflowHandleWithFirstExecutionRunId, WorkflowStartOptions } from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import { CONTROL_TASK_QUEUE } from '../contract/naming.js';

export type StartedWorkflow<W extends Workflow> = WorkflowHandleWithFirstExecutionRunId<W>;

/** Starts `type` on the control queue; with `join`, a request for a running workflow ID joins it instead of failing. */
export function startWorkflow<W extends Workflow>(
  client: Client,
  type: string,
  workflowId: string,
  request: object,
  summary: string,
  options: { join?: boolean } = {},
): Promise<StartedWorkflow<W>> {
  const startOptions = {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId,
    args: [request],
    workflowIdConflictPolicy: options.join ? 'USE_EXISTING' : 'FAIL',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    staticSummary: summary,
  } as unknown as WorkflowStartOptions<W>;
  return client.workflow.start<W>(type, startOptions);
}
