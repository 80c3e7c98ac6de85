import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { CheckpointResult } from '../../contract/types.js';
import { readSampleStatus, type SampleStatus, sampleRestoredProbe } from '../../sample-app/workload.js';
import { killCheckpointProcesses, processesOfCheckpoint } from '../support/leftovers.js';
import { testSample } from '../support/sample.js';
import { startTorpor, type TorporHarness } from '../support/torpor-harness.js';
import { sharedKeyFile } from './fixtures.js';
import { type OtherNodeAgent, startOtherNodeAgent } from './other-node-agent.js';

describe('a shared filesystem as the shared store (TORPOR_SHARED_DIR): checkpoint on node A, restore on node B (real Temporal, CRIU)', () => {
  let keyFile: string;
  let sharedDir: string;
  let a: TorporHarness;
  let b: OtherNodeAgent;
  let bStore: string;
  const nodeB = `test-b-${randomBytes(4).toString('hex')}`;
  let sample: ReturnType<typeof testSample>;
  let checkpointed: CheckpointResult;
  let atCheckpoint: SampleStatus;

  beforeAll(async () => {
    keyFile = await sharedKeyFile();
    sharedDir = await mkdtemp(path.join(os.tmpdir(), 'torpor-rwx-'));
    const env = { TORPOR_SHARED_DIR: sharedDir, TORPOR_MANIFEST_KEY_FILE: keyFile, TORPOR_DIGEST_CHUNK_BYTES: String(1 << 20) };
    a = await startTorpor({ env });
    bStore = await mkdtemp(path.join(os.tmpdir(), 'torpor-node-b-'));
    b = await startOtherNodeAgent(bStore, a.storage, { ...env, NODE_NAME: nodeB, TEMPORAL_ADDRESS: inject('temporalAddress') });
    sample = testSample(a.storage);
    checkpointed = await a.torpor.checkpoint({
      hash: sample.hash,
      node: a.node,
      runtime: 'local',
      workload: sample.workload,
      sharedStore: true,
    });
    atCheckpoint = await readSampleStatus(sample.options.statusFile);
  });

  afterAll(async () => {
    if (sample) await killCheckpointProcesses(sample.hash);
    await b?.kill();
    await a?.stop();
    for (const dir of [bStore, sharedDir, keyFile && path.dirname(keyFile)]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('publishes the checkpoint as files, the manifest among them', async () => {
    expect(checkpointed.stepMs).toHaveProperty('uploading');
    const files = await readdir(path.join(sharedDir, 'checkpoints', sample.hash), { recursive: true });
    expect(files).toContain('manifest.json');
    expect(files.filter((f) => f.startsWith('chunks/')).length).toBeGreaterThan(10);
  });

  it('restores on node B, whose cache lacked it, with the same memory checksum', async () => {
    expect(await readdir(bStore)).not.toContain(sample.hash);
    const restored = await a.torpor.restore({
      hash: sample.hash,
      node: nodeB,
      runtime: 'local',
      sharedStore: true,
      readiness: sampleRestoredProbe(sample.options.statusFile),
    });
    const status = await readSampleStatus(sample.options.statusFile);
    expect(status).toMatchObject({ phase: 'restored', checksum: atCheckpoint.checksum, instance: atCheckpoint.instance });
    expect(restored.stepMs).toHaveProperty('fetching');
    expect(await processesOfCheckpoint(sample.hash)).toEqual([restored.pid]);
    const listed = (await a.torpor.listCheckpoints({ node: a.node })).find((c) => c.hash === sample.hash);
    expect(listed?.usedBy).toEqual([expect.objectContaining({ state: 'leased', node: nodeB })]);
  });

  it('refuses a flipped byte in one chunk file before any process runs: CheckpointCorrupt, nothing cached', async () => {
    await killCheckpointProcesses(sample.hash);
    await rm(path.join(bStore, sample.hash), { recursive: true, force: true });
    await rm(path.join(bStore, '.shared', `${sample.hash}.json`), { force: true });
    const pages = checkpointed.manifest.files.find((f) => f.path.startsWith('images/pages-'));
    const chunkFile = path.join(sharedDir, 'checkpoints', sample.hash, 'chunks', pages?.chunkSha256?.[0] ?? '');
    const handle = await open(chunkFile, 'r+');
    const { size } = await handle.stat();
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, size - 100);
    await handle.write(Buffer.from([(byte[0] as number) ^ 0x01]), 0, 1, size - 100);
    await handle.close();

    const failure = a.torpor.restore({ hash: sample.hash, node: nodeB, runtime: 'local', restoreId: 'flipped', sharedStore: true });
    await expect(failure).rejects.toMatchObject({ type: 'CheckpointCorrupt', message: expect.stringContaining(`${pages?.path} chunk 0`) });
    expect(await processesOfCheckpoint(sample.hash)).toEqual([]);
    expect(await readdir(bStore)).not.toContain(sample.hash);
  });
});
