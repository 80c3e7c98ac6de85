import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import { exists, processesOfCheckpoint, temporaryDumps } from './leftovers.js';

/**
 * What "the world as it was" means after a failed or cancelled checkpoint: no process of the
 * workload, no temporary dump, no run or signal file, and a checkpoint directory only if the
 * failure came after the commit (then complete, with its marker).
 */
export async function expectWorldClean(storage: string, hash: string, checkpoint: 'absent' | 'committed'): Promise<void> {
  expect(await processesOfCheckpoint(hash), 'processes of the workload').toEqual([]);
  expect(await temporaryDumps(storage), 'temporary dumps').toEqual([]);
  expect(await exists(path.join(storage, '.signals', `${hash}.done`)), 'signal file').toBe(false);
  const runFiles = await readdir(path.join(storage, '.runs', hash)).catch(() => []);
  expect(
    runFiles.filter((f) => f !== 'workload.log'),
    'run files',
  ).toEqual([]);
  if (checkpoint === 'absent') {
    expect(await exists(path.join(storage, hash)), 'checkpoint directory').toBe(false);
  } else {
    expect(await exists(path.join(storage, hash, 'checkpoint.done')), 'checkpoint marker').toBe(true);
  }
}
