import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gpuActivities } from '../../activities/node/gpu/index.js';
import { StoreLayout } from '../../activities/node/store/layout.js';
import { workflowIds } from '../../client/workflow-ids.js';
import type { GpuNodeInfo } from '../../contract/gpu-types.js';
import { failureOf } from '../support/failures.js';
import { containerCheckpointCalls, FAKE_CUDA_LAUNCH, FakeCudaDriver } from '../support/fake-cuda-processes.js';
import { libcudaGpuNode, TWO_H100 } from '../support/fake-gpu-node.js';
import { recordHistory } from '../support/record-history.js';
import { eventually, RuncWorld, waitForStatus } from '../support/runc-containers.js';
import { startTorpor, type TorporHarness } from '../support/torpor-harness.js';

// Real Temporal, runc and CRIU; the CUDA driver is the fake libcuda (through the agent's real FFI
// binding) and nvidia-smi's inventory a fake: this machine has no GPU.
const [GPU_A, GPU_B] = TWO_H100.gpus.map((g) => g.uuid) as [string, string];
const GPU_H200 = 'GPU-cccccccc-2222-2222-2222-222222222222';
const NODE_GPUS: GpuNodeInfo = {
  ...TWO_H100,
  gpus: [...TWO_H100.gpus, { index: 2, name: 'NVIDIA H200', uuid: GPU_H200, memoryTotalBytes: 143e9, memoryUsedBytes: 0 }],
};
const pod = { 'io.kubernetes.pod.namespace': 'team-a', 'io.kubernetes.pod.name': 'llm-0', 'io.kubernetes.container.name': 'main' };
const world = new RuncWorld(path.resolve('.torpor/test/gpu-container-workflows'));
let cuda: FakeCudaDriver;

describe('GPU state of a container through the container workflows (real runc and CRIU, fake libcuda)', () => {
  let h: TorporHarness;

  beforeAll(async () => {
    cuda = await FakeCudaDriver.build('torpor-gpu-pod-');
    await world.createImage();
    const { runcPath, runcRoot, criuPath, checkpointSourceLabel } = world.config([]);
    h = await startTorpor({
      gpu: cuda.gpuNode(NODE_GPUS),
      agentInterceptors: [cuda.logSteps(['dumpContainer', 'commitCheckpoint', 'restoreIntoPlaceholder'])],
      config: { criuPath, containers: { runcPath, runcRoot, checkpointSourceLabel, allowedNamespaces: ['team-a'] } },
    });
  });
  afterAll(async () => {
    await world.cleanUp();
    await h?.stop();
  });

  async function placeholder(id: string, visibleDevices: string) {
    const labels = { ...pod, 'io.kubernetes.pod.name': id };
    const bundle = await world.createBundle(id, labels, {
      placeholderFor: { hash: 'gpu-v1', store: h.storage },
      env: [`NVIDIA_VISIBLE_DEVICES=${visibleDevices}`],
    });
    await world.run(id, bundle);
    await eventually(async () => ((await world.output(id)).includes('waiting for the node agent') ? true : undefined), `${id} to wait`);
    return bundle;
  }

  it('locks all, checkpoints all CUDA processes of the container, dumps, commits, then restores and unlocks all', async () => {
    const source = await world.createBundle(
      'gpu-source',
      { ...pod, 'torpor.dev/checkpoint-source': 'true' },
      { args: ['sh', '-c', FAKE_CUDA_LAUNCH], env: [`NVIDIA_VISIBLE_DEVICES=${GPU_A}`] },
    );
    await world.run('gpu-source', source);
    await waitForStatus(source, (s) => s.n >= 3);
    const init = await world.initPid('gpu-source');
    const [a, b] = await eventually(async () => {
      const found = await cuda.cudaProcesses(init);
      return found.length === 2 ? found : undefined;
    }, 'the two CUDA processes');
    await cuda.mark([a as number, b as number], 0);

    const checkpoint = await h.torpor.checkpointContainer({ node: h.node, containerId: 'gpu-source', hash: 'gpu-v1' });
    expect(await cuda.calls()).toEqual(containerCheckpointCalls(a as number, b as number));
    // The launcher (init) holds no CUDA state: the driver was never asked to change it.
    expect(await readdir(cuda.dir)).not.toContain(String(init));
    expect(checkpoint.manifest.gpu).toMatchObject({
      driverVersion: '580.159.04',
      gpus: [{ index: 0, name: 'NVIDIA H100 80GB HBM3', uuid: GPU_A }],
      processes: [
        { pid: a, memoryBytes: 1e9, gpuUuids: [GPU_A] },
        { pid: b, memoryBytes: 1e9, gpuUuids: [GPU_A] },
      ],
    });
    await recordHistory(h.client.workflow.getHandle(workflowIds.containerCheckpoint('gpu-v1', h.node)), 'container-gpu-checkpoint-created');
    await world.deleteContainer('gpu-source');
  });

  it('refuses a placeholder given another GPU model (GpuMismatch) before restoring anything into it', async () => {
    await placeholder('gpu-h200', '2');
    const failure = await h.torpor
      .restoreContainer({ node: h.node, hash: 'gpu-v1', placeholderContainerId: 'gpu-h200' })
      .catch((e: unknown) => e);
    expect(failure).toMatchObject({ type: 'GpuMismatch', message: expect.stringContaining('NVIDIA H200') });
    expect(await cuda.calls()).not.toContain('restoreIntoPlaceholder');
  });

  it('restores into a placeholder given another GPU of the model, the UUIDs paired per its NVIDIA_VISIBLE_DEVICES', async () => {
    const bundle = await placeholder('gpu-placeholder', GPU_B);
    const before = (await cuda.calls()).length;
    const restored = await h.torpor.restoreContainer({ node: h.node, hash: 'gpu-v1', placeholderContainerId: 'gpu-placeholder' });
    const [x, y] = await cuda.cudaProcesses(restored.hostPid);
    expect((await cuda.calls()).slice(before)).toEqual([
      'restoreIntoPlaceholder',
      `restore ${x}`,
      `restore ${y}`,
      `unlock ${x}`,
      `unlock ${y}`,
    ]);
    for (const pid of [x, y]) expect((await readFile(path.join(cuda.dir, `${pid}.gpu-pairs`), 'utf8')).trim()).toBe(`${GPU_A} ${GPU_B}`);
    expect(restored.gpu).toMatchObject({ pids: [x, y], pairs: [{ oldUuid: GPU_A, newUuid: GPU_B }], after: 'running' });
    expect((await waitForStatus(bundle, (s) => s.restored)).restored).toBe(true);
    await recordHistory(
      h.client.workflow.getHandle(workflowIds.containerRestore('gpu-v1', 'gpu-placeholder')),
      'container-gpu-restore-restored',
    );
  });

  it('refuses GPU steps on a container that is no checkpoint source, for another node, and a freeze of a placeholder', async () => {
    const acts = gpuActivities(
      h.config,
      new StoreLayout(h.storage),
      libcudaGpuNode(cuda.library, NODE_GPUS, () => []),
    );
    const env = new MockActivityEnvironment();
    await world.run('gpu-stranger', await world.createBundle('gpu-stranger', { ...pod, 'io.kubernetes.pod.name': 'other' }));
    const stranger = { hash: 'gpu-v2', container: { id: 'gpu-stranger', role: 'source' as const }, lockTimeoutMs: 1000 };
    const refusals = [
      () => env.run(acts.gpuFreeze, stranger),
      () => env.run(acts.gpuThaw, { ...stranger, nodeName: 'another-node' }),
      () => env.run(acts.gpuFreeze, { ...stranger, container: { id: 'gpu-placeholder', role: 'placeholder' as const } }),
      () => env.run(acts.gpuThaw, { ...stranger, container: { id: 'gpu-stranger', role: 'owner' as 'source' } }),
    ];
    for (const refused of refusals) expect((await failureOf(refused())).type).toBe('TargetNotAllowed');
    expect((await failureOf(env.run(acts.gpuThaw, { hash: 'gpu-v2', container: { id: '../x', role: 'source' as const } }))).type).toBe(
      'InvalidSpec',
    );
  });
});
