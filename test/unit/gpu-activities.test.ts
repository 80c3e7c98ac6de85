import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NodeAgentConfig } from '../../activities/node/agent-config.js';
import { FakeCudaDriver } from '../../activities/node/gpu/fake-cuda-driver.js';
import { gpuActivities } from '../../activities/node/gpu/index.js';
import { identify } from '../../activities/node/proc/identity.js';
import { StoreLayout } from '../../activities/node/store/layout.js';
import { writeRecord } from '../../activities/node/store/run-records.js';
import type { GpuFreezeResult } from '../../contract/gpu-types.js';
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
  const children: ChildProcess[] = [];
  const env = new MockActivityEnvironment();

  /** A real process the agent's records name as the workload of `hash`. */
  async function workload(hash: string, envHash = hash): Promise<number> {
    const child = spawn('sleep', ['60'], { env: { ...process.env, DYN_CHECKPOINT_HASH: envHash }, stdio: 'ignore' });
    children.push(child);
    const id = await identify(child.pid as number);
    await mkdir(layout.runDir(hash), { recursive: true });
    await writeRecord(path.join(layout.runDir(hash), 'workload.json'), { ...id, hash, runId: 'r' });
    return child.pid as number;
  }

  beforeEach(async () => {
    layout = new StoreLayout(await mkdtemp(path.join(os.tmpdir(), 'torpor-gpu-')));
    driver = new FakeCudaDriver();
    const config = { nodeName: 'gpu-node-1', storageRoot: layout.root } as NodeAgentConfig;
    acts = gpuActivities(config, layout, {
      loadDriver: () => driver,
      queryGpus: async () => GPUS,
      queryProcessGpuMemory: async () => 6500 * MIB,
    });
  });
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
  });

  it('freezes the workload named by its hash and records the GPUs and the memory it held', async () => {
    const pid = await workload('llm-1');
    driver.track(pid);
    const result: GpuFreezeResult = await env.run(acts.gpuFreeze, { hash: 'llm-1', lockTimeoutMs: 5000 });
    expect(result).toMatchObject({ pid, before: 'running', after: 'checkpointed' });
    expect(result.gpu).toEqual({
      driverVersion: '580.159.04',
      gpus: [{ name: 'NVIDIA H100 80GB HBM3', uuid: 'GPU-a', memoryTotalBytes: 81559 * MIB }],
      processMemoryBytes: 6500 * MIB,
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
});
