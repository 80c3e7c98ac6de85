import { execa } from 'execa';
import type { GpuCheckpointRecord, GpuDevice, GpuNodeInfo, GpuProcessRecord } from '../../../contract/gpu-types.js';

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
  return processMemory(parseComputeApps(csv), pid);
}

/** What `pid` holds over all GPUs. */
export function processMemory(apps: ComputeApp[], pid: number): number {
  return apps.filter((app) => app.pid === pid).reduce((sum, app) => sum + app.usedBytes, 0);
}

/** One row of `nvidia-smi --query-compute-apps`: a process's memory on one GPU. */
export interface ComputeApp {
  pid: number;
  gpuUuid: string;
  usedBytes: number;
}

export function parseComputeApps(csv: string): ComputeApp[] {
  return csvRows(csv).map(([pid, gpuUuid, used]) => ({ pid: Number(pid), gpuUuid: gpuUuid ?? '', usedBytes: mib(used) }));
}

/** The node's CUDA processes and their memory per GPU; none where nvidia-smi is missing or fails. */
export async function queryComputeApps(nvidiaSmi = 'nvidia-smi'): Promise<ComputeApp[]> {
  const result = await execa(nvidiaSmi, QUERY_APPS, { reject: false, stdin: 'ignore' });
  return result.exitCode === 0 ? parseComputeApps(result.stdout) : [];
}

/** The node's GPUs; no driver or no nvidia-smi reads as no GPUs. */
export async function queryGpus(nvidiaSmi = 'nvidia-smi'): Promise<GpuNodeInfo> {
  const result = await execa(nvidiaSmi, QUERY_GPU, { reject: false, stdin: 'ignore' });
  return result.exitCode === 0 ? parseGpuQuery(result.stdout) : { driverVersion: null, gpus: [] };
}

/** GPU memory `pid` holds, as the driver accounts it (its allocator's whole reservation). */
export async function queryProcessGpuMemory(pid: number, nvidiaSmi = 'nvidia-smi'): Promise<number> {
  return processMemory(await queryComputeApps(nvidiaSmi), pid);
}

/**
 * The GPUs a group's record names: those it could see (`visible`, the node's all when it names
 * none: devices bound in by hand), plus any GPU nvidia-smi shows a member using that `visible`
 * missed, since the driver wants every GPU a process checkpointed paired at the restore.
 */
export function groupGpus(node: GpuNodeInfo, visible: GpuDevice[], apps: ComputeApp[], pids: number[]): GpuDevice[] {
  const byIndex = [...node.gpus].sort((a, b) => a.index - b.index);
  const seen = visible.length > 0 ? visible : byIndex;
  const used = new Set(apps.filter((a) => pids.includes(a.pid)).map((a) => a.gpuUuid));
  return [...seen, ...byIndex.filter((g) => used.has(g.uuid) && !seen.includes(g))];
}

/**
 * The record of a group's GPU state: the GPUs the group could see (`visible`, in its CUDA ordinal
 * order), and per member its memory and the GPUs it held memory on, as nvidia-smi lists them.
 */
export function groupRecord(driverVersion: string | null, visible: GpuDevice[], apps: ComputeApp[], pids: number[]): GpuCheckpointRecord {
  const processes: GpuProcessRecord[] = pids.map((pid) => {
    const rows = apps.filter((a) => a.pid === pid);
    return { pid, memoryBytes: rows.reduce((sum, a) => sum + a.usedBytes, 0), gpuUuids: [...new Set(rows.map((a) => a.gpuUuid))] };
  });
  return {
    driverVersion: driverVersion ?? 'unknown',
    gpus: visible.map(({ name, uuid, memoryTotalBytes }, ordinal) => ({ index: ordinal, name, uuid, memoryTotalBytes })),
    processMemoryBytes: processes.reduce((sum, p) => sum + p.memoryBytes, 0),
    processes,
  };
}
