import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { identify } from '../proc/identity.js';
import type { StoreLayout } from '../store/layout.js';
import { type RestoredRecord, readRecord, writeRecord } from '../store/run-records.js';

/** The restore ID a placeholder's restore is recorded under: from its container ID, so a retried step finds the same record. */
export function placeholderRestoreId(containerId: string): string {
  return `placeholder-${createHash('sha256').update(containerId).digest('hex').slice(0, 40)}`;
}

/**
 * Records the tree restored into a placeholder as a local restore records its process
 * (`.restores/<hash>/<restoreId>/restored.json`, the host's PID and start time): while it runs, the
 * checkpoint is in use on this node (a delete refuses, and the lease on the shared store's copy is
 * renewed); once it is gone, gc and the checkpoint's delete remove the record. A tree that already
 * exited leaves nothing to record.
 */
export async function recordPlaceholderRestore(
  layout: StoreLayout,
  hash: string,
  restored: { placeholderContainerId: string; hostPid: number; restoreMs: number },
): Promise<void> {
  const restoreId = placeholderRestoreId(restored.placeholderContainerId);
  const files = layout.restoreFiles(hash, restoreId);
  const id = await identify(restored.hostPid);
  if (id === null) return;
  const earlier = await readRecord<RestoredRecord>(files.record);
  if (earlier?.pid === id.pid && earlier.startTime === id.startTime) return;
  await mkdir(files.dir, { recursive: true, mode: 0o700 });
  const record: RestoredRecord = {
    ...id,
    hash,
    restoreId,
    logFile: '',
    criuMs: restored.restoreMs,
    placeholderContainerId: restored.placeholderContainerId,
  };
  await writeRecord(files.record, record);
}
