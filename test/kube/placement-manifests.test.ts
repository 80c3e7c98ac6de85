import { describe, expect, it } from 'vitest';
import {
  CHECKPOINT_WAIT_ENV,
  checkpointJob,
  GPU_PRODUCT_LABEL,
  gpuProductLabelValue,
  restorePod,
} from '../../activities/cluster/manifests.js';
import { describeSharedCheckpoint } from '../../activities/cluster/shared-checkpoint.js';
import type { KubernetesWorkload } from '../../contract/kubernetes.js';
import { parseCheckpointRequest, parseRestoreRequest } from '../../contract/spec.js';
import { testClusterPolicy } from '../support/cluster-policy.js';

// Pure builders and validation: where the pods of a request without a node may be scheduled.
const POLICY = testClusterPolicy(['ml']);
const workload = (extra: Partial<KubernetesWorkload> = {}): KubernetesWorkload => ({
  namespace: 'ml',
  image: 'registry.example/llm:1.0',
  gpus: 1,
  command: [],
  env: {},
  ...extra,
});
const podSpecOf = (w: KubernetesWorkload) => checkpointJob('h-1', w, POLICY).spec?.template.spec;

describe('placement of the pods Torpor creates', () => {
  it('pins a pod to the request’s node, and leaves one without a node to the scheduler, within the request’s node selector', () => {
    expect(podSpecOf(workload({ node: 'gpu-1' }))?.nodeSelector).toEqual({ 'kubernetes.io/hostname': 'gpu-1' });
    expect(podSpecOf(workload())?.nodeSelector).toBeUndefined();
    expect(podSpecOf(workload({ nodeSelector: { pool: 'a100' } }))?.nodeSelector).toEqual({ pool: 'a100' });
    expect(podSpecOf(workload({ node: 'gpu-1', nodeSelector: { pool: 'a100' } }))?.nodeSelector).toEqual({
      pool: 'a100',
      'kubernetes.io/hostname': 'gpu-1',
    });
    expect(podSpecOf(workload())?.containers[0]?.resources?.limits).toEqual({ 'nvidia.com/gpu': '1' });
  });

  it('gives a placeholder of a GPU checkpoint an affinity to its GPU model, and the wait for a checkpoint still being fetched', () => {
    const spec = restorePod('h-1', 'r1', workload({ gpuProduct: 'NVIDIA-H100-80GB-HBM3', checkpointWaitSeconds: 300 }), POLICY).spec;
    expect(spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms).toEqual([
      { matchExpressions: [{ key: GPU_PRODUCT_LABEL, operator: 'In', values: ['NVIDIA-H100-80GB-HBM3'] }] },
    ]);
    expect(spec?.containers[0]?.env).toContainEqual({ name: CHECKPOINT_WAIT_ENV, value: '300' });
    const pinned = restorePod('h-1', 'r1', workload({ node: 'gpu-1' }), POLICY).spec;
    expect(pinned?.affinity).toBeUndefined();
    expect(pinned?.containers[0]?.env?.map((e) => e.name)).not.toContain(CHECKPOINT_WAIT_ENV);
  });

  it('refuses to place a restore when the control worker has no shared store to read the GPU model from', async () => {
    await expect(describeSharedCheckpoint(undefined, { hash: 'h-1' })).rejects.toMatchObject({
      type: 'SharedStoreMisconfigured',
      nonRetryable: true,
      message: expect.stringContaining('TORPOR_S3_BUCKET'),
    });
  });

  it('writes a GPU name as GPU feature discovery labels it', () => {
    expect(gpuProductLabelValue('NVIDIA H100 80GB HBM3')).toBe('NVIDIA-H100-80GB-HBM3');
    expect(gpuProductLabelValue(' NVIDIA A100-SXM4-40GB ')).toBe('NVIDIA-A100-SXM4-40GB');
    expect(gpuProductLabelValue('Tesla (T4)/x')).toBe('Tesla-T4-x');
    expect(gpuProductLabelValue('x'.repeat(80))).toHaveLength(63);
  });

  it('accepts a kubernetes request without a node, refuses a local one, and a placed restore without the shared store', () => {
    const kubernetes = { namespace: 'ml', image: 'registry.example/llm:1.0', nodeSelector: { 'example.com/pool': 'a' } };
    const workloadSpec = { command: ['python3'] };
    expect(parseCheckpointRequest({ hash: 'h-1', runtime: 'kubernetes', workload: workloadSpec, kubernetes }).node).toBeUndefined();
    expect(() => parseCheckpointRequest({ hash: 'h-1', runtime: 'local', workload: workloadSpec })).toThrow(
      /node is required for the local runtime/,
    );
    expect(
      parseRestoreRequest({ hash: 'h-1', runtime: 'kubernetes', restoreId: 'r1', kubernetes, sharedStore: true }).node,
    ).toBeUndefined();
    expect(() => parseRestoreRequest({ hash: 'h-1', runtime: 'kubernetes', restoreId: 'r1', kubernetes })).toThrow(
      /node is required unless sharedStore is true/,
    );
    expect(() =>
      parseCheckpointRequest({
        hash: 'h-1',
        runtime: 'kubernetes',
        workload: workloadSpec,
        kubernetes: { ...kubernetes, nodeSelector: { 'a b': 'c' } },
      }),
    ).toThrow(/kubernetes.nodeSelector.a b Invalid key/);
  });
});
