import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, rm, stat, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectoryStore } from '../../activities/node/store/shared/directory-store.js';
import type { CheckpointResult } from '../../contract/types.js';
import type { SampleStatus } from '../../sample-app/workload.js';
import { killCheckpointProcesses, processesOfCheckpoint } from '../support/leftovers.js';
import type { TorporHarness } from '../support/torpor-harness.js';
import { restoreSampleOnB, type SharedSample, startTwoNodes, type TwoNodes } from './fixtures.js';

describe('a shared filesystem as the shared store (TORPOR_SHARED_DIR): checkpoint on node A, restore on node B (real Temporal, CRIU)', () => {
  let sharedDir: string;
  let nodes: TwoNodes;
  let a: TorporHarness;
  let nodeB: string;
  let bStore: string;
  let sample: SharedSample['sample'];
  let checkpointed: CheckpointResult;
  let atCheckpoint: SampleStatus;

  beforeAll(async () => {
    sharedDir = await mkdtemp(path.join(os.tmpdir(), 'torpor-rwx-'));
    nodes = await startTwoNodes({ TORPOR_SHARED_DIR: sharedDir });
    ({ a, nodeB, bStore } = nodes);
    ({ sample, checkpointed, atCheckpoint } = await nodes.checkpointSample());
  });

  afterAll(async () => {
    await nodes?.stop();
    if (sharedDir) await rm(sharedDir, { recursive: true, force: true });
  });

  it('publishes the checkpoint as files, the manifest among them', async () => {
    expect(checkpointed.stepMs).toHaveProperty('uploading');
    const files = await readdir(path.join(sharedDir, 'checkpoints', sample.hash), { recursive: true });
    expect(files).toContain('manifest.json');
    expect(files.filter((f) => f.startsWith('chunks/')).length).toBeGreaterThan(10);
  });

  it('restores on node B, whose cache lacked it, with the same memory checksum', async () => {
    await restoreSampleOnB(nodes, { sample, checkpointed, atCheckpoint });
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

  it("gc (the workflow, on node B) sweeps chunk files no manifest names once older than its grace (1 h), keeping fresh ones and the checkpoint's own", async () => {
    const store = new DirectoryStore({ dir: sharedDir, prefix: '', parallel: 2 });
    const plant = async (hash: string) => {
      const bytes = randomBytes(4096);
      const key = `checkpoints/${hash}/chunks/${createHash('sha256').update(bytes).digest('hex')}`;
      await store.put(key, bytes, {});
      return path.join(sharedDir, key);
    };
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    const gone = `orphans-${randomBytes(4).toString('hex')}`;
    const stale = [await plant(gone), await plant(sample.hash)];
    const fresh = await plant(`uploading-${randomBytes(4).toString('hex')}`);
    const named = (await readdir(path.join(sharedDir, 'checkpoints', sample.hash, 'chunks'))).map((f) =>
      path.join(sharedDir, 'checkpoints', sample.hash, 'chunks', f),
    );
    for (const file of [...named, ...stale]) await utimes(file, twoHoursAgo, twoHoursAgo);

    const gc = await a.torpor.gc({ node: nodeB });
    expect(gc.sharedOrphans).toMatchObject({ removed: 2, busy: [] });
    for (const file of stale) expect(await stat(file).catch(() => null)).toBeNull();
    expect((await stat(fresh)).isFile()).toBe(true);
    for (const file of named.filter((f) => !stale.includes(f))) expect((await stat(file)).isFile()).toBe(true);
    expect(await readdir(path.join(sharedDir, 'checkpoints'))).not.toContain(gone);
  });
});
