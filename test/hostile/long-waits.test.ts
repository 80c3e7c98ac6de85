import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HASH_LABEL, ROLE_LABEL } from '../../activities/cluster/manifests.js';
import { TorporClient } from '../../client/index.js';
import { checkpointWorkflowId } from '../../contract/naming.js';
import type { CheckpointManifest } from '../../contract/types.js';
import { attemptsOf } from '../support/activity-attempts.js';
import { type KubeWorkflowWorld, startKubeWorkflowWorld } from '../support/kube-workflow-world.js';
import type { TestKubelet } from '../support/test-kubelet.js';

// Hostile input here: a pod that stays unready, with no watch event, for longer than the cluster
// wait's heartbeat timeout (30 s), as a quiet image pull or a slow readiness probe does (1).
// Real Temporal and a real Kubernetes control plane; the node steps answer at the node's queue.
const NODE = 'slow-node';
const NS = 'slow';
const SILENT_MS = 40_000;
const clusterDir = path.join(os.tmpdir(), `torpor-long-waits-${process.pid}`);
let kubelet: TestKubelet;
let core: CoreV1Api;
let client: Client;
let world: KubeWorkflowWorld;

const podOf = async (selector: string) => (await core.listNamespacedPod({ namespace: NS, labelSelector: selector })).items[0];

function nodeSteps() {
  const manifest = (hash: string) => ({ hash, node: NODE, runtime: 'kubernetes', files: [], totalBytes: 0, gpu: null }) as unknown;
  return {
    findCheckpoint: async () => null,
    gpuFreeze: async () => ({ pid: 1, before: 'none', after: 'none', lockMs: 0, checkpointMs: 0, gpu: null }),
    dumpContainer: async (input: { hash: string; dumpId: string }) => ({
      ...input,
      labels: {},
      initPid: 1,
      dumpMs: 1,
      rootfsDiffBytes: 0,
      imageBytes: 1,
      alreadyCommitted: false,
    }),
    commitCheckpoint: async ({ hash }: { hash: string }) => manifest(hash) as CheckpointManifest,
    discardDump: async () => undefined,
    signalCheckpointPod: async ({ hash }: { hash: string }) => {
      const pod = await podOf(`${HASH_LABEL}=${hash},${ROLE_LABEL}=checkpoint`);
      if (pod) await kubelet.succeed(pod);
    },
  };
}

beforeAll(async () => {
  world = await startKubeWorkflowWorld({ dir: clusterDir, namespace: NS, node: NODE, nodeActivities: nodeSteps() });
  ({ core, kubelet, client } = world);
}, 180_000);
afterAll(async () => {
  await world?.stop();
});

describe('a cluster wait against a silent watch (real kube-apiserver)', () => {
  it(`a checkpoint pod left unready and silent for ${SILENT_MS / 1000} s is waited for in one attempt, not timed out and retried`, {
    timeout: 150_000,
  }, async () => {
    const hash = 'silent-pod';
    const checkpoint = new TorporClient(client).checkpoint({
      hash,
      node: NODE,
      runtime: 'kubernetes',
      workload: { command: ['python3', '/app/serve.py'] },
      kubernetes: { namespace: NS, image: 'registry.example/llm:1.0' },
      readyTimeoutMs: 120_000,
      exitTimeoutMs: 30_000,
    });
    const pod = await kubelet.awaitPod(NS, `${HASH_LABEL}=${hash}`);
    await kubelet.bind(pod);
    // Scheduled, then nothing: no status, no event, for longer than the wait's heartbeat timeout.
    await sleep(SILENT_MS);
    await kubelet.run(pod, true);
    const result = await checkpoint;
    expect(result.outcome).toBe('created');
    const handle = client.workflow.getHandle(checkpointWorkflowId(hash));
    expect(await attemptsOf(handle, 'waitForCheckpointPod')).toEqual({ attempts: [1], timedOut: 0 });
  });
});
