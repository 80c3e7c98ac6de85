import { randomBytes } from 'node:crypto';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleRestoredProbe } from '../../sample-app/workload.js';
import { killCheckpointProcesses, processesOfCheckpoint } from '../support/leftovers.js';
import { type S3Server, startS3Server } from '../support/s3-server.js';
import { testSample } from '../support/sample.js';
import type { TorporHarness } from '../support/torpor-harness.js';
import { startTwoNodes, type TwoNodes } from './fixtures.js';

describe('retention on node A keeps a checkpoint node B leases, and deletes it from the shared store once the lease ends (real S3, Temporal, CRIU)', () => {
  let s3: S3Server;
  let nodes: TwoNodes;
  let a: TorporHarness;
  let nodeB: string;
  // Spec-hash shaped, so that retention by workload name applies to both.
  const older = `leasetest-${randomBytes(8).toString('hex')}`;
  const newer = `leasetest-${randomBytes(8).toString('hex')}`;
  let sample: ReturnType<typeof testSample>;

  const keysOf = async (prefix: string) =>
    ((await s3.client().send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }))).Contents ?? []).map((o) => o.Key);

  beforeAll(async () => {
    s3 = await startS3Server();
    nodes = await startTwoNodes(s3.agentEnv(), { TORPOR_SHARED_LEASE_MS: '2000' });
    ({ a, nodeB } = nodes);
    sample = testSample(a.storage);
    for (const hash of [older, newer]) {
      await a.torpor.checkpoint({ hash, node: a.node, runtime: 'local', workload: sample.workload, sharedStore: true });
    }
  });

  afterAll(async () => {
    for (const hash of [older, newer]) await killCheckpointProcesses(hash);
    await nodes?.stop();
    await s3?.stop();
  });

  it("keeps the older checkpoint while node B runs a copy restored from it, naming node B's lease", async () => {
    const restored = await a.torpor.restore({
      hash: older,
      node: nodeB,
      runtime: 'local',
      sharedStore: true,
      readiness: sampleRestoredProbe(sample.options.statusFile),
    });
    expect(await processesOfCheckpoint(older)).toEqual([restored.pid]);

    const listed = (await a.torpor.listCheckpoints({ node: a.node })).find((c) => c.hash === older);
    expect(listed?.location).toEqual({ shared: true, nodeCaches: [a.node, nodeB].sort() });
    expect(listed?.usedBy).toEqual([expect.objectContaining({ state: 'leased', node: nodeB })]);

    const gc = await a.torpor.gc({ node: a.node, keepPerName: 1 });
    expect(gc.retention).toEqual([expect.objectContaining({ name: 'leasetest', kept: [newer], deleted: [], inUse: [older] })]);
    expect(await keysOf(`checkpoints/${older}/`)).toContain(`checkpoints/${older}/manifest.json`);
    await expect(a.torpor.deleteCheckpoint(older, a.node)).rejects.toMatchObject({ type: 'CheckpointInUse' });
  });

  it("leaves node A's checkpoints to node A's retention: gc with retention on node B deletes none of them", async () => {
    const gc = await a.torpor.gc({ node: nodeB, keepPerName: 1 });
    expect(gc.retention).toEqual([]);
    expect(await keysOf(`checkpoints/${newer}/`)).toContain(`checkpoints/${newer}/manifest.json`);
  });

  it('deletes it, manifest and chunks, once the restored copy on node B has ended and its lease with it', async () => {
    await killCheckpointProcesses(older);
    await expect.poll(() => keysOf(`leases/${older}/`), { timeout: 60_000, interval: 250 }).toEqual([]);
    const gc = await a.torpor.gc({ node: a.node, keepPerName: 1 });
    expect(gc.retention).toEqual([expect.objectContaining({ name: 'leasetest', kept: [newer], deleted: [older], inUse: [] })]);
    expect(await keysOf(`checkpoints/${older}/`)).toEqual([]);
    expect(await keysOf(`checkpoints/${newer}/`)).toContain(`checkpoints/${newer}/manifest.json`);
    const onB = (await a.torpor.listCheckpoints({ node: nodeB })).find((c) => c.hash === older);
    expect(onB?.location).toEqual({ shared: false, nodeCaches: [nodeB] });
  });
});
