import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointWorkflowId, restoreWorkflowId } from '../../contract/naming.js';
import type { CheckpointResult } from '../../contract/types.js';
import type { SampleStatus } from '../../sample-app/workload.js';
import { killCheckpointProcesses, processesOfCheckpoint } from '../support/leftovers.js';
import { recordHistory } from '../support/record-history.js';
import { type S3Server, startS3Server } from '../support/s3-server.js';
import type { TorporHarness } from '../support/torpor-harness.js';
import { restoreSampleOnB, type SharedSample, startTwoNodes, type TwoNodes } from './fixtures.js';

describe('checkpoint on node A, restore on node B through the shared store (real S3, Temporal, CRIU)', () => {
  let s3: S3Server;
  let nodes: TwoNodes;
  let a: TorporHarness;
  let nodeB: string;
  let bStore: string;
  let sample: SharedSample['sample'];
  let checkpointed: CheckpointResult;
  let atCheckpoint: SampleStatus;

  beforeAll(async () => {
    s3 = await startS3Server();
    nodes = await startTwoNodes(s3.agentEnv());
    ({ a, nodeB, bStore } = nodes);
    ({ sample, checkpointed, atCheckpoint } = await nodes.checkpointSample());
  });

  afterAll(async () => {
    await nodes?.stop();
    await s3?.stop();
  });

  it('uploads the committed checkpoint after the commit, the manifest among its objects', async () => {
    expect(checkpointed.stepMs).toHaveProperty('uploading');
    const listed = await s3.client().send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `checkpoints/${sample.hash}/` }));
    const keys = (listed.Contents ?? []).map((o) => o.Key);
    expect(keys).toContain(`checkpoints/${sample.hash}/manifest.json`);
    expect(keys.length).toBeGreaterThan(10);
    await recordHistory(a.client.workflow.getHandle(checkpointWorkflowId(sample.hash)), 'checkpoint-shared-store-created');
  });

  it('returns the existing checkpoint to a second request and makes sure it is uploaded, without dumping again', async () => {
    const again = await a.torpor.checkpoint({
      hash: sample.hash,
      node: a.node,
      runtime: 'local',
      workload: sample.workload,
      sharedStore: true,
    });
    expect(again.outcome).toBe('existing');
    expect(again.stepMs).toHaveProperty('uploading');
  });

  it('finds nothing on node B without the shared store: the checkpoint is on node A only', async () => {
    await expect(a.torpor.restore({ hash: sample.hash, node: nodeB, runtime: 'local', restoreId: 'no-share' })).rejects.toMatchObject({
      type: 'CheckpointNotFound',
    });
  });

  it('restores on node B, whose cache lacked it, with the same memory checksum', async () => {
    const restored = await restoreSampleOnB(nodes, { sample, checkpointed, atCheckpoint });
    expect(restored.node).toBe(nodeB);
    expect(await readdir(bStore)).toContain(sample.hash);
    await recordHistory(a.client.workflow.getHandle(restoreWorkflowId(sample.hash, restored.restoreId)), 'restore-shared-store-ready');
  });

  it('refuses a flipped byte in one object before any process runs: CheckpointCorrupt, nothing cached', async () => {
    await killCheckpointProcesses(sample.hash);
    await rm(path.join(bStore, sample.hash), { recursive: true, force: true });
    await rm(path.join(bStore, '.shared', `${sample.hash}.json`), { force: true });
    const pages = checkpointed.manifest.files.find((f) => f.path.startsWith('images/pages-'));
    const key = `checkpoints/${sample.hash}/chunks/${pages?.chunkSha256?.[0]}`;
    const got = await s3.client().send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    const bytes = Buffer.from(await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
    bytes[4096] = (bytes[4096] as number) ^ 0x01;
    await s3.client().send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: bytes, Metadata: got.Metadata }));

    const failure = a.torpor.restore({ hash: sample.hash, node: nodeB, runtime: 'local', restoreId: 'flipped', sharedStore: true });
    await expect(failure).rejects.toMatchObject({ type: 'CheckpointCorrupt', message: expect.stringContaining(`${pages?.path} chunk 0`) });
    expect(await processesOfCheckpoint(sample.hash)).toEqual([]);
    expect(await readdir(bStore)).not.toContain(sample.hash);
  });
});
