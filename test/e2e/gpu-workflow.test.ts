import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointWorkflowId } from '../../contract/naming.js';
import type { CheckpointRequest } from '../../contract/spec.js';
import { fakeGpuNode, H100 } from '../support/fake-gpu-node.js';
import { killCheckpointProcesses, processesOfCheckpoint } from '../support/leftovers.js';
import { recordHistory } from '../support/record-history.js';
import { testSample } from '../support/sample.js';
import { startTorpor, type TorporHarness } from '../support/torpor-harness.js';
import { expectWorldClean } from '../support/world.js';

// Real Temporal, real CRIU, real processes; the CUDA driver and nvidia-smi are fakes (no GPU here).
// The GPU path itself ran on an H100: bench/gpu/RESULTS.md.
const gpuNode = fakeGpuNode();
const activityOrder: string[] = [];
const recordOrder: ActivityInterceptorsFactory = (ctx) => ({
  inbound: {
    async execute(input, next) {
      const result = await next(input);
      activityOrder.push(ctx.info.activityType);
      // What a real CRIU restore of a CUDA process yields: its GPU state still checkpointed.
      if (ctx.info.activityType === 'restoreCheckpoint') gpuNode.fake.track((result as { pid: number }).pid, 'checkpointed');
      return result;
    },
  },
});

let h: TorporHarness;
const hashes: string[] = [];
beforeAll(async () => {
  h = await startTorpor({ gpu: gpuNode.deps, agentInterceptors: [recordOrder] });
});
afterAll(async () => {
  for (const hash of hashes) await killCheckpointProcesses(hash);
  await h.stop();
});

function request(env: Record<string, string> = {}): CheckpointRequest {
  const sample = testSample(h.storage, env);
  hashes.push(sample.hash);
  return { hash: sample.hash, node: h.node, runtime: 'local', workload: sample.workload };
}

const callsFor = (pid: number) => gpuNode.fake.calls.filter((c) => c.pid === pid && c.call !== 'getState').map((c) => c.call);

describe('GPU steps in the workflows (fake CUDA driver)', () => {
  let req: CheckpointRequest;
  let pid: number;

  it('freezes the GPU before the CRIU dump, records the GPUs, and thaws the original after the commit', async () => {
    req = request();
    activityOrder.length = 0;
    const result = await h.torpor.checkpoint(req);
    pid = result.manifest.process.pid;
    expect(callsFor(pid)).toEqual(['lock', 'checkpoint', 'restore', 'unlock']);
    // Freeze, dump and commit are one agent step (patch local-checkpoint-in-one-step), which leaves the signal to the workflow.
    const order = activityOrder.filter((a) => ['checkpointProcess', 'gpuThaw', 'signalWorkload'].includes(a));
    expect(order).toEqual(['checkpointProcess', 'gpuThaw', 'signalWorkload']);
    await recordHistory(h.client.workflow.getHandle(checkpointWorkflowId(req.hash)), 'checkpoint-gpu-in-one-step-created');
    expect(Object.keys(result.stepMs)).toEqual(
      expect.arrayContaining(['freezing-gpu', 'dumping', 'committing', 'thawing-gpu', 'signalling']),
    );
    const uuid = H100.gpus[0]?.uuid;
    expect(result.manifest.gpu).toEqual({
      driverVersion: H100.driverVersion,
      gpus: [{ index: 0, name: 'NVIDIA H100 80GB HBM3', uuid, memoryTotalBytes: 85e9 }],
      processMemoryBytes: 2e9,
      processes: [{ pid, memoryBytes: 2e9, gpuUuids: [uuid] }],
    });
  });

  it('restores the GPU state after the CRIU restore, before waiting for readiness', async () => {
    activityOrder.length = 0;
    const restored = await h.torpor.restore({ hash: req.hash, node: h.node, runtime: 'local' });
    expect(gpuNode.fake.stateOf(restored.pid)).toBe('running');
    const order = activityOrder.filter((a) => ['gpuCheckRestore', 'restoreCheckpoint', 'gpuThaw', 'waitRestoredReady'].includes(a));
    expect(order).toEqual(['gpuCheckRestore', 'restoreCheckpoint', 'gpuThaw', 'waitRestoredReady']);
    process.kill(-restored.pid, 'SIGKILL');
  });

  it('refuses to restore on a node whose GPU model or driver differs, before any CRIU work', async () => {
    const other = fakeGpuNode({ ...H100, driverVersion: '570.1.2' });
    const h2 = await startTorpor({ gpu: other.deps, config: { storageRoot: h.storage } });
    try {
      await expect(h2.torpor.restore({ hash: req.hash, node: h2.node, runtime: 'local' })).rejects.toMatchObject({
        type: 'GpuMismatch',
        message: expect.stringContaining('570.1.2'),
      });
      expect(await processesOfCheckpoint(req.hash)).toEqual([]);
    } finally {
      await h2.stop();
    }
  });

  it('thaws the GPU when the dump fails after the freeze, so the process is never left locked', async () => {
    const socketPath = path.join(os.tmpdir(), `torpor-gpu-ext-${process.pid}.sock`);
    const server = net.createServer(() => undefined).listen(socketPath);
    try {
      const bad = request({ SAMPLE_CONNECT_UNIX: socketPath });
      const before = gpuNode.fake.calls.length;
      await expect(h.torpor.checkpoint(bad)).rejects.toMatchObject({ type: 'DumpFailed' });
      const calls = gpuNode.fake.calls.slice(before).filter((c) => c.call !== 'getState');
      expect(calls.map((c) => c.call)).toEqual(['lock', 'checkpoint', 'restore', 'unlock']);
      expect(gpuNode.fake.stateOf(calls[0]?.pid ?? -1)).toBe('running');
      await expectWorldClean(h.storage, bad.hash, 'absent');
    } finally {
      server.close();
    }
  });

  it('reports a driver failure during the freeze as GpuCheckpointFailed and leaves nothing behind', async () => {
    const bad = request();
    gpuNode.fake.failNext('checkpoint', 'CUDA_ERROR_OUT_OF_MEMORY');
    await expect(h.torpor.checkpoint(bad)).rejects.toMatchObject({
      type: 'GpuCheckpointFailed',
      message: expect.stringContaining('CUDA_ERROR_OUT_OF_MEMORY'),
    });
    await expectWorldClean(h.storage, bad.hash, 'absent');
  });
});
