import { describe, expect, it } from 'vitest';
import { FakeCudaDriver } from '../../activities/node/gpu/fake-cuda-driver.js';
import { freezeGroup, thawGroup } from '../../activities/node/gpu/gpu-group.js';
import { GpuStateError, readGpuState } from '../../activities/node/gpu/gpu-steps.js';

const PID = 4242;
const callsOf = (driver: FakeCudaDriver) => driver.calls.map((c) => c.call);
const freeze = (driver: FakeCudaDriver, pid: number, lockTimeoutMs: number) => freezeGroup(driver, [pid], lockTimeoutMs);
const thaw = (driver: FakeCudaDriver, pid: number) => thawGroup(driver, [pid]);

describe('GPU freeze and thaw of a single process, a group of one (fake CUDA driver)', () => {
  it('freezes a running process: lock with the timeout, then checkpoint', async () => {
    const driver = new FakeCudaDriver().track(PID);
    const step = await freeze(driver, PID, 30_000);
    expect(step.members).toEqual([{ pid: PID, before: 'running' }]);
    expect(callsOf(driver)).toEqual(['getState', 'lock', 'checkpoint']);
    expect(driver.stateOf(PID)).toBe('checkpointed');
  });

  it('treats an already checkpointed process as frozen, so a retried freeze changes nothing', async () => {
    const driver = new FakeCudaDriver().track(PID, 'checkpointed');
    const step = await freeze(driver, PID, 30_000);
    expect(step).toEqual({ members: [{ pid: PID, before: 'checkpointed' }], lockMs: 0, checkpointMs: 0 });
    expect(driver.stateOf(PID)).toBe('checkpointed');
    expect(callsOf(driver)).toEqual(['getState']);
  });

  it('finishes a freeze that stopped after the lock (agent crash) with the checkpoint alone', async () => {
    const driver = new FakeCudaDriver().track(PID, 'locked');
    await freeze(driver, PID, 30_000);
    expect(callsOf(driver)).toEqual(['getState', 'checkpoint']);
    expect(driver.stateOf(PID)).toBe('checkpointed');
  });

  it('unlocks the process again when the checkpoint fails after its own lock', async () => {
    const driver = new FakeCudaDriver().track(PID).failNext('checkpoint', 'CUDA_ERROR_OUT_OF_MEMORY');
    await expect(freeze(driver, PID, 30_000)).rejects.toThrow(/CUDA_ERROR_OUT_OF_MEMORY/);
    // The rollback reads the state before undoing (a thaw of the group), then unlocks.
    expect(callsOf(driver)).toEqual(['getState', 'lock', 'checkpoint', 'getState', 'unlock']);
    expect(driver.stateOf(PID)).toBe('running');
  });

  it('leaves the process running when the lock itself fails (timeout)', async () => {
    const driver = new FakeCudaDriver().track(PID).failNext('lock', 'CUDA_ERROR_TIMEOUT');
    await expect(freeze(driver, PID, 10)).rejects.toThrow(/CUDA_ERROR_TIMEOUT/);
    expect(callsOf(driver)).toEqual(['getState', 'lock', 'getState']);
    expect(driver.stateOf(PID)).toBe('running');
  });

  it('refuses a process the driver reports as failed, on freeze and on thaw', async () => {
    const driver = new FakeCudaDriver().track(PID, 'failed');
    await expect(freeze(driver, PID, 1000)).rejects.toBeInstanceOf(GpuStateError);
    await expect(thaw(driver, PID)).rejects.toBeInstanceOf(GpuStateError);
  });

  it('thaws a checkpointed process: restore, then unlock', async () => {
    const driver = new FakeCudaDriver().track(PID, 'checkpointed');
    const step = await thaw(driver, PID);
    expect(step.members).toEqual([{ pid: PID, before: 'checkpointed' }]);
    expect(driver.stateOf(PID)).toBe('running');
    expect(callsOf(driver)).toEqual(['getState', 'restore', 'unlock']);
  });

  it('finishes a thaw that stopped after the restore with the unlock alone', async () => {
    const driver = new FakeCudaDriver().track(PID, 'locked');
    await thaw(driver, PID);
    expect(callsOf(driver)).toEqual(['getState', 'unlock']);
    expect(driver.stateOf(PID)).toBe('running');
  });

  it('treats a running process as thawed, so the compensation may run twice', async () => {
    const driver = new FakeCudaDriver().track(PID);
    await freeze(driver, PID, 1000);
    const first = await thaw(driver, PID);
    const second = await thaw(driver, PID);
    expect(first.members).toEqual([{ pid: PID, before: 'checkpointed' }]);
    expect(second).toEqual({ members: [{ pid: PID, before: 'running' }], restoreMs: 0, unlockMs: 0 });
    expect(driver.stateOf(PID)).toBe('running');
    expect(callsOf(driver)).toEqual(['getState', 'lock', 'checkpoint', 'getState', 'restore', 'unlock', 'getState']);
  });

  it('leaves a process without CUDA state alone on freeze and thaw', async () => {
    const driver = new FakeCudaDriver();
    expect(await readGpuState(driver, PID)).toBe('none');
    expect(await freeze(driver, PID, 1000)).toMatchObject({ members: [] });
    expect(await thaw(driver, PID)).toMatchObject({ members: [] });
    expect(callsOf(driver)).toEqual(['getState', 'getState', 'getState']);
  });

  it('reports a failing state query as a driver error, not as "no CUDA state"', async () => {
    const driver = new FakeCudaDriver().track(PID).failNext('getState', 'CUDA_ERROR_UNKNOWN');
    await expect(readGpuState(driver, PID)).rejects.toThrow(/CUDA_ERROR_UNKNOWN/);
  });
});
