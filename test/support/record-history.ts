import { writeFile } from 'node:fs/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { payloadCodecFromEnv } from '../../client/payload-codec.js';
import { decodedHistoryJson } from './history-payloads.js';

/**
 * Set by `npm run record-histories` (dev/record-histories.ts): the tests that run a workflow worth
 * guarding save its history into test/histories, which test/replay.test.ts replays.
 */
export const RECORDING_HISTORIES = process.env.TORPOR_RECORD_HISTORIES === '1';

/** Saves the execution's history as `test/histories/<name>.json` when recording; otherwise nothing. */
export async function recordHistory(handle: WorkflowHandle, name: string): Promise<void> {
  if (!RECORDING_HISTORIES) return;
  const history = await handle.fetchHistory();
  const json = await decodedHistoryJson(historyToJSON(history), payloadCodecFromEnv());
  await writeFile(new URL(`../histories/${name}.json`, import.meta.url), `${json}\n`);
  console.log(`recorded ${name} (${history.events?.length ?? 0} events)`);
}
