import type { WorkflowHandle } from '@temporalio/client';

/** Every attempt Temporal started of `activity` in the workflow's history, and how many of them timed out. */
export async function attemptsOf(handle: WorkflowHandle, activity: string): Promise<{ attempts: number[]; timedOut: number }> {
  const history = await handle.fetchHistory();
  const events = history.events ?? [];
  const scheduled = new Set(
    events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === activity).map((e) => String(e.eventId)),
  );
  const attempts = events
    .filter((e) => scheduled.has(String(e.activityTaskStartedEventAttributes?.scheduledEventId)))
    .map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 0);
  const timedOut = events.filter((e) => scheduled.has(String(e.activityTaskTimedOutEventAttributes?.scheduledEventId))).length;
  return { attempts, timedOut };
}
