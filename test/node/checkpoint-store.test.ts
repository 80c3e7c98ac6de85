import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkpointStoreActivities } from '../../activities/node/store/checkpoints.js';
import type { Prehashed } from '../../activities/node/store/hash-behind.js';
import { StoreLayout } from '../../activities/node/store/layout.js';
import { writeRecord } from '../../activities/node/store/run-records.js';
import type { CheckpointManifest } from '../../contract/types.js';
import { testAgentConfig } from '../support/agent-config.js';

// Real files on a real filesystem; the "dump" is a directory of files written here instead of by CRIU.
let root: string;
let store: ReturnType<typeof checkpointStoreActivities>;
const env = new MockActivityEnvironment();
const hash = 'store-test';
const dumpId = `${hash}.abcd1234`;

async function fakeDump(files: Record<string, string>, prehashed?: (tmp: string) => Promise<Prehashed>) {
  const layout = new StoreLayout(root);
  const tmp = layout.tmpDir(hash, dumpId);
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(tmp, rel)), { recursive: true });
    await writeFile(path.join(tmp, rel), content);
  }
  await writeRecord(layout.dumpRecord(hash, dumpId), {
    pid: 1,
    workload: { command: ['x'], env: {} },
    contract: { readyFile: '/r', signalFile: '/s', restoreMarkerFile: '/m', logFile: '/l', location: path.join(root, hash) },
    criuVersion: '4.1.1',
    criuArgs: ['dump'],
    imageBytes: 0,
    criuMs: 1,
    ...(prehashed ? { prehashed: await prehashed(tmp) } : {}),
  });
}

const commit = (): Promise<CheckpointManifest> =>
  env.run(store.commitCheckpoint, { hash, dumpId, startToReadyMs: 5, dumpMs: 1, gpu: null });
const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'torpor-store-'));
  store = checkpointStoreActivities(testAgentConfig(root, { digestChunkBytes: 4 }), new StoreLayout(root));
});
afterEach(() => rm(root, { recursive: true, force: true }));

describe('committing a dump', () => {
  it('renames the dump into place, lists every file with its sha256 and writes the marker', async () => {
    await fakeDump({ 'images/pages-1.img': 'hello', 'logs/dump.log': 'ok' });
    const manifest = await commit();
    expect(manifest.files.map((f) => f.path)).toEqual(['images/pages-1.img', 'logs/dump.log']);
    // "hello" in chunks of 4 bytes: "hell" and "o".
    expect(manifest).toMatchObject({ formatVersion: 2, chunkBytes: 4 });
    expect(manifest.files[0]?.chunkSha256).toEqual([
      '0ebdc3317b75839f643387d783535adc360ca01f33c75f7c1e7373adcd675c0b',
      '65c74c15a686187bb6bbf9958f494fc6b80068034a659a9ad44991b08c58f2d2',
    ]);
    expect(await exists(path.join(root, hash, 'checkpoint.done'))).toBe(true);
    expect(await readdir(path.join(root, '.tmp'))).toEqual([]);
    expect(await env.run(store.findCheckpoint, { hash })).toEqual(manifest);
  });

  it('is idempotent: a retried commit returns the committed manifest unchanged', async () => {
    await fakeDump({ 'images/a.img': 'a' });
    const first = await commit();
    expect(await commit()).toEqual(first);
  });

  it('refuses to commit when no finished dump exists', async () => {
    await expect(commit()).rejects.toMatchObject({ type: 'DumpFailed' });
    expect(await exists(path.join(root, hash))).toBe(false);
  });

  it('never reports a checkpoint without its marker as found', async () => {
    await fakeDump({ 'images/a.img': 'a' });
    await commit();
    await rm(path.join(root, hash, 'checkpoint.done'));
    expect(await env.run(store.findCheckpoint, { hash })).toBeNull();
  });

  it('finishes a commit interrupted between rename and marker when the files are intact', async () => {
    await fakeDump({ 'images/a.img': 'a' });
    const first = await commit();
    await rm(path.join(root, hash, 'checkpoint.done'));
    expect(await commit()).toEqual(first);
    expect(await exists(path.join(root, hash, 'checkpoint.done'))).toBe(true);
  });

  it('discards an interrupted commit whose files no longer match, instead of marking it done', async () => {
    await fakeDump({ 'images/a.img': 'a' });
    await commit();
    await rm(path.join(root, hash, 'checkpoint.done'));
    await writeFile(path.join(root, hash, 'images/a.img'), 'tampered');
    await expect(commit()).rejects.toMatchObject({ type: 'DumpFailed' });
    expect(await exists(path.join(root, hash))).toBe(false);
  });

  it('removes a discarded dump and its record, and treats an already removed one as success', async () => {
    await fakeDump({ 'images/a.img': 'a' });
    await env.run(store.discardDump, { hash, dumpId });
    await env.run(store.discardDump, { hash, dumpId });
    expect(await readdir(path.join(root, '.tmp'))).toEqual([]);
  });
});

describe('chunks hashed while the dump was written', () => {
  // Not sha256("hell"): a digest the commit can only have taken from the dump record, never computed.
  const recorded = 'a'.repeat(64);
  const hashedDuringDump = async (tmp: string): Promise<Prehashed> => {
    const st = await stat(path.join(tmp, 'images/pages-1.img'), { bigint: true });
    const file = { path: 'images/pages-1.img', dev: Number(st.dev), ino: Number(st.ino), ctimeNs: st.ctimeNs.toString() };
    return { chunkBytes: 4, files: [{ ...file, sizeBytes: Number(st.size), chunkSha256: [recorded] }] };
  };
  const sha256OfO = '65c74c15a686187bb6bbf9958f494fc6b80068034a659a9ad44991b08c58f2d2';

  it('takes them for a file unchanged since the dump ended, and hashes only the rest', async () => {
    await fakeDump({ 'images/pages-1.img': 'hello' }, hashedDuringDump);
    const manifest = await commit();
    expect(manifest.files[0]?.chunkSha256).toEqual([recorded, sha256OfO]);
    expect(manifest.timings.hashedWhileDumpingBytes).toBe(4);
  });

  it('hashes everything again when the file was written after the dump ended', async () => {
    await fakeDump({ 'images/pages-1.img': 'hello' }, hashedDuringDump);
    await sleep(20);
    // The same bytes written again: only the file's ctime tells the commit it was touched.
    await writeFile(path.join(root, '.tmp', dumpId, 'images/pages-1.img'), 'hello');
    const manifest = await commit();
    expect(manifest.files[0]?.chunkSha256).toEqual(['0ebdc3317b75839f643387d783535adc360ca01f33c75f7c1e7373adcd675c0b', sha256OfO]);
    expect(manifest.timings.hashedWhileDumpingBytes).toBe(0);
  });

  it('takes every chunk, the last shorter one too, when CRIU hashed the whole file as it wrote it', async () => {
    const last = 'b'.repeat(64);
    await fakeDump({ 'images/pages-1.img': 'hello' }, async (tmp) => {
      const prehashed = await hashedDuringDump(tmp);
      return { ...prehashed, files: prehashed.files.map((f) => ({ ...f, chunkSha256: [recorded, last] })) };
    });
    const manifest = await commit();
    expect(manifest.files[0]?.chunkSha256).toEqual([recorded, last]);
    expect(manifest.timings.hashedWhileDumpingBytes).toBe(5);
  });

  it('ignores a list with more chunks than the file has', async () => {
    await fakeDump({ 'images/pages-1.img': 'hello' }, async (tmp) => {
      const prehashed = await hashedDuringDump(tmp);
      return { ...prehashed, files: prehashed.files.map((f) => ({ ...f, chunkSha256: [recorded, recorded, recorded] })) };
    });
    const manifest = await commit();
    expect(manifest.files[0]?.chunkSha256).toEqual(['0ebdc3317b75839f643387d783535adc360ca01f33c75f7c1e7373adcd675c0b', sha256OfO]);
    expect(manifest.timings.hashedWhileDumpingBytes).toBe(0);
  });

  it('ignores them when they were hashed in chunks of another size', async () => {
    await fakeDump({ 'images/pages-1.img': 'hello' }, async (tmp) => ({ ...(await hashedDuringDump(tmp)), chunkBytes: 8 }));
    expect((await commit()).files[0]?.chunkSha256?.[0]).not.toBe(recorded);
  });
});
