import type { Client } from '@temporalio/client';
import type { ContainerCheckpointRequest, ContainerRestoreRequest } from '../contract/containers.js';
import type { CheckpointRequest, GcRequest, RefreshRequest, RefreshScheduleRequest, SpecHashRequest } from '../contract/spec.js';
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
} from '../workflows/index.js';
import {
  type RestoreStart,
  startCheckpointWorkflow,
  startDeleteWorkflow,
  startGcWorkflow,
  startInspectWorkflow,
  startListWorkflow,
  startRefreshWorkflow,
  startRestoreWorkflow,
  startSpecHashWorkflow,
  type Target,
} from './checkpoint-workflows.js';
import { startContainerCheckpointWorkflow, startContainerRestoreWorkflow } from './container-workflows.js';
import { toTorporError } from './errors.js';
import { type RefreshSchedule, RefreshSchedules, type TriggeredRefresh } from './schedules.js';
import type { StartedWorkflow } from './start-workflow.js';

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
export type { RestoreStart } from './checkpoint-workflows.js';
export { TorporError } from './errors.js';
export { AesGcmPayloadCodec, PayloadCodecError, payloadCodecFromEnv, torporDataConverter } from './payload-codec.js';
export type { RefreshSchedule, TriggeredRefresh } from './schedules.js';
export { scheduleUiUrl, workflowUiUrl } from './ui-links.js';

export interface CheckpointFilter {
  node: string;
  /** Only the spec hashes of this workload name. */
  name?: string;
}

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
    return startCheckpointWorkflow(this.client, request);
  }

  async startRestore(request: RestoreStart): Promise<StartedWorkflow<typeof restore>> {
    return startRestoreWorkflow(this.client, request);
  }

  /**
   * Checkpoints a running container on `request.node` (runc checkpoint; the container keeps
   * running). One workflow per hash and node: a second request joins the first.
   */
  async startContainerCheckpoint(request: ContainerCheckpointRequest): Promise<StartedWorkflow<typeof containerCheckpoint>> {
    return startContainerCheckpointWorkflow(this.client, request);
  }

  /** Restores a container checkpoint into a running placeholder container; a second request for the same placeholder joins the first. */
  async startContainerRestore(request: ContainerRestoreRequest): Promise<StartedWorkflow<typeof containerRestore>> {
    return startContainerRestoreWorkflow(this.client, request);
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
    return startInspectWorkflow(this.client, hash, node, target);
  }

  /** The committed checkpoints on `filter.node`, newest first. */
  async listCheckpoints(filter: CheckpointFilter, target: Target = {}): Promise<CheckpointSummary[]> {
    const all: CheckpointSummary[] = await this.result(await this.startList(filter.node, target));
    return filter.name === undefined ? all : all.filter((c) => c.name === filter.name);
  }

  async startList(node: string, target: Target = {}): Promise<StartedWorkflow<typeof listCheckpoints>> {
    return startListWorkflow(this.client, node, target);
  }

  /** Deletes checkpoint `hash` on `node`. TorporError CheckpointNotFound if there is none, CheckpointInUse while a restore runs from it. */
  async deleteCheckpoint(hash: string, node: string, target: Target = {}): Promise<RemovedCheckpoint> {
    return this.result(await this.startDelete(hash, node, target));
  }

  async startDelete(hash: string, node: string, target: Target = {}): Promise<StartedWorkflow<typeof deleteCheckpoint>> {
    return startDeleteWorkflow(this.client, hash, node, target);
  }

  /** The spec hash `request.node` derives for a workload (contract/spec-hash.ts), without checkpointing it. */
  async deriveSpecHash(request: SpecHashRequest): Promise<SpecHashResult> {
    return this.result(await startSpecHashWorkflow(this.client, request));
  }

  /** One refresh now (what a schedule runs): checkpoint the current spec when missing, then apply retention. Joins one in flight. */
  async refresh(request: RefreshRequest): Promise<RefreshResult> {
    return this.result(await this.startRefresh(request));
  }

  async startRefresh(request: RefreshRequest): Promise<StartedWorkflow<typeof refresh>> {
    return startRefreshWorkflow(this.client, request);
  }

  /** Garbage collection on `request.node`; joins one in flight. */
  async gc(request: GcRequest): Promise<GcResult> {
    return this.result(await this.startGc(request));
  }

  async startGc(request: GcRequest): Promise<StartedWorkflow<typeof gc>> {
    return startGcWorkflow(this.client, request);
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
}
