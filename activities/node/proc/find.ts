import { readdir } from 'node:fs/promises';
import { type ProcessIdentity, readEnviron, readProcStat } from './identity.js';

/**
 * The process group leader whose environment holds every variable of `match`: how a retried start
 * finds the workload an interrupted attempt spawned before it could record its PID.
 */
export async function findLeaderByEnv(match: Record<string, string>): Promise<ProcessIdentity | null> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const env = await readEnviron(pid).catch(() => null);
    if (env === null || !Object.entries(match).every(([name, value]) => env[name] === value)) continue;
    const stat = await readProcStat(pid);
    if (stat === null || stat.pgid !== pid || stat.state === 'Z') continue;
    return { pid, startTime: stat.startTime };
  }
  return null;
}
