import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { EstablishedPolicy, NetworkLockMethod } from '../../contract/network.js';
import type { CheckpointResult } from '../../contract/types.js';
import { readSampleStatus, type SampleStatus, sampleHealthProbe } from '../../sample-app/workload.js';
import { KeepAliveClient } from '../support/keep-alive-client.js';
import { killCheckpointProcesses, processesOfCheckpoint } from '../support/leftovers.js';
import { eventually } from '../support/runc-containers.js';
import { testSample } from '../support/sample.js';
import { startTorpor, type TorporHarness } from '../support/torpor-harness.js';

const hasIptables = await access(path.resolve('.torpor/bin/iptables-restore'), constants.X_OK).then(
  () => true,
  () => false,
);

interface Cycle {
  h: TorporHarness;
  client: KeepAliveClient;
  /** What the app answered on the client's connection while it was still loading, before the checkpoint. */
  first: SampleStatus;
  checkpointed: CheckpointResult;
  atCheckpoint: SampleStatus;
  hash: string;
}

const started: Cycle[] = [];

/**
 * Starts a checkpoint of the sample app and, while the app is still loading (it listens from its
 * first second, as model servers do), opens a keep-alive connection and asks it once: the
 * connection is established before CRIU dumps the app.
 */
async function checkpointWithClient(established: EstablishedPolicy, lock: NetworkLockMethod): Promise<Cycle> {
  const h = await startTorpor({ env: { TORPOR_CRIU_NETWORK_LOCK: lock } });
  const sample = testSample(h.storage, { SAMPLE_INIT_SECONDS: '2' });
  const handle = await h.torpor.startCheckpoint({
    hash: sample.hash,
    node: h.node,
    runtime: 'local',
    workload: sample.workload,
    network: { established },
  });
  const loading = await eventually(
    () => readSampleStatus(sample.options.statusFile).catch(() => undefined),
    'the sample app to report its port',
  );
  const client = await KeepAliveClient.open('127.0.0.1', loading.port);
  const answer = await client.get('/state');
  expect(answer.status).toBe(200);
  const first = JSON.parse(answer.body) as SampleStatus;
  expect(first.phase).toBe('loading');
  const checkpointed = await handle.result();
  const cycle = { h, client, first, checkpointed, atCheckpoint: await readSampleStatus(sample.options.statusFile), hash: sample.hash };
  started.push(cycle);
  return cycle;
}

async function restore(cycle: Cycle) {
  return cycle.h.torpor.restore({
    hash: cycle.hash,
    node: cycle.h.node,
    runtime: 'local',
    readiness: sampleHealthProbe(cycle.atCheckpoint.port),
  });
}

afterAll(async () => {
  for (const cycle of started) {
    cycle.client.close();
    await killCheckpointProcesses(cycle.hash);
    await cycle.h.stop();
  }
});

describe('established TCP connections across a checkpoint (real Temporal, CRIU 4.2, local runtime)', () => {
  it('close (the default): the checkpoint closes the client connection; its retry on a new one reaches the restored server', async () => {
    const cycle = await checkpointWithClient('close', 'nftables');
    expect(cycle.checkpointed.manifest.network).toEqual({ established: 'close', lock: 'nftables' });
    expect(cycle.checkpointed.workloadEnd).toBe('exited');
    await expect(cycle.client.get('/state')).rejects.toThrow(/closed by the server/);

    await restore(cycle);
    const retry = await KeepAliveClient.open('127.0.0.1', cycle.atCheckpoint.port);
    try {
      const state = JSON.parse((await retry.get('/state')).body) as SampleStatus;
      expect(state.instance).toBe(cycle.first.instance);
      expect(state.pid).toBe(cycle.checkpointed.manifest.process.pid);
      expect(state.phase).toBe('restored');
    } finally {
      retry.close();
    }
  });

  const locks: NetworkLockMethod[] = hasIptables ? ['nftables', 'iptables'] : ['nftables'];
  it.each(locks)('keep (%s lock): the same connection continues with the restored process', async (lock) => {
    const cycle = await checkpointWithClient('keep', lock);
    expect(cycle.checkpointed.manifest.network).toEqual({ established: 'keep', lock });
    // The dump ended the original while its connections stayed locked for the restore.
    expect(cycle.checkpointed.workloadEnd).toBe('stopped');
    expect(await processesOfCheckpoint(cycle.hash)).toEqual([]);
    const port = cycle.client.localPort;

    await restore(cycle);
    const answer = await cycle.client.get('/state');
    expect(answer.status).toBe(200);
    const state = JSON.parse(answer.body) as SampleStatus;
    expect(cycle.client.localPort).toBe(port);
    expect(state.instance).toBe(cycle.first.instance);
    expect(state.pid).toBe(cycle.checkpointed.manifest.process.pid);
    expect(state.phase).toBe('restored');
    expect(state.checksum).toBe(cycle.atCheckpoint.checksum);
  });

  it('refuses an unknown policy as InvalidSpec before anything starts', async () => {
    const h = await startTorpor();
    try {
      const workload = testSample(h.storage).workload;
      await expect(
        h.torpor.checkpoint({
          hash: 'tcp-keep-k8s',
          node: h.node,
          runtime: 'local',
          workload,
          network: { established: 'maybe' as 'keep' },
        }),
      ).rejects.toMatchObject({ type: 'InvalidSpec', message: expect.stringContaining('network.established must be "close" or "keep"') });
    } finally {
      await h.stop();
    }
  });
});
