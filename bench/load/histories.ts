import proto from '@temporalio/proto';

const { temporal } = proto;

type History = proto.temporal.api.history.v1.IHistory;
type Event = proto.temporal.api.history.v1.IHistoryEvent;
const { EventType } = temporal.api.enums.v1;

/** Temporal's own limits on one execution's history (the server fails a workflow past them). */
export const HISTORY_LIMITS = { events: 51_200, bytes: 50 * 2 ** 20 };

/**
 * What one workflow's history says about where its time went, all from the server's event times:
 * - wallMs: WorkflowExecutionStarted → the closing event;
 * - activityMs: Σ over its activities of ActivityTaskStarted → completion (the agent running the step,
 *   a wait in the agent's heavy-step queue included);
 * - overheadMs = wallMs − activityMs: orchestration (workflow tasks queued and run on the control
 *   worker, activities queued until an agent polls them, results carried back);
 * - scheduleToStartMs (each activity's wait for an agent poll), workflowTaskQueueMs (each workflow
 *   task's wait for the control worker) and workflowTaskRunMs (its run there).
 */
export interface HistoryFigures {
  events: number;
  bytes: number;
  wallMs: number;
  activityMs: number;
  overheadMs: number;
  scheduleToStartMs: number[];
  workflowTaskQueueMs: number[];
  workflowTaskRunMs: number[];
}

function ms(event: Event): number {
  const t = event.eventTime;
  return Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;
}

const ACTIVITY_CLOSED = new Set([
  EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
  EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
  EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
  EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
]);

/** The scheduled event id an activity or workflow task event refers to. */
function scheduledId(e: Event): number {
  const a =
    e.activityTaskStartedEventAttributes ??
    e.activityTaskCompletedEventAttributes ??
    e.activityTaskFailedEventAttributes ??
    e.activityTaskTimedOutEventAttributes ??
    e.activityTaskCanceledEventAttributes ??
    e.workflowTaskStartedEventAttributes ??
    e.workflowTaskCompletedEventAttributes;
  return Number(a?.scheduledEventId ?? 0);
}

export function historyFigures(history: History): HistoryFigures {
  const events = history.events ?? [];
  const at = new Map<number, number>(events.map((e) => [Number(e.eventId), ms(e)]));
  const started = new Map<number, number>();
  const figures = { scheduleToStartMs: [] as number[], workflowTaskQueueMs: [] as number[], workflowTaskRunMs: [] as number[] };
  let activityMs = 0;
  for (const e of events) {
    const scheduled = at.get(scheduledId(e)) ?? 0;
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED) {
      started.set(scheduledId(e), ms(e));
      figures.scheduleToStartMs.push(ms(e) - scheduled);
    } else if (e.eventType !== null && e.eventType !== undefined && ACTIVITY_CLOSED.has(e.eventType)) {
      activityMs += ms(e) - (started.get(scheduledId(e)) ?? ms(e));
    } else if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED) {
      figures.workflowTaskQueueMs.push(ms(e) - scheduled);
      started.set(scheduledId(e), ms(e));
    } else if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) {
      figures.workflowTaskRunMs.push(ms(e) - (started.get(scheduledId(e)) ?? ms(e)));
    }
  }
  const first = events[0];
  const last = events[events.length - 1];
  const wallMs = first && last ? ms(last) - ms(first) : 0;
  const bytes = temporal.api.history.v1.History.encode(history).finish().length;
  return { events: events.length, bytes, wallMs, activityMs, overheadMs: wallMs - activityMs, ...figures };
}

/** The p-th percentile (nearest rank) of `xs`; 0 when empty. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}
