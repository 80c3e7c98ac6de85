import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { V1Pod } from '@kubernetes/client-node';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { checkpointWorkflowId } from '../../contract/naming.js';
import { type InstalledChart, RELEASE, RELEASE_NS, startInstalledChart, WORKER_REPO, WORKER_TAG } from '../support/installed-chart.js';
import { type ChartWorkers, completedActivities, ranOn, waitForRollout } from '../support/installed-chart-pods.js';
import { SAMPLE_IMAGE } from '../support/kube-real-images.js';

// The Helm chart installed on a real node (kubelet, containerd CRI, CNI) from the worker image that
// scripts/build-images.sh builds with BuildKit: the control worker runs as the chart's Deployment, the
// node agent as its privileged DaemonSet pod, and the test calls Torpor from outside the cluster.
const NS = 'ml';
const NODE = 'chart-node';
let env: InstalledChart;
let installed: ChartWorkers;

const workload = (initSeconds: number) => ({
  command: ['sh', '/app/smart-entrypoint.sh', 'python3', '/app/app.py'],
  env: { SAMPLE_HOST: '0.0.0.0', SAMPLE_PORT: '8000', SAMPLE_TABLE_MB: '16', SAMPLE_INIT_SECONDS: String(initSeconds) },
});
const kubernetes = { namespace: NS, image: SAMPLE_IMAGE, gpus: 0, restoreHttpProbe: { port: 8000, path: '/health' } };

const CLI = fileURLToPath(new URL('../../cli/torpor.mjs', import.meta.url));

/** The torpor CLI as an operator runs it outside the cluster: a process given the whole request on stdin. */
async function cli(command: 'checkpoint' | 'restore', request: object) {
  const run = await execa(process.execPath, [CLI, '--address', inject('temporalAddress'), '--json', command, '--request', '-'], {
    input: JSON.stringify(request),
    reject: false,
  });
  expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
  return JSON.parse(run.stdout) as { workflowId: string; result: Record<string, unknown> };
}

async function onlyPod(labelSelector: string): Promise<V1Pod> {
  const pod = (await env.core.listNamespacedPod({ namespace: NS, labelSelector })).items[0];
  if (!pod) throw new Error(`no pod ${labelSelector}`);
  return pod;
}

async function restoreAndRead(hash: string, restoreId: string): Promise<Record<string, unknown>> {
  await env.torpor.restore({ hash, node: NODE, runtime: 'kubernetes', restoreId, kubernetes, readyTimeoutMs: 120_000 });
  return readPlaceholder(restoreId);
}

/** GET /state from the placeholder pod of `restoreId`, at its pod address, once it is ready and never restarted. */
async function readPlaceholder(restoreId: string): Promise<Record<string, unknown>> {
  const pod = await onlyPod(`torpor.dev/restore-id=${restoreId}`);
  expect(pod.status?.containerStatuses?.[0]).toMatchObject({ ready: true, restartCount: 0 });
  return (await (await fetch(`http://${pod.status?.podIP}:8000/state`)).json()) as Record<string, unknown>;
}

beforeAll(async () => {
  env = await startInstalledChart({ namespaces: [NS], nodeName: NODE });
  await env.install();
  installed = await waitForRollout(env, WORKER_TAG);
}, 600_000);
afterAll(async () => {
  await env?.stop();
}, 180_000);

describe('the Helm chart installed on a real node, from images built without Docker', () => {
  it('the CLI checkpoints the sample Job from the agent pod and restores it into a placeholder that answers over HTTP', async () => {
    const checkpoint = await cli('checkpoint', {
      hash: 'chart-1',
      node: NODE,
      runtime: 'kubernetes',
      workload: workload(1),
      kubernetes,
      readyTimeoutMs: 120_000,
      exitTimeoutMs: 60_000,
    });
    expect(checkpoint).toMatchObject({
      workflowId: checkpointWorkflowId('chart-1'),
      result: { outcome: 'created', workloadEnd: 'exited' },
    });
    const job = await onlyPod('torpor.dev/role=checkpoint');
    const jobLog = await env.core.readNamespacedPodLog({ name: job.metadata?.name as string, namespace: NS });
    const checksum = /checksum=([0-9a-f]{64})/.exec(jobLog)?.[1];
    expect(checksum).toBeDefined();
    expect(jobLog).toMatch(/Checkpoint signal file detected/);
    // Every step ran in the chart's pods: cluster steps in the control Deployment, node steps in the agent.
    const activities = await completedActivities(env, checkpointWorkflowId('chart-1'));
    expect(activities.some((a) => a.queue === `torpor-node-${NODE}`)).toBe(true);
    expect(activities.filter((a) => !ranOn(a, installed))).toEqual([]);

    const restored = await cli('restore', {
      hash: 'chart-1',
      node: NODE,
      runtime: 'kubernetes',
      restoreId: 'c1',
      kubernetes,
      readyTimeoutMs: 120_000,
    });
    expect(restored.result).toMatchObject({ hash: 'chart-1', restoreId: 'c1' });
    expect(await readPlaceholder('c1')).toMatchObject({ phase: 'restored', checksum });
  }, 300_000);

  it('finishes a checkpoint on the new workers when helm upgrade replaces them while it waits for readiness', async () => {
    const retag = await env.node.ctr(['images', 'tag', `${WORKER_REPO}:${WORKER_TAG}`, `${WORKER_REPO}:next`]);
    expect(retag.exitCode).toBe(0);
    // The app takes 45 s to become ready: the upgrade lands while the workflow waits for it.
    const started = await env.torpor.startCheckpoint({
      hash: 'chart-2',
      node: NODE,
      runtime: 'kubernetes',
      workload: workload(45),
      kubernetes,
      readyTimeoutMs: 240_000,
      exitTimeoutMs: 60_000,
    });
    while ((await env.core.listNamespacedPod({ namespace: NS, labelSelector: 'torpor.dev/hash=chart-2' })).items.length === 0)
      await sleep(500);
    await env.install(['image.tag=next']);
    const replaced = await waitForRollout(env, 'next');
    const result = await env.torpor.result(started);
    expect(result).toMatchObject({ outcome: 'created', workloadEnd: 'exited' });
    expect(replaced.control).not.toBe(installed.control);
    expect(replaced.agent).not.toBe(installed.agent);
    // The readiness wait, interrupted by the upgrade, and every step after it ran on the new workers.
    const activities = await completedActivities(env, started.workflowId);
    const waited = activities.findIndex((a) => a.activity === 'waitForCheckpointPod');
    expect(waited).toBeGreaterThan(-1);
    expect(activities.slice(waited).some((a) => a.queue === `torpor-node-${NODE}`)).toBe(true);
    expect(activities.slice(waited).filter((a) => !ranOn(a, replaced))).toEqual([]);
  }, 420_000);

  it('keeps the checkpoint store through helm uninstall, and a reinstalled chart restores from it', async () => {
    await env.helm(['uninstall', RELEASE, '--wait', '--timeout', '120s']);
    // The garbage collector deletes the workers' pods; the kubelet stops them.
    while ((await env.core.listNamespacedPod({ namespace: RELEASE_NS })).items.length > 0) await sleep(1000);
    const store = await readdir(path.join(env.site.storeHostPath, 'chart-1'));
    expect(store).toContain('checkpoint.done');

    await env.install(['image.tag=next']);
    await waitForRollout(env, 'next');
    expect(await restoreAndRead('chart-1', 'c2')).toMatchObject({ phase: 'restored' });
  }, 420_000);
});
