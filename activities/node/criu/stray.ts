import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * CRIU runs as a child of the agent; if the agent dies mid-dump, CRIU lives on. A retried step
 * first kills any CRIU still working on the same directory, so a half-written dump is discarded
 * and redone instead of racing a second CRIU on the same process.
 */
export async function killStrayCriu(workingOn: string): Promise<number[]> {
  const killed: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const argv = await readFile(`/proc/${entry}/cmdline`, 'utf8').then(
      (raw) => raw.split('\0'),
      () => [],
    );
    if (!argv.some((a) => a.endsWith('criu')) || !argv.some((a) => a.startsWith(workingOn))) continue;
    try {
      process.kill(Number(entry), 'SIGKILL');
      killed.push(Number(entry));
    } catch {
      // already gone
    }
  }
  for (const pid of killed) {
    while (
      await readFile(`/proc/${pid}/stat`, 'utf8').then(
        (s) => !s.slice(s.lastIndexOf(')') + 2).startsWith('Z'),
        () => false,
      )
    ) {
      await sleep(20);
    }
  }
  return killed;
}
