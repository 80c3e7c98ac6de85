import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

const TERM_GRACE_MS = 5_000;
const KILL_WAIT_MS = 5_000;

/** The CRIU processes working on exactly `dir` or below it: `<dir>-2` (a sibling dump id) is not one of them. */
async function criuWorkingOn(dir: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const argv = await readFile(`/proc/${entry}/cmdline`, 'utf8').then(
      (raw) => raw.split('\0'),
      () => [] as string[],
    );
    if (!argv.some((a) => a === 'criu' || a.endsWith('/criu'))) continue;
    if (argv.some((a) => a === dir || a.startsWith(`${dir}/`))) found.push(Number(entry));
  }
  return found;
}

async function gone(pid: number): Promise<boolean> {
  return readFile(`/proc/${pid}/stat`, 'utf8').then(
    (s) => s.slice(s.lastIndexOf(')') + 2).startsWith('Z'),
    () => true,
  );
}

/** Sends `signal` to each of `pids` and waits (bounded) for them to go; returns those still there. */
async function signalAndWait(pids: number[], signal: NodeJS.Signals, waitMs: number): Promise<number[]> {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + waitMs;
  let left = pids;
  while (left.length > 0 && Date.now() < deadline) {
    left = (await Promise.all(left.map(async (pid) => ((await gone(pid)) ? null : pid)))).filter((p) => p !== null);
    if (left.length > 0) await sleep(20);
  }
  return left;
}

/**
 * CRIU runs as a child of the agent; if the agent dies mid-dump, CRIU lives on. A retried step
 * first stops any CRIU still working on the same directory, so a half-written dump is discarded
 * and redone instead of racing a second CRIU on the same process. SIGTERM first: CRIU then cleans
 * its parasite out of the target and resumes it; SIGKILL only after a grace period.
 */
export async function killStrayCriu(workingOn: string): Promise<number[]> {
  const stray = await criuWorkingOn(workingOn);
  if (stray.length === 0) return [];
  const stubborn = await signalAndWait(stray, 'SIGTERM', TERM_GRACE_MS);
  if (stubborn.length > 0) await signalAndWait(stubborn, 'SIGKILL', KILL_WAIT_MS);
  return stray;
}
