import { setTimeout as sleep } from 'node:timers/promises';
import { torporFailure } from '../../../contract/failures.js';
import { carriesHash, isRunning, type ProcessIdentity } from './identity.js';

/** How long a process may take to go after SIGKILL; longer means it is stuck in the kernel (D state). */
const KILL_WAIT_MS = 10_000;

/**
 * Stops the process group led by `id` (workloads are started as session leaders): SIGTERM, then
 * SIGKILL after `graceMs`. Acts only while PID and start time still match, so a recycled PID is safe.
 * A process still there `KILL_WAIT_MS` after SIGKILL fails the step instead of hanging it.
 */
export async function terminateGroup(id: ProcessIdentity, graceMs = 5000): Promise<boolean> {
  if (!(await isRunning(id))) return false;
  signalGroup(id.pid, 'SIGTERM');
  if (await exitsWithin(id, graceMs)) return true;
  signalGroup(id.pid, 'SIGKILL');
  if (await exitsWithin(id, KILL_WAIT_MS)) return true;
  throw torporFailure('ProcessWontExit', `Process ${id.pid} did not exit within ${KILL_WAIT_MS} ms of SIGKILL`);
}

/**
 * `terminateGroup` for a process of checkpoint `hash`: signalled only while its environment still
 * carries the hash, as the dump checks, so a record never makes the agent signal a stranger.
 */
export async function terminateWorkload(id: ProcessIdentity, hash: string, graceMs = 5000): Promise<boolean> {
  if (!(await isRunning(id)) || !(await carriesHash(id.pid, hash))) return false;
  return terminateGroup(id, graceMs);
}

async function exitsWithin(id: ProcessIdentity, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!(await isRunning(id))) return true;
    await sleep(50);
  }
  return !(await isRunning(id));
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}
