import { torporFailure } from '../../../contract/failures.js';
import {
  GPU_SELECTOR_PATTERN,
  type GpuCheckpointRecord,
  type GpuNodeInfo,
  type GpuPair,
  type GpuSelection,
} from '../../../contract/gpu-types.js';
import { pairGpus } from './gpu-pairing.js';
import { type DeviceRequest, selectGpus } from './gpu-selection.js';

/** The GPUs a restore goes onto: named by the request (local), or given to the placeholder by its runtime. */
export interface RestoreTargetGpus {
  devices: DeviceRequest;
  /** True when the names come from the request: an unknown one is then the caller's mistake (InvalidSpec). */
  requested: boolean;
  what: string;
}

/** A container target's own devices; a local target's the request names (checked here again), all the node's by default. */
export function targetOf(input: { gpus?: GpuSelection; container?: unknown }, containerDevices: DeviceRequest): RestoreTargetGpus {
  if (input.container !== undefined) return { devices: containerDevices, requested: false, what: 'the container' };
  if (input.gpus === undefined) return { devices: 'all', requested: false, what: 'the GPUs' };
  const bad = input.gpus.filter((g) => typeof g !== 'string' || !GPU_SELECTOR_PATTERN.test(g));
  if (bad.length > 0 || input.gpus.length === 0 || input.gpus.length > 64) {
    throw torporFailure(
      'InvalidSpec',
      `gpus must list GPU UUIDs (GPU-xxxxxxxx-…) or nvidia-smi indexes; got ${JSON.stringify(input.gpus)}`,
    );
  }
  return { devices: input.gpus, requested: true, what: `GPUs ${input.gpus.join(', ')}` };
}

/** The UUID pairs from the recorded GPUs onto the target's, or the typed refusal. */
export function restorePairs(recorded: GpuCheckpointRecord, target: RestoreTargetGpus, info: GpuNodeInfo, node: string): GpuPair[] {
  const chosen = selectGpus(info, target.devices);
  if ('problem' in chosen) {
    const type = target.requested ? 'InvalidSpec' : 'GpuMismatch';
    throw torporFailure(type, `Cannot restore on node ${node}: ${chosen.problem}`, { recorded });
  }
  const pairing = pairGpus(recorded, { driverVersion: info.driverVersion, gpus: chosen, what: `${target.what} on node ${node}` });
  if ('problem' in pairing) throw torporFailure('GpuMismatch', `Cannot restore on node ${node}: ${pairing.problem}`, { recorded });
  return pairing.pairs;
}
