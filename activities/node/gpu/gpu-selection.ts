import type { GpuDevice, GpuNodeInfo } from '../../../contract/gpu-types.js';

/** What a container was given: GPUs by UUID or index, all of the node's, or none. */
export type DeviceRequest = string[] | 'all';

const CDI_ANNOTATION = 'cdi.k8s.io/';
const CDI_GPU_KIND = 'nvidia.com/gpu=';

/**
 * The GPUs a container's runtime bundle gives it, as the NVIDIA device plugin sets them: CDI devices
 * (`cdi.k8s.io/*` annotations naming `nvidia.com/gpu=<uuid|index|all>`) when there are any, else
 * NVIDIA_VISIBLE_DEVICES of its process environment ("all", a comma list, or "void"/"none"/unset: none).
 */
export function containerDevices(env: string[], annotations: Record<string, string>): DeviceRequest {
  const cdi = Object.entries(annotations)
    .filter(([key]) => key.startsWith(CDI_ANNOTATION))
    .flatMap(([, value]) => value.split(','))
    .map((device) => device.trim())
    .filter((device) => device.startsWith(CDI_GPU_KIND))
    .map((device) => device.slice(CDI_GPU_KIND.length));
  if (cdi.length > 0) return cdi.includes('all') ? 'all' : cdi;
  const visible =
    env
      .findLast((e) => e.startsWith('NVIDIA_VISIBLE_DEVICES='))
      ?.slice('NVIDIA_VISIBLE_DEVICES='.length)
      .trim() ?? '';
  if (visible === 'all') return 'all';
  if (visible === '' || visible === 'void' || visible === 'none') return [];
  return visible.split(',').map((d) => d.trim());
}

/**
 * The node's GPUs a request names, in the request's order; 'all' is every GPU in index order.
 * Returns what is wrong instead when a name matches no GPU of the node, or names one twice.
 */
export function selectGpus(node: GpuNodeInfo, wanted: DeviceRequest): GpuDevice[] | { problem: string } {
  const byIndex = [...node.gpus].sort((a, b) => a.index - b.index);
  if (wanted === 'all') return byIndex;
  const chosen: GpuDevice[] = [];
  for (const name of wanted) {
    const gpu = node.gpus.find((g) => g.uuid.toLowerCase() === name.toLowerCase() || (/^[0-9]+$/.test(name) && g.index === Number(name)));
    if (!gpu)
      return { problem: `no GPU of this node is "${name}" (it has ${node.gpus.map((g) => `${g.index}: ${g.uuid}`).join(', ') || 'none'})` };
    if (chosen.includes(gpu)) return { problem: `GPU ${gpu.index} (${gpu.uuid}) is named twice` };
    chosen.push(gpu);
  }
  return chosen;
}
