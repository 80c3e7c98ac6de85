import { setTimeout as sleep } from 'node:timers/promises';
import { isRunning, type ProcessIdentity } from './identity.js';

/**
 * Stops the process group led by `id` (workloads are started as session leaders): SIGTERM, then
 * SIGKILL after `graceMs`. Acts only while PID and start time still match, so a recycled PID is safe.
 */
export async function terminateGroup(id: ProcessIdentity, graceMs = 5000): Promise<boolean> {
  if (!(await isRunning(id))) return false;
  signalGroup(id.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!(await isRunning(id))) return true;
    await sleep(100);
  }
  if (await isRunning(id)) signalGroup(id.pid, 'SIGKILL');
  while (await isRunning(id)) await sleep(50);
  return true;
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
