import { randomUUID } from 'node:crypto';
import type { Client, WorkflowHandleWithFirstExecutionRunId as StartedWorkflow, WorkflowStartOptions } from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import {
  type ContainerCheckpointRequest,
  type ContainerRestoreRequest,
  parseContainerCheckpointRequest,
  parseContainerRestoreRequest,
} from '../contract/containers.js';
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
  type RefreshScheduleRequest,
  type RestoreRequest,
  refreshRequestSchema,
  type SpecHashRequest,
  specHashRequestSchema,
} from '../contract/spec.js';
import type {
  CheckpointInfo,
  CheckpointResult,
  CheckpointSummary,
  GcResult,
  Progress,
  RefreshResult,
  RemovedCheckpoint,
  RestoreResult,
  SpecHashResult,
} from '../contract/types.js';
import type { ContainerCheckpointResult, ContainerRestoreResult } from '../workflows/containers.js';
import type {
  checkpoint,
  containerCheckpoint,
  containerRestore,
  deleteCheckpoint,
  gc,
  inspectCheckpoint,
  listCheckpoints,
  refresh,
  restore,
  specHash,
} from '../workflows/index.js';
import { toTorporError, validated } from './errors.js';
import { type RefreshSchedule, RefreshSchedules, type TriggeredRefresh } from './schedules.js';
import { workflowIds } from './workflow-ids.js';

export type { ContainerCheckpointRequest, ContainerRestoreRequest } from '../contract/containers.js';
export type {
  CheckpointRequest,
  GcRequest,
  RefreshRequest,
  RefreshScheduleRequest,
  RestoreRequest,
  SpecHashRequest,
} from '../contract/spec.js';
export type {
  CheckpointInfo,
  CheckpointManifest,
  CheckpointResult,
  CheckpointSummary,
  GcResult,
  Progress,
  RefreshResult,
  RemovedCheckpoint,
  RestoreResult,
  SpecHashResult,
} from '../contract/types.js';
export type { ContainerCheckpointResult, ContainerRestoreResult } from '../workflows/containers.js';
export { TorporError } from './errors.js';
export type { RefreshSchedule, TriggeredRefresh } from './schedules.js';

export type RestoreStart = Omit<RestoreRequest, 'restoreId'> & { restoreId?: string };
export interface CheckpointFilter {
  node: string;
  /** Only the spec hashes of this workload name. */
  name?: string;
}
type Target = { agentTimeoutMs?: number };

/**
 * What other services import: start checkpoints and restores, list, inspect and delete checkpoints,
 * keep them fresh with Schedules, collect garbage; every result typed, every failure a TorporError.
 * Each operation runs as a workflow (the store lives on the node; only its agent touches it), so it
 * also has a `start…` form that returns the handle (for its ID, UI link and progress).
 */
export class TorporClient {
  readonly schedules: RefreshSchedules;

  constructor(private readonly client: Client) {
    this.schedules = new RefreshSchedules(client);
  }

  /**
   * Starts (or joins) the checkpoint of `request.hash`. One workflow ID per hash: a request for an
   * in-flight hash joins it; one for a committed hash returns that checkpoint without dumping again.
   */
  async startCheckpoint(request: CheckpointRequest): Promise<StartedWorkflow<typeof checkpoint>> {
    validated(() => parseCheckpointRequest(request));
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
    validated(() => parseRestoreRequest(full));
    return this.client.workflow.start<typeof restore>('restore', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: restoreWorkflowId(full.hash, full.restoreId),
      args: [full],
      workflowIdConflictPolicy: 'FAIL',
      staticSummary: `Restore ${full.hash} on ${full.node}`,
      staticDetails: `Restore ${full.restoreId} of checkpoint **${full.hash}** on node **${full.node}** (${full.runtime} runtime).`,
    });
  }

  /**
   * Checkpoints a running container on `request.node` (runc checkpoint; the container keeps
   * running). One workflow per hash and node: a second request joins the first.
   */
  async startContainerCheckpoint(request: ContainerCheckpointRequest): Promise<StartedWorkflow<typeof containerCheckpoint>> {
    const spec = validated(() => parseContainerCheckpointRequest(request));
    return this.start<typeof containerCheckpoint>(
      'containerCheckpoint',
      workflowIds.containerCheckpoint(spec.hash, spec.node),
      request,
      `Checkpoint container ${spec.containerId} as ${spec.hash} on ${spec.node}`,
      { join: true },
    );
  }

  /** Restores a container checkpoint into a running placeholder container; a second request for the same placeholder joins the first. */
  async startContainerRestore(request: ContainerRestoreRequest): Promise<StartedWorkflow<typeof containerRestore>> {
    const spec = validated(() => parseContainerRestoreRequest(request));
    return this.start<typeof containerRestore>(
      'containerRestore',
      workflowIds.containerRestore(spec.hash, spec.placeholderContainerId),
      request,
      `Restore ${spec.hash} into container ${spec.placeholderContainerId} on ${spec.node}`,
      { join: true },
    );
  }

  async checkpointContainer(request: ContainerCheckpointRequest): Promise<ContainerCheckpointResult> {
    return this.result(await this.startContainerCheckpoint(request));
  }

  async restoreContainer(request: ContainerRestoreRequest): Promise<ContainerRestoreResult> {
    return this.result(await this.startContainerRestore(request));
  }

  async checkpoint(request: CheckpointRequest): Promise<CheckpointResult> {
    return this.result(await this.startCheckpoint(request));
  }

  async restore(request: RestoreStart): Promise<RestoreResult> {
    return this.result(await this.startRestore(request));
  }

  /** The committed checkpoint `hash` on `node`: manifest and the restores using it. Unknown: TorporError CheckpointNotFound. */
  async getCheckpoint(hash: string, node: string, target: Target = {}): Promise<CheckpointInfo> {
    return this.result(await this.startInspect(hash, node, target));
  }

  async startInspect(hash: string, node: string, target: Target = {}): Promise<StartedWorkflow<typeof inspectCheckpoint>> {
    const request = { hash, node, ...target };
    validated(() => parseOrReject(checkpointRefSchema, request, 'inspect request'));
    return this.start<typeof inspectCheckpoint>(
      'inspectCheckpoint',
      workflowIds.inspect(hash, node),
      request,
      `Inspect ${hash} on ${node}`,
    );
  }

  /** The committed checkpoints on `filter.node`, newest first. */
  async listCheckpoints(filter: CheckpointFilter, target: Target = {}): Promise<CheckpointSummary[]> {
    const all: CheckpointSummary[] = await this.result(await this.startList(filter.node, target));
    return filter.name === undefined ? all : all.filter((c) => c.name === filter.name);
  }

  async startList(node: string, target: Target = {}): Promise<StartedWorkflow<typeof listCheckpoints>> {
    const request = { node, ...target };
    validated(() => parseOrReject(nodeRequestSchema, request, 'list request'));
    return this.start<typeof listCheckpoints>('listCheckpoints', workflowIds.list(node), request, `List checkpoints on ${node}`);
  }

  /** Deletes checkpoint `hash` on `node`. TorporError CheckpointNotFound if there is none, CheckpointInUse while a restore runs from it. */
  async deleteCheckpoint(hash: string, node: string, target: Target = {}): Promise<RemovedCheckpoint> {
    return this.result(await this.startDelete(hash, node, target));
  }

  async startDelete(hash: string, node: string, target: Target = {}): Promise<StartedWorkflow<typeof deleteCheckpoint>> {
    const request = { hash, node, ...target };
    validated(() => parseOrReject(checkpointRefSchema, request, 'delete request'));
    return this.start<typeof deleteCheckpoint>('deleteCheckpoint', workflowIds.delete(hash, node), request, `Delete ${hash} on ${node}`, {
      join: true,
    });
  }

  /** The spec hash `request.node` derives for a workload (contract/spec-hash.ts), without checkpointing it. */
  async deriveSpecHash(request: SpecHashRequest): Promise<SpecHashResult> {
    validated(() => parseOrReject(specHashRequestSchema, request, 'spec hash request'));
    const id = workflowIds.specHash(request.name, request.node);
    return this.result(await this.start<typeof specHash>('specHash', id, request, `Spec hash of ${request.name} on ${request.node}`));
  }

  /** One refresh now (what a schedule runs): checkpoint the current spec when missing, then apply retention. Joins one in flight. */
  async refresh(request: RefreshRequest): Promise<RefreshResult> {
    return this.result(await this.startRefresh(request));
  }

  async startRefresh(request: RefreshRequest): Promise<StartedWorkflow<typeof refresh>> {
    validated(() => parseOrReject(refreshRequestSchema, request, 'refresh request'));
    const id = workflowIds.refresh(request.name, request.node);
    return this.start<typeof refresh>('refresh', id, request, `Refresh ${request.name} on ${request.node}`, { join: true });
  }

  /** Garbage collection on `request.node`; joins one in flight. */
  async gc(request: GcRequest): Promise<GcResult> {
    return this.result(await this.startGc(request));
  }

  async startGc(request: GcRequest): Promise<StartedWorkflow<typeof gc>> {
    validated(() => parseOrReject(gcRequestSchema, request, 'gc request'));
    return this.start<typeof gc>('gc', workflowIds.gc(request.node), request, `Garbage collection on ${request.node}`, { join: true });
  }

  /** Creates or updates the Temporal Schedule that refreshes `request.name` on `request.node` every `request.every`. */
  async ensureRefreshSchedule(request: RefreshScheduleRequest): Promise<RefreshSchedule> {
    return this.schedules.ensure(request);
  }

  async listRefreshSchedules(filter: { node?: string } = {}): Promise<RefreshSchedule[]> {
    return this.schedules.list(filter);
  }

  async deleteRefreshSchedule(name: string, node: string): Promise<void> {
    return this.schedules.delete(name, node);
  }

  async triggerRefreshSchedule(name: string, node: string): Promise<TriggeredRefresh> {
    return this.schedules.trigger(name, node);
  }

  async backfillRefreshSchedule(name: string, node: string, window: { start: Date; end: Date }): Promise<void> {
    return this.schedules.backfill(name, node, window);
  }

  /** The result of a refresh a schedule started (see `triggerRefreshSchedule`). */
  async refreshResult(workflowId: string, runId?: string): Promise<RefreshResult> {
    return this.result(this.client.workflow.getHandle<typeof refresh>(workflowId, runId));
  }

  /** The `progress` query of a running (or finished) checkpoint or restore. */
  async progress(workflowId: string): Promise<Progress> {
    return this.client.workflow.getHandle(workflowId).query<Progress>('progress');
  }

  /** Awaits a workflow's result; its failure becomes a TorporError. */
  async result<T>(handle: { workflowId: string; result(): Promise<T> }): Promise<T> {
    return handle.result().catch((err: unknown) => Promise.reject(toTorporError(err, handle.workflowId)));
  }

  private start<W extends Workflow>(type: string, workflowId: string, request: object, summary: string, options: { join?: boolean } = {}) {
    const startOptions = {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId,
      args: [request],
      workflowIdConflictPolicy: options.join ? 'USE_EXISTING' : 'FAIL',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      staticSummary: summary,
    } as unknown as WorkflowStartOptions<W>;
    return this.client.workflow.start<W>(type, startOptions);
  }
}

/** The Temporal Web UI page of a workflow execution. */
export function workflowUiUrl(uiBase: string, namespace: string, workflowId: string, runId?: string): string {
  const base = `${uiBase.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${base}/${runId}/history` : base;
}

/** The Temporal Web UI page of a schedule. */
export function scheduleUiUrl(uiBase: string, namespace: string, scheduleId: string): string {
  return `${uiBase.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/schedules/${encodeURIComponent(scheduleId)}`;
}
