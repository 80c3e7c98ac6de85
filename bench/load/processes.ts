import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';

/** Clock ticks a second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux x86_64). */
const USER_HZ = 100;

export interface ProcUsage {
  cpuSeconds: number;
  rssBytes: number;
  peakRssBytes: number;
}

/** CPU time (user + system) and memory of a live process, from /proc. */
export function procUsage(pid: number): ProcUsage {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { cpuSeconds: ticks / USER_HZ, rssBytes: kib('VmRSS'), peakRssBytes: kib('VmHWM') };
}

/** The PID of a child of `parent` whose command name is `comm` (the dev server the SDK started). */
export function childPid(parent: number, comm: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent && name === comm) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

export interface WorkerProcess {
  pid: number;
  logFile: string;
  stop(): Promise<void>;
}

/**
 * Starts a worker script with Node and tsx (Node itself, so its PID is the worker's), its stdout and
 * stderr into `logFile`, and resolves once it prints `polling`.
 */
export async function startWorker(script: string, env: Record<string, string>, logFile: string, nice = 0): Promise<WorkerProcess> {
  const argv = [process.execPath, '--import', 'tsx', script];
  // exec'd by nice(1), so the PID stays the worker's.
  const [command, ...args] = nice === 0 ? argv : ['nice', '-n', String(nice), ...argv];
  const child: ChildProcess = spawn(command as string, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = createWriteStream(logFile);
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = once(child, 'exit');
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('polling')) resolve();
    });
    exited.then(() => reject(new Error(`${script} exited before polling; see ${logFile}`)), reject);
  });
  return {
    pid: child.pid as number,
    logFile,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The queue waits (ms) an agent logged for its heavy steps (JSON lines "heavy step started" with waitedMs). */
export function loggedQueueWaits(logFile: string): { step: string; workflowId: string; waitedMs: number }[] {
  const waits = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('"heavy step started"')) continue;
    const entry = JSON.parse(line) as { step: string; workflowId: string; waitedMs: number };
    waits.push({ step: entry.step, workflowId: entry.workflowId, waitedMs: entry.waitedMs });
  }
  return waits;
}

/** The machine's CPU time so far (/proc/stat, all cores): busy and total ticks. */
export function machineCpu(): { busy: number; total: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const total = cpu.reduce((a, b) => a + b, 0);
  // idle and iowait
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
  return { busy: total - idle, total };
}

/** The share of all cores' time that was busy between two readings. */
export function busyFraction(before: { busy: number; total: number }, after: { busy: number; total: number }): number {
  return (after.busy - before.busy) / Math.max(1, after.total - before.total);
}
