import type { GpuCheckpointRecord, GpuDevice, GpuPair, RecordedGpu } from '../../../contract/gpu-types.js';

/** The GPUs a restore target has, in the order its processes see them (CUDA ordinal = position). */
export interface TargetGpus {
  driverVersion: string | null;
  gpus: Array<Pick<GpuDevice, 'name' | 'uuid'>>;
  /** Names the target in a refusal ("this node", "placeholder abc"). */
  what: string;
}

export type Pairing = { pairs: GpuPair[] } | { problem: string };

/**
 * Pairs each recorded GPU with one of the target's: the one at the same CUDA ordinal first, where the
 * target has it, then the target's free GPUs by position. Refused only for another driver, too few
 * GPUs or another model on a pair: other UUIDs are what the pairs are for (the driver remaps them,
 * CUcheckpointRestoreArgs.gpuPairs, and wants every checkpointed GPU paired).
 */
export function pairGpus(recorded: GpuCheckpointRecord, target: TargetGpus): Pairing {
  const { gpus, what } = target;
  if (target.driverVersion === null || gpus.length === 0) {
    return {
      problem: `the checkpoint holds GPU state (driver ${recorded.driverVersion}, ${models(recorded.gpus)}) but ${what} has no NVIDIA GPU`,
    };
  }
  if (target.driverVersion !== recorded.driverVersion) {
    return { problem: `the checkpoint was taken under NVIDIA driver ${recorded.driverVersion}, ${what} runs ${target.driverVersion}` };
  }
  if (gpus.length < recorded.gpus.length) {
    return { problem: `the checkpoint needs ${models(recorded.gpus)}, ${what} has ${models(gpus)} (too few GPUs)` };
  }
  const chosen = choose(recorded.gpus, gpus.length);
  const pairs: GpuPair[] = [];
  for (const [i, gpu] of recorded.gpus.entries()) {
    const onto = gpus[chosen[i] as number] as Pick<GpuDevice, 'name' | 'uuid'>;
    if (onto.name !== gpu.name) {
      return {
        problem: `the checkpoint needs ${models(recorded.gpus)}, ${what} has ${models(gpus)} (${gpu.name} would go onto ${onto.name})`,
      };
    }
    pairs.push({ oldUuid: gpu.uuid, newUuid: onto.uuid });
  }
  return { pairs };
}

/** For each recorded GPU, the position of the target GPU it goes onto. */
function choose(recorded: RecordedGpu[], available: number): number[] {
  const chosen: Array<number | undefined> = recorded.map(() => undefined);
  const taken = new Set<number>();
  for (const [i, gpu] of recorded.entries()) {
    const ordinal = gpu.index ?? i;
    if (ordinal < available && !taken.has(ordinal)) {
      chosen[i] = ordinal;
      taken.add(ordinal);
    }
  }
  const free = [...Array(available).keys()].filter((k) => !taken.has(k));
  return chosen.map((k) => k ?? (free.shift() as number));
}

/** Pairs that change nothing are left out of the driver call: a restore onto the same GPUs passes no args, as measured. */
export function remapping(pairs: GpuPair[]): GpuPair[] {
  return pairs.some((p) => p.oldUuid !== p.newUuid) ? pairs : [];
}

/** CUuuid's 16 raw bytes from nvidia-smi's "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". */
export function uuidBytes(uuid: string): number[] {
  const hex = /^GPU-([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i.exec(uuid)?.slice(1).join('');
  if (hex === undefined) throw new Error(`"${uuid}" is not a GPU UUID (GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`);
  return Array.from({ length: 16 }, (_, i) => Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}

export function models(gpus: Array<{ name: string }>): string {
  if (gpus.length === 0) return 'no GPU';
  const counts = new Map<string, number>();
  for (const { name } of gpus) counts.set(name, (counts.get(name) ?? 0) + 1);
  return [...counts].map(([name, n]) => `${n}× ${name}`).join(', ');
}
