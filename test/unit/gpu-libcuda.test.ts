import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CudaCheckpointDriver } from '../../activities/node/gpu/cuda-checkpoint-driver.js';
import { freezeGroup, thawGroup } from '../../activities/node/gpu/gpu-group.js';
import { readGpuState } from '../../activities/node/gpu/gpu-steps.js';
import { loadLibcudaDriver } from '../../activities/node/gpu/libcuda-driver.js';

const SOURCE = fileURLToPath(new URL('../support/fake-libcuda.c', import.meta.url));
const PID = 31337;

describe('libcuda FFI binding (against a fake libcuda built from test/support/fake-libcuda.c)', () => {
  let dir: string;
  let driver: CudaCheckpointDriver;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'torpor-fakecuda-'));
    const lib = path.join(dir, 'libfakecuda.so');
    execFileSync('cc', ['-shared', '-fPIC', '-o', lib, SOURCE]);
    process.env.FAKE_LIBCUDA_DIR = dir;
    const loaded = loadLibcudaDriver(lib);
    if (loaded === null) throw new Error('the fake libcuda did not load');
    driver = loaded;
  });

  it('reports no driver on a node without libcuda', () => {
    expect(loadLibcudaDriver(path.join(os.tmpdir(), 'no-such-libcuda.so.1'))).toBeNull();
  });

  it('passes the lock timeout in the first field of CUcheckpointLockArgs and reads states back', async () => {
    await writeFile(path.join(dir, String(PID)), '0\n');
    expect(await driver.getState(PID)).toBe('running');
    await driver.lock(PID, 12_345);
    expect((await readFile(path.join(dir, `${PID}.lock-timeout`), 'utf8')).trim()).toBe('12345 0');
    expect(await driver.getState(PID)).toBe('locked');
    expect(await driver.restoreThreadId(PID)).toBe(PID + 1);
    await driver.unlock(PID);
  });

  it("names a failing call by the driver's error name", async () => {
    await writeFile(path.join(dir, String(PID)), '0\n');
    await expect(driver.checkpoint(PID)).rejects.toThrow('cuCheckpointProcessCheckpoint failed: CUDA_ERROR_ILLEGAL_STATE (401)');
  });

  it('takes a process through freeze and thaw without blocking the event loop', async () => {
    await writeFile(path.join(dir, String(PID)), '0\n');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    const frozen = await freezeGroup(driver, [PID], 1000);
    const thawed = await thawGroup(driver, [PID]);
    clearInterval(timer);
    expect(frozen.members).toEqual([{ pid: PID, before: 'running' }]);
    expect(thawed.members).toEqual([{ pid: PID, before: 'checkpointed' }]);
    expect(await readGpuState(driver, PID)).toBe('running');
    // The fake's checkpoint and restore each take 300 ms on koffi's worker threads.
    expect(frozen.checkpointMs + thawed.restoreMs).toBeGreaterThanOrEqual(550);
    expect(ticks).toBeGreaterThan(10);
  });

  it('reads a PID without CUDA state as "none"', async () => {
    expect(await readGpuState(driver, 1)).toBe('none');
  });

  it('passes UUID pairs in CUcheckpointRestoreArgs (64 bytes, CUuuid as 16 raw bytes) and logs state changes in order', async () => {
    const pid = PID + 7;
    await writeFile(path.join(dir, String(pid)), '2\n');
    const pairs = [
      { oldUuid: 'GPU-1b2c3d4e-0000-1111-2222-3333444455ff', newUuid: 'GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee' },
      { oldUuid: 'GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee', newUuid: 'GPU-1b2c3d4e-0000-1111-2222-3333444455ff' },
    ];
    await driver.restore(pid, pairs);
    await driver.unlock(pid);
    const written = (await readFile(path.join(dir, `${pid}.gpu-pairs`), 'utf8')).trim().split('\n');
    expect(written).toEqual(pairs.map((p) => `${p.oldUuid} ${p.newUuid}`));
    const log = (await readFile(path.join(dir, 'calls.log'), 'utf8')).trim().split('\n');
    expect(log.slice(-2)).toEqual([`restore ${pid}`, `unlock ${pid}`]);
  });

  it('fails the checkpoint of a PID the test marked, with the driver error name', async () => {
    const pid = PID + 8;
    await writeFile(path.join(dir, String(pid)), '1\n');
    await writeFile(path.join(dir, `${pid}.fail-checkpoint`), '');
    await expect(driver.checkpoint(pid)).rejects.toThrow('CUDA_ERROR_OUT_OF_MEMORY');
    expect(await driver.getState(pid)).toBe('locked');
  });
});
