import { describe, expect, it } from 'vitest';
import { FakeCudaDriver } from '../../activities/node/gpu/fake-cuda-driver.js';
import { freezeGroup, GroupMemberError, thawGroup } from '../../activities/node/gpu/gpu-group.js';

const LAUNCHER = 100;
const RANK_A = 101;
const RANK_B = 102;
const stateCalls = (driver: FakeCudaDriver) => driver.calls.filter((c) => c.call !== 'getState').map((c) => `${c.call} ${c.pid}`);

describe('GPU steps on a process group (fake CUDA driver)', () => {
  it('locks all members before checkpointing any, and leaves a process without CUDA state alone', async () => {
    const driver = new FakeCudaDriver().track(RANK_A).track(RANK_B);
    const frozen = await freezeGroup(driver, [LAUNCHER, RANK_A, RANK_B], 1000);
    expect(frozen.members.map((m) => m.pid)).toEqual([RANK_A, RANK_B]);
    expect(stateCalls(driver)).toEqual([`lock ${RANK_A}`, `lock ${RANK_B}`, `checkpoint ${RANK_A}`, `checkpoint ${RANK_B}`]);
  });

  it("rolls the group back when the second member's checkpoint fails: the first is restored and unlocked, both end running", async () => {
    const driver = new FakeCudaDriver().track(RANK_A).track(RANK_B).failFor('checkpoint', RANK_B);
    const failure = await freezeGroup(driver, [LAUNCHER, RANK_A, RANK_B], 1000).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(GroupMemberError);
    expect(failure).toMatchObject({ pid: RANK_B, step: 'checkpoint' });
    expect(stateCalls(driver)).toEqual([
      `lock ${RANK_A}`,
      `lock ${RANK_B}`,
      `checkpoint ${RANK_A}`,
      `checkpoint ${RANK_B}`,
      `restore ${RANK_A}`,
      `unlock ${RANK_A}`,
      `unlock ${RANK_B}`,
    ]);
    expect([driver.stateOf(RANK_A), driver.stateOf(RANK_B)]).toEqual(['running', 'running']);
  });

  it('unlocks the members already locked when a later lock fails', async () => {
    const driver = new FakeCudaDriver().track(RANK_A).track(RANK_B).failFor('lock', RANK_B);
    await expect(freezeGroup(driver, [RANK_A, RANK_B], 1000)).rejects.toMatchObject({ pid: RANK_B, step: 'lock' });
    expect([driver.stateOf(RANK_A), driver.stateOf(RANK_B)]).toEqual(['running', 'running']);
  });

  it('restores all members (with the pairs) before unlocking any, and finishes a thaw left halfway', async () => {
    const driver = new FakeCudaDriver().track(RANK_A, 'checkpointed').track(RANK_B, 'locked');
    const pairs = [{ oldUuid: 'GPU-a', newUuid: 'GPU-b' }];
    await thawGroup(driver, [LAUNCHER, RANK_A, RANK_B], pairs);
    expect(stateCalls(driver)).toEqual([`restore ${RANK_A}`, `unlock ${RANK_A}`, `unlock ${RANK_B}`]);
    expect(driver.pairs.get(RANK_A)).toEqual(pairs);
    driver.calls.length = 0;
    await thawGroup(driver, [RANK_A, RANK_B], pairs);
    expect(stateCalls(driver)).toEqual([]);
  });

  it('restores every member before unlocking any', async () => {
    const driver = new FakeCudaDriver().track(RANK_A, 'checkpointed').track(RANK_B, 'checkpointed');
    await thawGroup(driver, [RANK_A, RANK_B]);
    expect(stateCalls(driver)).toEqual([`restore ${RANK_A}`, `restore ${RANK_B}`, `unlock ${RANK_A}`, `unlock ${RANK_B}`]);
    expect(driver.pairs.size).toBe(0);
  });
});
