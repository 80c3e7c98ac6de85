import { describe, expect, it } from 'vitest';
import { groupGpus, groupRecord, parseComputeApps, parseGpuQuery, parseProcessMemory } from '../../activities/node/gpu/gpu-info.js';
import { pairGpus } from '../../activities/node/gpu/gpu-pairing.js';
import type { GpuCheckpointRecord, GpuDevice, GpuNodeInfo } from '../../contract/gpu-types.js';

const MIB = 1024 * 1024;
const H100 = 'NVIDIA H100 80GB HBM3';
const SMI_GPUS = `0, ${H100}, GPU-1b2c3d4e-0000-1111-2222-333344445555, 580.159.04, 81559, 7029\n`;

/** The record of a process that could see every GPU of `info` (as a local workload can). */
const recordOf = (info: GpuNodeInfo) => groupRecord(info.driverVersion, info.gpus, [], []);
/** Why `recorded` cannot go onto all of `here`'s GPUs, or null (the agent's check for a local restore). */
function mismatch(recorded: GpuCheckpointRecord, here: GpuNodeInfo): string | null {
  const pairing = pairGpus(recorded, { driverVersion: here.driverVersion, gpus: here.gpus, what: 'this node' });
  return 'problem' in pairing ? pairing.problem : null;
}

describe('GPU information', () => {
  it("reads model, UUID, driver and memory from nvidia-smi's CSV", () => {
    expect(parseGpuQuery(SMI_GPUS)).toEqual({
      driverVersion: '580.159.04',
      gpus: [
        {
          index: 0,
          name: H100,
          uuid: 'GPU-1b2c3d4e-0000-1111-2222-333344445555',
          memoryTotalBytes: 81559 * MIB,
          memoryUsedBytes: 7029 * MIB,
        },
      ],
    });
    expect(parseGpuQuery('')).toEqual({ driverVersion: null, gpus: [] });
  });

  it('sums the GPU memory of one process over its GPUs and ignores other processes', () => {
    const apps = '4242, GPU-a, 6500\n4243, GPU-a, 100\n4242, GPU-b, [N/A]\n4242, GPU-c, 500\n';
    expect(parseProcessMemory(apps, 4242)).toBe(7000 * MIB);
    expect(parseProcessMemory(apps, 1)).toBe(0);
  });

  it('accepts a restore on the same model and driver, whatever the UUIDs', () => {
    const recorded = recordOf(parseGpuQuery(SMI_GPUS));
    const here = parseGpuQuery(`0, ${H100}, GPU-other, 580.159.04, 81559, 0\n1, ${H100}, GPU-more, 580.159.04, 81559, 0\n`);
    expect(mismatch(recorded, here)).toBeNull();
  });

  it('refuses another driver version, another model, too few GPUs, or no GPU at all', () => {
    const recorded = recordOf(parseGpuQuery(SMI_GPUS));
    expect(mismatch(recorded, parseGpuQuery(`0, ${H100}, GPU-x, 570.86.10, 81559, 0\n`))).toMatch(/driver 580.159.04.*570.86.10/);
    expect(mismatch(recorded, parseGpuQuery('0, NVIDIA H200, GPU-x, 580.159.04, 143771, 0\n'))).toMatch(
      /needs 1× NVIDIA H100.*has 1× NVIDIA H200/,
    );
    const two = recordOf(parseGpuQuery(`${SMI_GPUS}1, ${H100}, GPU-y, 580.159.04, 81559, 0\n`));
    expect(mismatch(two, parseGpuQuery(SMI_GPUS))).toMatch(/needs 2× NVIDIA H100/);
    expect(mismatch(recorded, { driverVersion: null, gpus: [] })).toMatch(/no NVIDIA GPU/);
  });

  it("records the GPUs a group could see, the node's all when it names none, plus any a member used that it missed", () => {
    const node = parseGpuQuery(
      `1, ${H100}, GPU-b, 580.159.04, 81559, 0\n0, ${H100}, GPU-a, 580.159.04, 81559, 0\n2, ${H100}, GPU-c, 580.159.04, 81559, 0\n`,
    );
    const [b, a, c] = node.gpus as [GpuDevice, GpuDevice, GpuDevice];
    const apps = parseComputeApps('41, GPU-a, 100\n41, GPU-b, 50\n99, GPU-c, 7\n');
    expect(groupGpus(node, [b], apps, [41, 42])).toEqual([b, a]);
    expect(groupGpus(node, [], apps, [41])).toEqual([a, b, c]);
    const record = groupRecord('580.159.04', [b], apps, [41, 42]);
    expect(record.gpus).toEqual([{ index: 0, name: H100, uuid: 'GPU-b', memoryTotalBytes: 81559 * MIB }]);
    expect(record.processes).toEqual([
      { pid: 41, memoryBytes: 150 * MIB, gpuUuids: ['GPU-a', 'GPU-b'] },
      { pid: 42, memoryBytes: 0, gpuUuids: [] },
    ]);
    expect(record.processMemoryBytes).toBe(150 * MIB);
  });
});
