import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Client,
  ScheduleAlreadyRunning,
  type ScheduleDescription,
  type ScheduleHandle,
  type ScheduleOptions,
  ScheduleOverlapPolicy,
} from '@temporalio/client';
import { CONTROL_TASK_QUEUE } from '../contract/naming.js';
import { TorporNode } from '../contract/search-attributes.js';
import { parseOrReject, type RefreshRequest, type RefreshScheduleRequest, refreshScheduleSchema } from '../contract/spec.js';
import { TorporError, toTorporError, validated } from './errors.js';
import { workflowIds } from './workflow-ids.js';

/** A refresh schedule as callers see it. */
export interface RefreshSchedule {
  scheduleId: string;
  name: string;
  node: string;
  everyMs: number;
  keep: number;
  paused: boolean;
  overlap: string;
  /** ISO times of the next few runs. */
  nextRunsAt: string[];
  numRuns: number;
  numSkippedOverlap: number;
  lastRun: { workflowId: string; runId: string; takenAt: string } | null;
  request: RefreshRequest;
}

/** What a trigger (or backfill) did: started a refresh, or skipped it because one still runs. */
export type TriggeredRefresh =
  | { scheduleId: string; skipped: false; workflowId: string; runId: string }
  | { scheduleId: string; skipped: true; runningWorkflowId: string | null };

const MEMO_KEY = 'torporRefresh';
const TRIGGER_TIMEOUT_MS = 30_000;

function toRefreshSchedule(scheduleId: string, d: ScheduleDescription): RefreshSchedule {
  const action = d.action as { args?: unknown[] };
  const request = (action.args?.[0] ?? {}) as RefreshRequest;
  const last = [...d.info.recentActions].sort((a, b) => a.takenAt.getTime() - b.takenAt.getTime()).at(-1);
  return {
    scheduleId,
    name: request.name,
    node: request.node,
    everyMs: d.spec.intervals?.[0]?.every ?? 0,
    keep: request.keep ?? 3,
    paused: d.state.paused,
    overlap: d.policies.overlap ?? 'unknown',
    nextRunsAt: d.info.nextActionTimes.map((t) => t.toISOString()),
    numRuns: d.info.numActionsTaken,
    numSkippedOverlap: d.info.numActionsSkippedOverlap,
    lastRun: last
      ? {
          workflowId: last.action.workflow.workflowId,
          runId: last.action.workflow.firstExecutionRunId,
          takenAt: last.takenAt.toISOString(),
        }
      : null,
    request,
  };
}

/** Temporal Schedules that run the `refresh` workflow, one per workload name and node; overlapping runs are skipped. */
export class RefreshSchedules {
  constructor(private readonly client: Client) {}

  /** Creates the schedule of `request.name` on `request.node`, or updates it to `request`. */
  async ensure(request: RefreshScheduleRequest): Promise<RefreshSchedule> {
    const spec = validated(() => parseOrReject(refreshScheduleSchema, request, 'refresh schedule'));
    const { every: _every, paused: _paused, ...refresh } = request;
    const scheduleId = workflowIds.refreshSchedule(spec.name, spec.node);
    // A run still checkpointing when the next is due makes that one pointless: skip it.
    const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: spec.every };
    const options: ScheduleOptions = {
      scheduleId,
      spec: { intervals: [{ every: spec.every }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'refresh',
        taskQueue: CONTROL_TASK_QUEUE,
        workflowId: workflowIds.refresh(spec.name, spec.node),
        args: [refresh],
        typedSearchAttributes: [{ key: TorporNode, value: spec.node }],
        staticSummary: `Refresh ${spec.name} on ${spec.node} (keep ${spec.keep})`,
      },
      policies,
      state: { paused: spec.paused, note: `torpor refresh of ${spec.name} every ${spec.every} ms` },
      memo: { [MEMO_KEY]: { name: spec.name, node: spec.node } },
    };
    try {
      await this.client.schedule.create(options);
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw toTorporError(err);
      await this.client.schedule.getHandle(scheduleId).update((previous) => ({
        ...previous,
        spec: options.spec,
        action: options.action,
        policies,
        state: { ...previous.state, paused: spec.paused },
      }));
    }
    return this.describe(spec.name, spec.node);
  }

  async describe(name: string, node: string): Promise<RefreshSchedule> {
    const scheduleId = workflowIds.refreshSchedule(name, node);
    return toRefreshSchedule(scheduleId, await this.describeHandle(this.client.schedule.getHandle(scheduleId)));
  }

  /** Every refresh schedule (of `node`, when given). Schedules show up in this listing within a second or so. */
  async list(filter: { node?: string } = {}): Promise<RefreshSchedule[]> {
    const found: RefreshSchedule[] = [];
    for await (const summary of this.client.schedule.list()) {
      const memo = summary.memo?.[MEMO_KEY] as { name: string; node: string } | undefined;
      if (!memo || (filter.node !== undefined && memo.node !== filter.node)) continue;
      const described = await this.describe(memo.name, memo.node).catch(() => null);
      if (described) found.push(described);
    }
    return found.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
  }

  async delete(name: string, node: string): Promise<void> {
    await this.client.schedule
      .getHandle(workflowIds.refreshSchedule(name, node))
      .delete()
      .catch((err: unknown) => Promise.reject(toTorporError(err)));
  }

  /** Runs the schedule's refresh now, unless one still runs (overlap policy SKIP); says which it was. */
  async trigger(name: string, node: string): Promise<TriggeredRefresh> {
    const handle = this.client.schedule.getHandle(workflowIds.refreshSchedule(name, node));
    const before = await this.describeHandle(handle);
    await handle.trigger(ScheduleOverlapPolicy.SKIP);
    return this.awaitAction(handle, before);
  }

  /** Runs the refreshes the schedule would have run between `start` and `end` (overlapping ones skipped). */
  async backfill(name: string, node: string, window: { start: Date; end: Date }): Promise<void> {
    if (!(window.start < window.end)) throw new TorporError('InvalidSpec', 'Invalid backfill: start must be before end');
    await this.client.schedule
      .getHandle(workflowIds.refreshSchedule(name, node))
      .backfill({ ...window, overlap: ScheduleOverlapPolicy.SKIP })
      .catch((err: unknown) => Promise.reject(toTorporError(err)));
  }

  private async describeHandle(handle: ScheduleHandle): Promise<ScheduleDescription> {
    return handle.describe().catch((err: unknown) => Promise.reject(toTorporError(err)));
  }

  /** A trigger is asynchronous: wait until the schedule took the action or counted it as skipped. */
  private async awaitAction(handle: ScheduleHandle, before: ScheduleDescription): Promise<TriggeredRefresh> {
    const deadline = Date.now() + TRIGGER_TIMEOUT_MS;
    const scheduleId = handle.scheduleId;
    while (Date.now() < deadline) {
      const now = await this.describeHandle(handle);
      if (now.info.numActionsTaken > before.info.numActionsTaken) {
        const taken = [...now.info.recentActions].sort((a, b) => a.takenAt.getTime() - b.takenAt.getTime()).at(-1);
        if (taken) {
          const { workflowId, firstExecutionRunId } = taken.action.workflow;
          return { scheduleId, skipped: false, workflowId, runId: firstExecutionRunId };
        }
      }
      if (now.info.numActionsSkippedOverlap > before.info.numActionsSkippedOverlap) {
        return { scheduleId, skipped: true, runningWorkflowId: now.info.runningActions[0]?.workflow.workflowId ?? null };
      }
      await sleep(200);
    }
    throw new TorporError('Unknown', `Schedule ${scheduleId} did not act on the trigger within ${TRIGGER_TIMEOUT_MS / 1000} s`);
  }
}
