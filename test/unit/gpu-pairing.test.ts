import { describe, expect, it } from 'vitest';
import { pairGpus, remapping, uuidBytes } from '../../activities/node/gpu/gpu-pairing.js';
import { containerDevices, selectGpus } from '../../activities/node/gpu/gpu-selection.js';
import type { GpuCheckpointRecord, GpuNodeInfo } from '../../contract/gpu-types.js';

const H100 = 'NVIDIA H100 80GB HBM3';
const DRIVER = '580.159.04';
const uuid = (n: number) => `GPU-${String(n).repeat(8)}-0000-0000-0000-000000000000`;
const gpu = (index: number, name = H100) => ({ index, name, uuid: uuid(index), memoryTotalBytes: 85e9, memoryUsedBytes: 0 });
const recorded = (gpus: GpuCheckpointRecord['gpus']): GpuCheckpointRecord => ({ driverVersion: DRIVER, gpus, processMemoryBytes: 1 });
const target = (uuids: string[], name = H100, driverVersion: string | null = DRIVER) => ({
  driverVersion,
  gpus: uuids.map((u) => ({ name, uuid: u })),
  what: 'the placeholder',
});

describe('pairing recorded GPUs with the GPUs a restore target has', () => {
  it('pairs the GPU at the same CUDA ordinal first, where the target has that ordinal', () => {
    const rec = recorded([
      { index: 0, name: H100, uuid: 'GPU-a', memoryTotalBytes: 1 },
      { index: 1, name: H100, uuid: 'GPU-b', memoryTotalBytes: 1 },
    ]);
    expect(pairGpus(rec, target(['GPU-x', 'GPU-y']))).toEqual({
      pairs: [
        { oldUuid: 'GPU-a', newUuid: 'GPU-x' },
        { oldUuid: 'GPU-b', newUuid: 'GPU-y' },
      ],
    });
  });

  it('pairs by position what has no same ordinal in the target', () => {
    // Checkpointed on ordinals 2 and 5 of a big node; restored into a placeholder given three GPUs.
    const rec = recorded([
      { index: 5, name: H100, uuid: 'GPU-f', memoryTotalBytes: 1 },
      { index: 2, name: H100, uuid: 'GPU-c', memoryTotalBytes: 1 },
    ]);
    expect(pairGpus(rec, target(['GPU-x', 'GPU-y', 'GPU-z']))).toEqual({
      pairs: [
        { oldUuid: 'GPU-f', newUuid: 'GPU-x' },
        { oldUuid: 'GPU-c', newUuid: 'GPU-z' },
      ],
    });
  });

  it('reads a record of format 1 (no ordinals) by position', () => {
    const rec = recorded([{ name: H100, uuid: 'GPU-old', memoryTotalBytes: 1 }]);
    expect(pairGpus(rec, target(['GPU-new', 'GPU-spare']))).toEqual({ pairs: [{ oldUuid: 'GPU-old', newUuid: 'GPU-new' }] });
  });

  it('accepts other UUIDs of the same model and driver; passes no pairs when nothing moves', () => {
    const rec = recorded([{ index: 0, name: H100, uuid: 'GPU-a', memoryTotalBytes: 1 }]);
    const moved = pairGpus(rec, target(['GPU-other']));
    expect(moved).toEqual({ pairs: [{ oldUuid: 'GPU-a', newUuid: 'GPU-other' }] });
    const same = pairGpus(rec, target(['GPU-a']));
    expect('pairs' in same && remapping(same.pairs)).toEqual([]);
    expect('pairs' in moved && remapping(moved.pairs)).toHaveLength(1);
  });

  it('refuses too few GPUs, another model, another driver, or none (GpuMismatch material)', () => {
    const two = recorded([
      { index: 0, name: H100, uuid: 'GPU-a', memoryTotalBytes: 1 },
      { index: 1, name: H100, uuid: 'GPU-b', memoryTotalBytes: 1 },
    ]);
    expect(pairGpus(two, target(['GPU-x']))).toEqual({
      problem: expect.stringMatching(/needs 2× NVIDIA H100.*has 1× NVIDIA H100.*too few/),
    });
    expect(pairGpus(two, target(['GPU-x', 'GPU-y'], 'NVIDIA H200'))).toEqual({
      problem: expect.stringMatching(/NVIDIA H100.*would go onto NVIDIA H200/),
    });
    expect(pairGpus(two, target(['GPU-x', 'GPU-y'], H100, '570.86.10'))).toEqual({
      problem: expect.stringMatching(/driver 580.159.04.*runs 570.86.10/),
    });
    expect(pairGpus(two, target([], H100, null))).toEqual({ problem: expect.stringMatching(/the placeholder has no NVIDIA GPU/) });
  });

  it("turns nvidia-smi's UUID into CUuuid's 16 bytes and refuses anything else", () => {
    expect(uuidBytes('GPU-1b2c3d4e-0000-1111-2222-3333444455ff')).toEqual([
      0x1b, 0x2c, 0x3d, 0x4e, 0, 0, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0xff,
    ]);
    expect(() => uuidBytes('MIG-1b2c3d4e-0000-1111-2222-333344445555')).toThrow(/not a GPU UUID/);
  });
});

describe("a container's GPUs, from its bundle as the device plugin set it", () => {
  const node: GpuNodeInfo = { driverVersion: DRIVER, gpus: [gpu(1), gpu(0)] };

  it('reads NVIDIA_VISIBLE_DEVICES: UUIDs, indexes, all, or none', () => {
    expect(containerDevices(['PATH=/bin', `NVIDIA_VISIBLE_DEVICES=${uuid(1)}`], {})).toEqual([uuid(1)]);
    expect(containerDevices(['NVIDIA_VISIBLE_DEVICES=1,0'], {})).toEqual(['1', '0']);
    expect(containerDevices(['NVIDIA_VISIBLE_DEVICES=all'], {})).toBe('all');
    for (const env of [[], ['NVIDIA_VISIBLE_DEVICES=void'], ['NVIDIA_VISIBLE_DEVICES=none'], ['NVIDIA_VISIBLE_DEVICES=']]) {
      expect(containerDevices(env, {})).toEqual([]);
    }
  });

  it('prefers CDI devices named in cdi.k8s.io/* annotations', () => {
    const annotations = { 'cdi.k8s.io/nvidia-device-plugin_uuid': `nvidia.com/gpu=${uuid(0)},vendor.com/other=x` };
    expect(containerDevices(['NVIDIA_VISIBLE_DEVICES=void'], annotations)).toEqual([uuid(0)]);
    expect(containerDevices([], { 'cdi.k8s.io/x': 'nvidia.com/gpu=all' })).toBe('all');
  });

  it("selects the node's GPUs in the named order, all in index order, and reports unknown or repeated names", () => {
    expect(selectGpus(node, ['1', uuid(0)])).toEqual([gpu(1), gpu(0)]);
    expect(selectGpus(node, 'all')).toEqual([gpu(0), gpu(1)]);
    expect(selectGpus(node, ['7'])).toEqual({ problem: expect.stringContaining('no GPU of this node is "7"') });
    expect(selectGpus(node, ['0', uuid(0)])).toEqual({ problem: expect.stringContaining('named twice') });
  });
});
