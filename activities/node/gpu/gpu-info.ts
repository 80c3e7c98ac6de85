import { execa } from 'execa';
import type { GpuCheckpointRecord, GpuDevice, GpuNodeInfo } from '../../../contract/gpu-types.js';

const MIB = 1024 * 1024;
const QUERY_GPU = ['--query-gpu=index,name,uuid,driver_version,memory.total,memory.used', '--format=csv,noheader,nounits'];
const QUERY_APPS = ['--query-compute-apps=pid,gpu_uuid,used_memory', '--format=csv,noheader,nounits'];

function csvRows(text: string): string[][] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => line.split(',').map((cell) => cell.trim()));
}

/** nvidia-smi reports memory in MiB with `nounits`; "[N/A]" where it cannot tell. */
function mib(cell: string | undefined): number {
  const value = Number(cell);
  return Number.isFinite(value) ? value * MIB : 0;
}

/** Parses `nvidia-smi --query-gpu=index,name,uuid,driver_version,memory.total,memory.used`. */
export function parseGpuQuery(csv: string): GpuNodeInfo {
  const rows = csvRows(csv);
  const gpus: GpuDevice[] = rows.map(([index, name, uuid, , total, used]) => ({
    index: Number(index),
    name: name ?? '',
    uuid: uuid ?? '',
    memoryTotalBytes: mib(total),
    memoryUsedBytes: mib(used),
  }));
  return { driverVersion: rows[0]?.[3] ?? null, gpus };
}

/** Sums `nvidia-smi --query-compute-apps=pid,gpu_uuid,used_memory` over the rows of `pid`. */
export function parseProcessMemory(csv: string, pid: number): number {
  return csvRows(csv)
    .filter(([p]) => Number(p) === pid)
    .reduce((sum, [, , used]) => sum + mib(used), 0);
}

/** The node's GPUs; no driver or no nvidia-smi reads as no GPUs. */
export async function queryGpus(nvidiaSmi = 'nvidia-smi'): Promise<GpuNodeInfo> {
  const result = await execa(nvidiaSmi, QUERY_GPU, { reject: false, stdin: 'ignore' });
  return result.exitCode === 0 ? parseGpuQuery(result.stdout) : { driverVersion: null, gpus: [] };
}

/** GPU memory `pid` holds, as the driver accounts it (its allocator's whole reservation). */
export async function queryProcessGpuMemory(pid: number, nvidiaSmi = 'nvidia-smi'): Promise<number> {
  const result = await execa(nvidiaSmi, QUERY_APPS, { reject: false, stdin: 'ignore' });
  return result.exitCode === 0 ? parseProcessMemory(result.stdout, pid) : 0;
}

export function checkpointRecord(info: GpuNodeInfo, processMemoryBytes: number): GpuCheckpointRecord {
  return {
    driverVersion: info.driverVersion ?? 'unknown',
    gpus: info.gpus.map(({ name, uuid, memoryTotalBytes }) => ({ name, uuid, memoryTotalBytes })),
    processMemoryBytes,
  };
}

/**
 * Why a checkpoint taken on `recorded` cannot be restored on a node with `here`, or null when it can.
 * Model and driver must match. UUIDs are not compared: the driver's restore accepts a GPU remapping
 * (CUcheckpointRestoreArgs.gpuPairs) that this agent does not pass yet, and a restore onto other GPUs
 * of the same model without it has not been tried here.
 */
export function gpuMismatch(recorded: GpuCheckpointRecord, here: GpuNodeInfo): string | null {
  if (here.driverVersion === null || here.gpus.length === 0) {
    return `the checkpoint holds GPU state (driver ${recorded.driverVersion}, ${models(recorded.gpus)}) but this node has no NVIDIA GPU`;
  }
  if (here.driverVersion !== recorded.driverVersion) {
    return `the checkpoint was taken under NVIDIA driver ${recorded.driverVersion}, this node runs ${here.driverVersion}`;
  }
  const available = here.gpus.map((g) => g.name);
  for (const gpu of recorded.gpus) {
    const at = available.indexOf(gpu.name);
    if (at < 0) return `the checkpoint needs ${models(recorded.gpus)}, this node has ${models(here.gpus)}`;
    available.splice(at, 1);
  }
  return null;
}

function models(gpus: Array<{ name: string }>): string {
  const counts = new Map<string, number>();
  for (const { name } of gpus) counts.set(name, (counts.get(name) ?? 0) + 1);
  return [...counts].map(([name, n]) => `${n}× ${name}`).join(', ');
}
