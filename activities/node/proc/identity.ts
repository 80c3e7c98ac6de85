import { readdir, readFile, readlink } from 'node:fs/promises';
import { ChrekEnv } from '../../../contract/chrek.js';

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

/**
 * True when `pid` runs with DYN_CHECKPOINT_HASH=<hash> in its environment: how the agent tells its
 * own workloads and restored copies from any other process that got their PID.
 */
export async function carriesHash(pid: number, hash: string): Promise<boolean> {
  const env = await readEnviron(pid).catch(() => ({}) as Record<string, string>);
  return env[ChrekEnv.hash] === hash;
}

export async function readComm(pid: number): Promise<string> {
  try {
    return (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
  } catch {
    return '?';
  }
}

/** What each of `pid`'s open fds points at (/proc/<pid>/fd links); empty once it is gone. */
async function openFiles(pid: number): Promise<string[]> {
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => []);
  return Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
}

/** True while `pid` has `file` open (one of its /proc/<pid>/fd links points at it). */
export async function holdsOpen(pid: number, file: string): Promise<boolean> {
  return (await openFiles(pid)).includes(file);
}

/** `pid` and all its descendants, as CRIU's --tree sees them (children of every thread). */
export async function processTree(pid: number): Promise<number[]> {
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    const parent = tree[i] as number;
    const tasks = await readdir(`/proc/${parent}/task`).catch(() => []);
    for (const tid of tasks) {
      const children = await readFile(`/proc/${parent}/task/${tid}/children`, 'utf8').catch(() => '');
      tree.push(...children.split(' ').filter(Boolean).map(Number));
    }
  }
  return tree;
}

/** The processes of `pid`'s tree that hold an io_uring instance, which CRIU cannot checkpoint. */
export async function ioUringHolders(pid: number): Promise<number[]> {
  const holders: number[] = [];
  for (const member of await processTree(pid)) {
    if ((await openFiles(member)).includes('anon_inode:[io_uring]')) holders.push(member);
  }
  return holders;
}
