import type { CudaCheckpointDriver } from '../../activities/node/gpu/cuda-checkpoint-driver.js';
import { FakeCudaDriver } from '../../activities/node/gpu/fake-cuda-driver.js';
import type { ComputeApp } from '../../activities/node/gpu/gpu-info.js';
import type { GpuActivityDeps } from '../../activities/node/gpu/index.js';
import { loadLibcudaDriver } from '../../activities/node/gpu/libcuda-driver.js';
import type { GpuDevice, GpuNodeInfo } from '../../contract/gpu-types.js';

const H100_NAME = 'NVIDIA H100 80GB HBM3';
const h100 = (index: number, uuid: string): GpuDevice => ({ index, name: H100_NAME, uuid, memoryTotalBytes: 85e9, memoryUsedBytes: 1e9 });

export const H100: GpuNodeInfo = { driverVersion: '580.159.04', gpus: [h100(0, 'GPU-11111111-1111-1111-1111-111111111111')] };

/** Two H100s, as the GPU machine's nvidia-h100-x2 has them. */
export const TWO_H100: GpuNodeInfo = {
  driverVersion: '580.159.04',
  gpus: [h100(0, 'GPU-aaaaaaaa-0000-0000-0000-000000000000'), h100(1, 'GPU-bbbbbbbb-1111-1111-1111-111111111111')],
};

/** What nvidia-smi --query-compute-apps lists: each of `pids` holding `bytes` on the node's first GPU. */
function computeApps(info: GpuNodeInfo, pids: () => number[], bytes = 2e9): () => Promise<ComputeApp[]> {
  return async () => pids().map((pid) => ({ pid, gpuUuid: info.gpus[0]?.uuid ?? '', usedBytes: bytes }));
}

/**
 * A GPU node made of fakes (this machine has none): every process the agent asks about is a CUDA
 * process, in the in-memory driver that enforces the real API's state transitions.
 */
export function fakeGpuNode(info: GpuNodeInfo = H100) {
  const fake = new FakeCudaDriver();
  const known = (pid: number) => {
    if (fake.stateOf(pid) === undefined) fake.track(pid);
    return pid;
  };
  const driver: CudaCheckpointDriver = {
    getState: (pid) => fake.getState(known(pid)),
    lock: (pid) => fake.lock(known(pid)),
    checkpoint: (pid) => fake.checkpoint(known(pid)),
    restore: (pid, pairs) => fake.restore(known(pid), pairs),
    unlock: (pid) => fake.unlock(known(pid)),
    restoreThreadId: (pid) => fake.restoreThreadId(known(pid)),
  };
  const deps: GpuActivityDeps = {
    loadDriver: () => driver,
    queryGpus: async () => info,
    queryComputeApps: computeApps(info, () => fake.tracked()),
  };
  return { fake, deps };
}

/**
 * A GPU node whose driver is the fake libcuda (test/support/fake-libcuda.c) built at `library`, through
 * the agent's real FFI binding: a process is a CUDA process when FAKE_LIBCUDA_DIR/<pid> holds its state.
 */
export function libcudaGpuNode(library: string, info: GpuNodeInfo, cudaPids: () => number[]): GpuActivityDeps {
  return {
    loadDriver: () => loadLibcudaDriver(library),
    queryGpus: async () => info,
    queryComputeApps: computeApps(info, cudaPids, 1e9),
  };
}
