import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import type { GpuNodeInfo } from '../../contract/gpu-types.js';
import type { ContainerGpu } from './flow-runc.js';

/**
 * The container phase's settings (device-workflows.sh sets them; the agent shares runc, its root,
 * its namespaces and its store). The app directory holds ChReK's smart-entrypoint.sh beside the app.
 */
export interface ContainerSetup {
  runc: string;
  runcRoot: string;
  /** Where bundles, work directories and logs go. */
  dir: string;
  namespace: string;
  storageRoot: string;
  /** Source and placeholder GPUs: two different ones where the machine has two. Null in a dry run. */
  gpus: { source: ContainerGpu; placeholder: ContainerGpu } | null;
}

async function nodeGpus(): Promise<Array<{ uuid: string; busId: string }>> {
  const out = await execa('nvidia-smi', ['--query-gpu=uuid,pci.bus_id', '--format=csv,noheader'], { reject: false });
  if (out.exitCode !== 0) return [];
  return out.stdout.split('\n').flatMap((line) => {
    const [uuid, busId] = line.split(',').map((c) => c.trim());
    return uuid && busId ? [{ uuid, busId }] : [];
  });
}

export function containerSetupFromEnv(gpus: GpuNodeInfo, env: NodeJS.ProcessEnv = process.env): () => Promise<ContainerSetup> {
  return async () => {
    const found = gpus.gpus.length === 0 || env.DRY_RUN ? [] : await nodeGpus();
    const pick = async (g: { uuid: string; busId: string }): Promise<ContainerGpu> => ({
      uuid: g.uuid,
      deviceNode: await gpuDeviceNode(g.busId),
    });
    const first = found[0];
    return {
      runc: env.TORPOR_RUNC ?? 'runc',
      runcRoot: env.TORPOR_RUNC_ROOT ?? '/run/torpor-runc',
      dir: env.BENCH_CONTAINER_DIR ?? '/var/tmp/torpor-gpu/containers',
      namespace: env.TORPOR_CONTAINER_NAMESPACES?.split(',')[0] ?? 'bench',
      storageRoot: env.TORPOR_STORAGE_ROOT ?? '/var/lib/torpor/checkpoints',
      gpus: first ? { source: await pick(first), placeholder: await pick(found[1] ?? first) } : null,
    };
  };
}

/** /dev/nvidiaN of the GPU at PCI `busId` ("00000000:18:00.0"), from the driver's /proc; null where it does not say. */
async function gpuDeviceNode(busId: string): Promise<string | null> {
  const dir = busId.toLowerCase().replace(/^0{4}(?=[0-9a-f]{4}:)/, '');
  const info = await readFile(`/proc/driver/nvidia/gpus/${dir}/information`, 'utf8').catch(() => '');
  const minor = /Device Minor:\s*(\d+)/.exec(info)?.[1];
  return minor === undefined ? null : `/dev/nvidia${minor}`;
}
