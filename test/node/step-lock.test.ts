import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stepLockFile, stepLockKey, withStepLock } from '../../activities/node/step-lock.js';

// Real flock(2) and flock(1): the lock a step takes in the agent's process must be the one another
// agent process, or an operator's flock(1), sees on the same store.
let lockDir: string;
beforeAll(async () => {
  lockDir = await mkdtemp(path.join(os.tmpdir(), 'torpor-step-lock-'));
});
afterAll(async () => {
  await rm(lockDir, { recursive: true, force: true });
});

const fileOf = (hash: string) => stepLockFile(lockDir, stepLockKey('dumpWorkload', { hash }) ?? '');
/** Whether another process could take the lock right now (flock(1), not waiting). */
const freeForOthers = async (file: string) => (await execa('flock', ['--nonblock', file, 'true'], { reject: false })).exitCode === 0;

async function childCommands(): Promise<string[]> {
  const tasks = await readdir(`/proc/${process.pid}/task`);
  const lists = await Promise.all(tasks.map((t) => readFile(`/proc/${process.pid}/task/${t}/children`, 'utf8').catch(() => '')));
  const pids = lists.flatMap((l) => l.split(' ').filter(Boolean));
  return Promise.all(
    pids.map((pid) =>
      readFile(`/proc/${pid}/comm`, 'utf8').then(
        (c) => c.trim(),
        () => '',
      ),
    ),
  );
}

describe('the step lock', () => {
  it('is held in the agent process itself (no flock holder spawned), visible to other processes, and dropped after the step', async () => {
    const file = fileOf('in-process');
    const seen = await withStepLock(lockDir, 'dumpWorkload', { hash: 'in-process' }, async () => ({
      free: await freeForOthers(file),
      children: await childCommands(),
    }));
    expect(seen.free).toBe(false);
    expect(seen.children).not.toContain('flock');
    expect(await freeForOthers(file)).toBe(true);
  });

  it('waits for a lock another process holds, and runs the step only after it is released', async () => {
    const file = fileOf('held-elsewhere');
    const other = execa('flock', [file, 'sh', '-c', 'echo held; read line'], { stdin: 'pipe' });
    await new Promise<void>((resolve) => other.stdout?.once('data', () => resolve()));
    const order: string[] = [];
    const step = withStepLock(lockDir, 'dumpWorkload', { hash: 'held-elsewhere' }, async () => {
      order.push('step');
      return freeForOthers(file);
    });
    await new Promise((r) => setTimeout(r, 300));
    order.push('released');
    other.stdin?.end('\n');
    await other;
    expect(await step).toBe(false);
    expect(order).toEqual(['released', 'step']);
  });
});
