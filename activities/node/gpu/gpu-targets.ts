import { torporFailure } from '../../../contract/failures.js';
import type { GpuTarget } from '../../../contract/gpu-types.js';
import { carriesHash, isRunning, type ProcessIdentity } from '../proc/identity.js';
import type { StoreLayout } from '../store/layout.js';
import { type RestoredRecord, readRecord, type WorkloadRecord } from '../store/run-records.js';

export interface ResolvedTarget {
  id: ProcessIdentity;
  /** False when the recorded process no longer runs (same PID and start time). */
  running: boolean;
}

/**
 * Finds the process a GPU step acts on from the agent's own records, never from a PID in the input:
 * the checkpoint workload this agent started (`.runs/<hash>/workload.json`) or the process one of
 * its restores brought back (`.restores/<hash>/<restoreId>/restored.json`). A running process must
 * still carry the checkpoint's hash in its environment.
 */
export async function resolveGpuTarget(layout: StoreLayout, target: GpuTarget): Promise<ResolvedTarget> {
  const { hash, restoreId } = target;
  const record =
    restoreId === undefined
      ? await readRecord<WorkloadRecord>(layout.workloadRecord(hash))
      : await readRecord<RestoredRecord>(layout.restoreFiles(hash, restoreId).record);
  if (record === null) {
    const what = restoreId === undefined ? `No workload for checkpoint ${hash}` : `Restore ${restoreId} of ${hash}`;
    throw torporFailure('TargetNotAllowed', `${what} was not made by this agent`);
  }
  const id: ProcessIdentity = { pid: record.pid, startTime: record.startTime };
  if (!(await isRunning(id))) return { id, running: false };
  if (!(await carriesHash(id.pid, hash))) {
    throw torporFailure('TargetNotAllowed', `Process ${id.pid} is not a workload of checkpoint ${hash}`);
  }
  return { id, running: true };
}
