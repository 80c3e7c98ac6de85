import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeCudaDriver } from '../../activities/node/gpu/fake-cuda-driver.js';
import { cudaMembers, GroupMemberError } from '../../activities/node/gpu/gpu-group.js';

const SOURCE = fileURLToPath(new URL('../support/fake-libcuda.c', import.meta.url));
/** What the driver answered on the GPU machine for a process of a placeholder's entrypoint. */
const odd = () => new FakeCudaDriver().failNext('getState', 'CUDA_ERROR_OPERATING_SYSTEM');

describe('a process the CUDA driver answers with an error other than "no CUDA state"', () => {
  const cleanups: Array<() => unknown> = [];
  afterAll(async () => {
    for (const undo of cleanups.reverse()) await undo();
  });

  it('is no member when it has exited since the tree was listed', async () => {
    const gone = spawnSync('true').pid;
    expect(await cudaMembers(odd(), [gone])).toEqual([]);
  });

  it('is no member when it never loaded the driver library', async () => {
    expect(await cudaMembers(odd(), [process.pid])).toEqual([]);
  });

  it('fails the step, naming its PID, when it has the driver library mapped', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'gpu-member-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const library = path.join(dir, 'libcuda.so.1');
    execFileSync('cc', ['-shared', '-fPIC', '-o', library, SOURCE]);
    const child = spawn('sleep', ['30'], { env: { ...process.env, LD_PRELOAD: library }, stdio: 'ignore' });
    cleanups.push(() => child.kill('SIGKILL'));
    const pid = child.pid as number;
    for (let i = 0; i < 100 && !(await readFile(`/proc/${pid}/maps`, 'utf8').catch(() => '')).includes('libcuda.so'); i++) await sleep(20);
    const failure = await cudaMembers(odd(), [pid]).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(GroupMemberError);
    expect(failure).toMatchObject({ pid, step: 'state' });
    expect(String((failure as Error).message)).toMatch(/CUDA_ERROR_OPERATING_SYSTEM/);
  });
});
