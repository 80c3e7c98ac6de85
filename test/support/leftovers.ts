import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';

/** PIDs of live processes whose environment carries DYN_CHECKPOINT_HASH=<hash>. */
export async function processesOfCheckpoint(hash: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const environ = await readFile(`/proc/${entry}/environ`, 'utf8');
      if (environ.split('\0').includes(`DYN_CHECKPOINT_HASH=${hash}`)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/** Temporary dumps still lying in the storage root. */
export async function temporaryDumps(storage: string): Promise<string[]> {
  return readdir(path.join(storage, '.tmp')).catch(() => []);
}

export async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Kills whatever still runs for `hash` (test clean-up only). */
export async function killCheckpointProcesses(hash: string): Promise<void> {
  for (const pid of await processesOfCheckpoint(hash)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
