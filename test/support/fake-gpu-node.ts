import type { CudaCheckpointDriver } from '../../activities/node/gpu/cuda-checkpoint-driver.js';
import { FakeCudaDriver } from '../../activities/node/gpu/fake-cuda-driver.js';
import type { GpuActivityDeps } from '../../activities/node/gpu/index.js';
import type { GpuNodeInfo } from '../../contract/gpu-types.js';

export const H100: GpuNodeInfo = {
  driverVersion: '580.159.04',
  gpus: [{ index: 0, name: 'NVIDIA H100 80GB HBM3', uuid: 'GPU-11111111', memoryTotalBytes: 85e9, memoryUsedBytes: 1e9 }],
};

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
    restore: (pid) => fake.restore(known(pid)),
    unlock: (pid) => fake.unlock(known(pid)),
    restoreThreadId: (pid) => fake.restoreThreadId(known(pid)),
  };
  const deps: GpuActivityDeps = {
    loadDriver: () => driver,
    queryGpus: async () => info,
    queryProcessGpuMemory: async () => 2e9,
  };
  return { fake, deps };
}
