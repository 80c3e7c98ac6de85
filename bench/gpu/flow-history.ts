import type { WorkflowHandle } from '@temporalio/client';
import { decodeFromPayloadsAtIndex, loadDataConverter } from '@temporalio/common/lib/internal-non-workflow/index.js';
import { torporDataConverter } from '../../client/payload-codec.js';

/** One activity of a workflow run as its history tells it: its result (decrypted) and its wall time. */
export interface ActivityRecord {
  activity: string;
  /** Scheduled → completed, as the server stamped it (queueing and retries included). */
  wallMs: number;
  result: unknown;
}

const millis = (t: { seconds?: { toNumber(): number } | number | null; nanos?: number | null } | null | undefined) =>
  t ? Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : 0;

/**
 * Every completed activity of a finished workflow, in order, with the figures the activities
 * report themselves (CRIU ms, GPU restore and unlock ms, verified bytes): the workflow's result
 * carries its per-step wall times only.
 */
export async function activityRecords(handle: WorkflowHandle): Promise<ActivityRecord[]> {
  const converter = loadDataConverter(torporDataConverter());
  const history = await handle.fetchHistory();
  const scheduled = new Map<string, { activity: string; atMs: number }>();
  const records: ActivityRecord[] = [];
  for (const event of history.events ?? []) {
    const id = String(event.eventId);
    const at = millis(event.eventTime);
    const s = event.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(id, { activity: s.activityType?.name ?? '?', atMs: at });
    const done = event.activityTaskCompletedEventAttributes;
    if (!done) continue;
    const origin = scheduled.get(String(done.scheduledEventId));
    const result = await decodeFromPayloadsAtIndex(converter, 0, done.result?.payloads).catch((err: unknown) => `undecodable: ${err}`);
    records.push({ activity: origin?.activity ?? '?', wallMs: origin ? at - origin.atMs : 0, result });
  }
  return records;
}
