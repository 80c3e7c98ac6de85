import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { rejectWorkerConfiguredFields } from '../contract/kubernetes.js';
import { CONTROL_TASK_QUEUE, checkpointWorkflowId, restoreWorkflowId } from '../contract/naming.js';
import {
  type CheckpointRequest,
  checkpointRefSchema,
  type GcRequest,
  gcRequestSchema,
  nodeRequestSchema,
  parseCheckpointRequest,
  parseOrReject,
  parseRestoreRequest,
  type RefreshRequest,
  type RestoreRequest,
  refreshRequestSchema,
  type SpecHashRequest,
  specHashRequestSchema,
} from '../contract/spec.js';
import type {
  checkpoint,
  deleteCheckpoint,
  gc,
  inspectCheckpoint,
  listCheckpoints,
  refresh,
  restore,
  specHash,
} from '../workflows/index.js';
import { assertSameCheckpoint, checkpointIdentity, IDENTITY_MEMO } from './checkpoint-join.js';
import { validated } from './errors.js';
import { type StartedWorkflow, startWorkflow } from './start-workflow.js';
import { workflowIds } from './workflow-ids.js';

export type RestoreStart = Omit<RestoreRequest, 'restoreId'> & { restoreId?: string };
export type Target = { agentTimeoutMs?: number };

export async function startCheckpointWorkflow(client: Client, request: CheckpointRequest): Promise<StartedWorkflow<typeof checkpoint>> {
  validated(() => rejectWorkerConfiguredFields(parseCheckpointRequest(request).kubernetes));
  const handle = await client.workflow.start<typeof checkpoint>('checkpoint', {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: checkpointWorkflowId(request.hash),
    args: [request],
    memo: { [IDENTITY_MEMO]: checkpointIdentity(request) },
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    staticSummary: `Checkpoint ${request.hash} on ${request.node ?? SCHEDULED}`,
    staticDetails: `Checkpoint of \`${request.workload.command.join(' ')}\` (${request.runtime} runtime) into hash **${request.hash}** on node **${request.node ?? SCHEDULED}**.`,
  });
  await assertSameCheckpoint(handle, request);
  return handle;
}

/** A kubernetes request without a node runs where the scheduler places its pod. */
const SCHEDULED = 'the node the scheduler picks';

export async function startRestoreWorkflow(client: Client, request: RestoreStart): Promise<StartedWorkflow<typeof restore>> {
  const full: RestoreRequest = { ...request, restoreId: request.restoreId ?? randomUUID().slice(0, 8) };
  validated(() => rejectWorkerConfiguredFields(parseRestoreRequest(full).kubernetes));
  return client.workflow.start<typeof restore>('restore', {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: restoreWorkflowId(full.hash, full.restoreId),
    args: [full],
    workflowIdConflictPolicy: 'FAIL',
    staticSummary: `Restore ${full.hash} on ${full.node ?? SCHEDULED}`,
    staticDetails: `Restore ${full.restoreId} of checkpoint **${full.hash}** on node **${full.node ?? SCHEDULED}** (${full.runtime} runtime).`,
  });
}

export async function startInspectWorkflow(
  client: Client,
  hash: string,
  node: string,
  target: Target,
): Promise<StartedWorkflow<typeof inspectCheckpoint>> {
  const request = { hash, node, ...target };
  validated(() => parseOrReject(checkpointRefSchema, request, 'inspect request'));
  return startWorkflow<typeof inspectCheckpoint>(
    client,
    'inspectCheckpoint',
    workflowIds.inspect(hash, node),
    request,
    `Inspect ${hash} on ${node}`,
  );
}

export async function startListWorkflow(client: Client, node: string, target: Target): Promise<StartedWorkflow<typeof listCheckpoints>> {
  const request = { node, ...target };
  validated(() => parseOrReject(nodeRequestSchema, request, 'list request'));
  return startWorkflow<typeof listCheckpoints>(client, 'listCheckpoints', workflowIds.list(node), request, `List checkpoints on ${node}`);
}

export async function startDeleteWorkflow(
  client: Client,
  hash: string,
  node: string,
  target: Target,
): Promise<StartedWorkflow<typeof deleteCheckpoint>> {
  const request = { hash, node, ...target };
  validated(() => parseOrReject(checkpointRefSchema, request, 'delete request'));
  return startWorkflow<typeof deleteCheckpoint>(
    client,
    'deleteCheckpoint',
    workflowIds.delete(hash, node),
    request,
    `Delete ${hash} on ${node}`,
    {
      join: true,
    },
  );
}

export async function startSpecHashWorkflow(client: Client, request: SpecHashRequest): Promise<StartedWorkflow<typeof specHash>> {
  validated(() => parseOrReject(specHashRequestSchema, request, 'spec hash request'));
  const id = workflowIds.specHash(request.name, request.node);
  return startWorkflow<typeof specHash>(client, 'specHash', id, request, `Spec hash of ${request.name} on ${request.node}`);
}

export async function startRefreshWorkflow(client: Client, request: RefreshRequest): Promise<StartedWorkflow<typeof refresh>> {
  validated(() => parseOrReject(refreshRequestSchema, request, 'refresh request'));
  const id = workflowIds.refresh(request.name, request.node);
  return startWorkflow<typeof refresh>(client, 'refresh', id, request, `Refresh ${request.name} on ${request.node}`, { join: true });
}

export async function startGcWorkflow(client: Client, request: GcRequest): Promise<StartedWorkflow<typeof gc>> {
  validated(() => parseOrReject(gcRequestSchema, request, 'gc request'));
  return startWorkflow<typeof gc>(client, 'gc', workflowIds.gc(request.node), request, `Garbage collection on ${request.node}`, {
    join: true,
  });
}
