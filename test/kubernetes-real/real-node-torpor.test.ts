import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE_IMAGE } from '../support/kube-real-images.js';
import { type RealKubeTorpor, startRealKubeTorpor } from '../support/kube-real-torpor.js';

// The kubernetes runtime on a real node: the kubelet starts the checkpoint Job's pod and the
// restore placeholder through containerd's CRI plugin, and its own probes make them Ready.
const NS = 'ml';
const NODE = 'real-node-2';
let env: RealKubeTorpor;

const workload = {
  command: ['sh', '/app/smart-entrypoint.sh', 'python3', '/app/app.py'],
  env: { SAMPLE_HOST: '0.0.0.0', SAMPLE_PORT: '8000', SAMPLE_TABLE_MB: '16', SAMPLE_INIT_SECONDS: '1' },
};
// A CPU-only pod: the node has no GPU device plugin.
const kubernetes = { namespace: NS, image: SAMPLE_IMAGE, gpus: 0, restoreHttpProbe: { port: 8000, path: '/health' } };

async function onlyPod(labelSelector: string): Promise<V1Pod> {
  const pod = (await env.core.listNamespacedPod({ namespace: NS, labelSelector })).items[0];
  if (!pod) throw new Error(`no pod ${labelSelector}`);
  return pod;
}

beforeAll(async () => {
  env = await startRealKubeTorpor({ namespace: NS, nodeName: NODE, name: 'rkt' });
}, 300_000);
afterAll(async () => {
  await env?.stop();
}, 120_000);

describe('the kubernetes runtime on a real node (kubelet, containerd CRI, CNI)', () => {
  it('checkpoints the kubelet’s Job pod, restores into a kubelet-started placeholder, Ready by its HTTP probe', async () => {
    const checkpoint = await env.h.torpor.checkpoint({
      hash: 'real-k8s-1',
      node: NODE,
      runtime: 'kubernetes',
      workload,
      kubernetes,
      readyTimeoutMs: 120_000,
      exitTimeoutMs: 60_000,
    });
    expect(checkpoint).toMatchObject({ outcome: 'created', workloadEnd: 'exited' });
    expect(checkpoint.manifest).toMatchObject({ runtime: 'kubernetes', node: NODE });
    const job = await onlyPod('torpor.dev/role=checkpoint');
    const jobLog = await env.core.readNamespacedPodLog({ name: job.metadata?.name as string, namespace: NS });
    const checksum = /checksum=([0-9a-f]{64})/.exec(jobLog)?.[1];
    expect(checksum).toBeDefined();
    expect(jobLog).toMatch(/Checkpoint signal file detected/);
    // The kubelet saw the app exit after the signal: the Job's pod completed.
    const ended = JSON.stringify(job.status?.containerStatuses?.map((c) => c.state));
    expect(job.status?.phase, `the Job's pod ended with ${ended}; its log ends:\n${jobLog.slice(-1500)}`).toBe('Succeeded');

    await env.h.torpor.restore({
      hash: 'real-k8s-1',
      node: NODE,
      runtime: 'kubernetes',
      restoreId: 'r1',
      kubernetes,
      readyTimeoutMs: 120_000,
    });
    const pod = await onlyPod('torpor.dev/restore-id=r1');
    expect(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    const state = (await (await fetch(`http://${pod.status?.podIP}:8000/state`)).json()) as Record<string, unknown>;
    expect(state).toMatchObject({ phase: 'restored', checksum });
    await sleep(500);
    const log = await env.core.readNamespacedPodLog({ name: pod.metadata?.name as string, namespace: NS });
    expect(log).toMatch(/checkpoint real-k8s-1 found/);
    // The restored app writes to the placeholder's stdout pipe, so the kubelet's log shows it.
    expect(log).toMatch(/Detected restore from checkpoint/);
    expect(pod.status?.containerStatuses?.[0]).toMatchObject({ ready: true, restartCount: 0 });
  }, 300_000);
});
