import { readdir, readFile, readlink } from 'node:fs/promises';

/** A PID alone can be reused; PID plus start time (clock ticks since boot) names one process. */
export interface ProcessIdentity {
  pid: number;
  startTime: number;
}

export interface ProcessStat {
  state: string;
  startTime: number;
  pgid: number;
}

/** Parses /proc/<pid>/stat; the command name may hold spaces and parentheses, so split after the last ')'. */
export function parseProcStat(stat: string): ProcessStat {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0] ?? '?';
  const pgid = Number(fields[2]);
  const startTime = Number(fields[19]);
  if (!Number.isFinite(startTime) || !Number.isFinite(pgid)) throw new Error(`unparseable /proc stat: ${stat}`);
  return { state, startTime, pgid };
}

export async function readProcStat(pid: number): Promise<ProcessStat | null> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** True while the exact process runs; a zombie or a recycled PID counts as gone. */
export async function isRunning(id: ProcessIdentity): Promise<boolean> {
  const stat = await readProcStat(id.pid);
  return stat !== null && stat.startTime === id.startTime && stat.state !== 'Z' && stat.state !== 'X';
}

export async function identify(pid: number): Promise<ProcessIdentity | null> {
  const stat = await readProcStat(pid);
  return stat === null ? null : { pid, startTime: stat.startTime };
}

export async function readEnviron(pid: number): Promise<Record<string, string>> {
  const raw = await readFile(`/proc/${pid}/environ`, 'utf8');
  const env: Record<string, string> = {};
  for (const entry of raw.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

export async function readComm(pid: number): Promise<string> {
  try {
    return (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
  } catch {
    return '?';
  }
}

/** True while `pid` has `file` open (one of its /proc/<pid>/fd links points at it). */
export async function holdsOpen(pid: number, file: string): Promise<boolean> {
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => []);
  for (const fd of fds) {
    if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === file) return true;
  }
  return false;
}
