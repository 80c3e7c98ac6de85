import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NodeAgentConfig } from '../../activities/node/agent-config.js';
import { FakeCudaDriver } from '../../activities/node/gpu/fake-cuda-driver.js';
import { gpuActivities } from '../../activities/node/gpu/index.js';
import { identify, processTree } from '../../activities/node/proc/identity.js';
import { StoreLayout } from '../../activities/node/store/layout.js';
import { writeRecord } from '../../activities/node/store/run-records.js';
import type { GpuCheckpointRecord, GpuFreezeResult, GpuNodeInfo, GpuThawResult } from '../../contract/gpu-types.js';
import { failureOf } from '../support/failures.js';

const MIB = 1024 * 1024;
const GPUS = {
  driverVersion: '580.159.04',
  gpus: [{ index: 0, name: 'NVIDIA H100 80GB HBM3', uuid: 'GPU-a', memoryTotalBytes: 81559 * MIB, memoryUsedBytes: 7000 * MIB }],
};

describe('GPU activities (fake CUDA driver, real processes and agent records)', () => {
  let layout: StoreLayout;
  let driver: FakeCudaDriver;
  let acts: ReturnType<typeof gpuActivities>;
  let nodeGpus: GpuNodeInfo;
  const children: ChildProcess[] = [];
  const env = new MockActivityEnvironment();

  /** A real process the agent's records name as the workload of `hash`. */
  async function workload(hash: string, envHash = hash, command = ['sleep', '60']): Promise<number> {
    const [program = 'sleep', ...args] = command;
    const child = spawn(program, args, { env: { ...process.env, DYN_CHECKPOINT_HASH: envHash }, stdio: 'ignore', detached: true });
    children.push(child);
    const id = await identify(child.pid as number);
    await mkdir(layout.runDir(hash), { recursive: true });
    await writeRecord(path.join(layout.runDir(hash), 'workload.json'), { ...id, hash, runId: 'r' });
    return child.pid as number;
  }

  /** A launcher (a shell without CUDA state) and its two children, which the fake driver knows as CUDA processes. */
  async function launcherWithRanks(hash: string): Promise<{ launcher: number; a: number; b: number }> {
    const launcher = await workload(hash, hash, ['sh', '-c', 'sleep 60 & sleep 60 & wait']);
    let tree = await processTree(launcher);
    while (tree.length < 3) tree = await new Promise((resolve) => setTimeout(() => resolve(processTree(launcher)), 20));
    const [, a = 0, b = 0] = tree;
    driver.track(a).track(b);
    return { launcher, a, b };
  }
  const stateCalls = () => driver.calls.filter((c) => c.call !== 'getState').map((c) => `${c.call} ${c.pid}`);

  beforeEach(async () => {
    nodeGpus = GPUS;
    layout = new StoreLayout(await mkdtemp(path.join(os.tmpdir(), 'torpor-gpu-')));
    driver = new FakeCudaDriver();
    const config = { nodeName: 'gpu-node-1', storageRoot: layout.root } as NodeAgentConfig;
    acts = gpuActivities(config, layout, {
      loadDriver: () => driver,
      queryGpus: async () => nodeGpus,
      queryComputeApps: async () => driver.tracked().map((pid) => ({ pid, gpuUuid: 'GPU-a', usedBytes: 6500 * MIB })),
    });
  });
  afterEach(() => {
    for (const child of children.splice(0)) {
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {}
    }
  });

  it('freezes the workload named by its hash and records the GPUs and the memory it held', async () => {
    const pid = await workload('llm-1');
    driver.track(pid);
    const result: GpuFreezeResult = await env.run(acts.gpuFreeze, { hash: 'llm-1', lockTimeoutMs: 5000 });
    expect(result).toMatchObject({ pid, before: 'running', after: 'checkpointed' });
    expect(result.gpu).toEqual({
      driverVersion: '580.159.04',
      gpus: [{ index: 0, name: 'NVIDIA H100 80GB HBM3', uuid: 'GPU-a', memoryTotalBytes: 81559 * MIB }],
      processMemoryBytes: 6500 * MIB,
      processes: [{ pid, memoryBytes: 6500 * MIB, gpuUuids: ['GPU-a'] }],
    });
    const again = await env.run(acts.gpuFreeze, { hash: 'llm-1', lockTimeoutMs: 5000 });
    expect(again).toMatchObject({ before: 'checkpointed', after: 'checkpointed', gpu: result.gpu });
  });

  it('refuses a hash this agent started no workload for, and a process whose environment names another hash', async () => {
    expect((await failureOf(env.run(acts.gpuFreeze, { hash: 'never', lockTimeoutMs: 1 }))).type).toBe('TargetNotAllowed');
    await workload('llm-2', 'someone-else');
    expect((await failureOf(env.run(acts.gpuThaw, { hash: 'llm-2' }))).type).toBe('TargetNotAllowed');
    expect((await failureOf(env.run(acts.gpuThaw, { hash: 'llm-2', restoreId: 'r-1' }))).type).toBe('TargetNotAllowed');
  });

  it('fails a freeze non-retryably with the driver error and leaves the workload unlocked', async () => {
    const pid = await workload('llm-3');
    driver.track(pid).failNext('checkpoint', 'CUDA_ERROR_OUT_OF_MEMORY');
    const failure = await failureOf(env.run(acts.gpuFreeze, { hash: 'llm-3', lockTimeoutMs: 5000 }));
    expect(failure.type).toBe('GpuCheckpointFailed');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toMatch(/CUDA_ERROR_OUT_OF_MEMORY/);
    expect(driver.stateOf(pid)).toBe('running');
  });

  it('compensates a freeze by thawing, twice if need be, and treats a gone workload as thawed', async () => {
    const pid = await workload('llm-4');
    driver.track(pid);
    await env.run(acts.gpuFreeze, { hash: 'llm-4', lockTimeoutMs: 5000 });
    expect(await env.run(acts.gpuThaw, { hash: 'llm-4' })).toMatchObject({ before: 'checkpointed', after: 'running' });
    expect(await env.run(acts.gpuThaw, { hash: 'llm-4' })).toMatchObject({ before: 'running', after: 'running' });
    expect(await env.run(acts.gpuState, { hash: 'llm-4' })).toEqual({ pid, state: 'running' });
    children.at(-1)?.kill('SIGKILL');
    await new Promise((resolve) => children.at(-1)?.once('exit', resolve));
    expect(await env.run(acts.gpuThaw, { hash: 'llm-4' })).toMatchObject({ before: 'gone', after: 'gone' });
  });

  it('fails a thaw the driver refuses as GpuRestoreFailed', async () => {
    const pid = await workload('llm-5');
    driver.track(pid, 'checkpointed').failNext('restore', 'CUDA_ERROR_OUT_OF_MEMORY');
    const failure = await failureOf(env.run(acts.gpuThaw, { hash: 'llm-5' }));
    expect(failure.type).toBe('GpuRestoreFailed');
    expect(failure.details?.[0]).toMatchObject({ pid, stateAfterFailure: 'checkpointed' });
  });

  it('passes a CPU workload (no CUDA state) through freeze and thaw untouched', async () => {
    await workload('cpu-1');
    expect(await env.run(acts.gpuFreeze, { hash: 'cpu-1', lockTimeoutMs: 5000 })).toMatchObject({ after: 'none', gpu: null });
    expect(await env.run(acts.gpuThaw, { hash: 'cpu-1' })).toMatchObject({ after: 'none' });
  });

  it('refuses a restore on another GPU model or driver before any CRIU work', async () => {
    const recorded = {
      driverVersion: '570.86.10',
      gpus: [{ name: 'NVIDIA H100 80GB HBM3', uuid: 'GPU-z', memoryTotalBytes: 1 }],
      processMemoryBytes: 1,
    };
    const failure = await failureOf(env.run(acts.gpuCheckRestore, { recorded }));
    expect(failure.type).toBe('GpuMismatch');
    expect(failure.message).toMatch(/gpu-node-1.*570.86.10.*580.159.04/);
    await env.run(acts.gpuCheckRestore, { recorded: { ...recorded, driverVersion: '580.159.04' } });
    await env.run(acts.gpuCheckRestore, { recorded: null });
  });

  it("locks all, then checkpoints all CUDA processes of the workload's tree, leaves its launcher alone, and records each", async () => {
    const { launcher, a, b } = await launcherWithRanks('group-1');
    const frozen: GpuFreezeResult = await env.run(acts.gpuFreeze, { hash: 'group-1', lockTimeoutMs: 5000 });
    expect(frozen).toMatchObject({ pid: a, pids: [a, b], before: 'running', after: 'checkpointed' });
    expect(frozen.gpu?.processes?.map((p) => p.pid)).toEqual([a, b]);
    expect(frozen.gpu?.processMemoryBytes).toBe(2 * 6500 * MIB);
    expect(stateCalls()).toEqual([`lock ${a}`, `lock ${b}`, `checkpoint ${a}`, `checkpoint ${b}`]);
    expect(driver.stateOf(launcher)).toBeUndefined();
    driver.calls.length = 0;
    expect(await env.run(acts.gpuThaw, { hash: 'group-1' })).toMatchObject({ pids: [a, b], after: 'running', pairs: [] });
    expect(stateCalls()).toEqual([`restore ${a}`, `restore ${b}`, `unlock ${a}`, `unlock ${b}`]);
  });

  it("takes the whole group back to running when one member's checkpoint fails, and names that member", async () => {
    const { a, b } = await launcherWithRanks('group-2');
    driver.failFor('checkpoint', b);
    const failure = await failureOf(env.run(acts.gpuFreeze, { hash: 'group-2', lockTimeoutMs: 5000 }));
    expect(failure.type).toBe('GpuCheckpointFailed');
    expect(failure.message).toContain(`pid ${b}`);
    expect(failure.details?.[0]).toMatchObject({ pid: b, stateAfterFailure: 'running' });
    expect(stateCalls()).toEqual([
      `lock ${a}`,
      `lock ${b}`,
      `checkpoint ${a}`,
      `checkpoint ${b}`,
      `restore ${a}`,
      `unlock ${a}`,
      `unlock ${b}`,
    ]);
    expect([driver.stateOf(a), driver.stateOf(b)]).toEqual(['running', 'running']);
  });

  it('restores onto the GPUs a local restore names, UUIDs paired, and refuses a name the node lacks', async () => {
    const gpu = (index: number, uuid: string) => ({ index, name: 'NVIDIA H100 80GB HBM3', uuid, memoryTotalBytes: 1, memoryUsedBytes: 0 });
    nodeGpus = { driverVersion: '580.159.04', gpus: [gpu(0, 'GPU-0'), gpu(1, 'GPU-1')] };
    const recorded: GpuCheckpointRecord = { driverVersion: '580.159.04', gpus: [gpu(0, 'GPU-0')], processMemoryBytes: 1 };
    const pid = await workload('remap-1');
    driver.track(pid, 'checkpointed');
    const thawed: GpuThawResult = await env.run(acts.gpuThaw, { hash: 'remap-1', recorded, gpus: ['1'] });
    expect(thawed.pairs).toEqual([{ oldUuid: 'GPU-0', newUuid: 'GPU-1' }]);
    expect(driver.pairs.get(pid)).toEqual([{ oldUuid: 'GPU-0', newUuid: 'GPU-1' }]);
    expect((await failureOf(env.run(acts.gpuCheckRestore, { recorded, gpus: ['7'] }))).type).toBe('InvalidSpec');
    expect((await failureOf(env.run(acts.gpuCheckRestore, { recorded, gpus: ['../x'] }))).type).toBe('InvalidSpec');
    await env.run(acts.gpuCheckRestore, { recorded, gpus: ['1'] });
  });
});
