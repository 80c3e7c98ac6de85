import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { holdsOpen, identify, isRunning } from '../../activities/node/proc/identity.js';

describe('process identity and open files (real processes)', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('sees a file a process holds open, and no longer once it closed it', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'torpor-fd-'));
    dirs.push(dir);
    const file = path.join(dir, 'ready');
    const child = spawn('python3', ['-c', `import time\nf = open(${JSON.stringify(file)}, "w")\ntime.sleep(1)\nf.close()\ntime.sleep(30)`]);
    await sleep(400);
    expect(await holdsOpen(child.pid as number, file)).toBe(true);
    await sleep(1200);
    expect(await holdsOpen(child.pid as number, file)).toBe(false);
    child.kill('SIGKILL');
  });

  it('tells a process from a later one with the same PID by its start time', async () => {
    const child = spawn('sleep', ['30']);
    const id = await identify(child.pid as number);
    if (id === null) throw new Error('no process');
    expect(await isRunning(id)).toBe(true);
    expect(await isRunning({ ...id, startTime: id.startTime + 1 })).toBe(false);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(await isRunning(id)).toBe(false);
  });
});
