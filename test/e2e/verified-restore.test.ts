import { open, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CheckpointResult } from '../../contract/types.js';
import { readSampleStatus, type SampleStatus, sampleRestoredProbe } from '../../sample-app/workload.js';
import { processesOfCheckpoint } from '../support/leftovers.js';
import { testSample } from '../support/sample.js';
import { useTorpor } from '../support/torpor-harness.js';

// 1 MiB chunks, so the sample's pages image spans many chunks and "the last chunk" is not the first.
const CHUNK = 1 << 20;
const { h, hashes } = useTorpor({ env: { TORPOR_DIGEST_CHUNK_BYTES: String(CHUNK) } });
// CRIU's parallel page write, which the agent (in this process) leaves off on hosts of fewer than eight cores.
process.env.TORPOR_CRIU_PAGE_WRITERS = '2';

let sample: ReturnType<typeof testSample>;
let checkpointed: CheckpointResult;
let atCheckpoint: SampleStatus;
let pagesPath: string;
let pagesBytes: number;

/** Flips every bit of the byte at `offset` of `file` (again to undo it). */
async function flipByte(file: string, offset: number): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, offset);
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    await handle.write(byte, 0, 1, offset);
  } finally {
    await handle.close();
  }
}

/** A restore that must be refused as corrupt, with nothing of the process having run. */
async function expectRefused(message: RegExp): Promise<void> {
  await expect(h.torpor.restore({ hash: sample.hash, node: h.node, runtime: 'local' })).rejects.toMatchObject({
    type: 'CheckpointCorrupt',
    message: expect.stringMatching(message),
  });
  expect(await processesOfCheckpoint(sample.hash)).toEqual([]);
  // The restored app reports "restored" within 200 ms of running: its status is still the checkpoint's.
  expect(await readSampleStatus(sample.options.statusFile)).toEqual(atCheckpoint);
  expect(await readdir(path.join(h.storage, '.restores', sample.hash)).catch(() => [])).toEqual([]);
}

describe('a restore verifies every chunk while CRIU reads the image, and the process runs only when all match', () => {
  beforeAll(async () => {
    sample = testSample(h.storage);
    hashes.push(sample.hash);
    checkpointed = await h.torpor.checkpoint({ hash: sample.hash, node: h.node, runtime: 'local', workload: sample.workload });
    atCheckpoint = await readSampleStatus(sample.options.statusFile);
    const pages = [...checkpointed.manifest.files].sort((a, b) => b.sizeBytes - a.sizeBytes)[0];
    if (!pages?.path.startsWith('images/pages-')) throw new Error('no pages image');
    pagesPath = path.join(h.storage, sample.hash, pages.path);
    pagesBytes = pages.sizeBytes;
    expect(pages.chunkSha256?.length).toBeGreaterThan(2);
  });

  it('refuses one flipped byte in the middle of the pages image, naming its chunk', async () => {
    const offset = Math.floor(pagesBytes / 2);
    await flipByte(pagesPath, offset);
    try {
      await expectRefused(new RegExp(`pages-\\d+\\.img has sha256 [0-9a-f]{64} in chunk ${Math.floor(offset / CHUNK)} of `));
    } finally {
      await flipByte(pagesPath, offset);
    }
  });

  it('refuses one flipped byte in the last, shorter chunk of the pages image', async () => {
    await flipByte(pagesPath, pagesBytes - 1);
    try {
      const chunks = Math.ceil(pagesBytes / CHUNK);
      await expectRefused(new RegExp(`in chunk ${chunks - 1} of ${chunks} \\(bytes ${(chunks - 1) * CHUNK}-${pagesBytes - 1}\\)`));
    } finally {
      await flipByte(pagesPath, pagesBytes - 1);
    }
  });

  it('refuses a manifest with one digest changed, and one that no longer parses: its MAC no longer matches', async () => {
    const manifestFile = path.join(h.storage, sample.hash, 'manifest.json');
    const text = await readFile(manifestFile, 'utf8');
    const digest = checkpointed.manifest.files.find((f) => f.path.startsWith('images/pages-'))?.chunkSha256?.[0] as string;
    const at = text.indexOf(digest);
    await flipByte(manifestFile, at);
    try {
      await expectRefused(/manifest.json does not match its MAC/);
    } finally {
      await flipByte(manifestFile, at);
    }
    await flipByte(manifestFile, 0);
    try {
      await expectRefused(/manifest.json does not match its MAC/);
    } finally {
      await flipByte(manifestFile, 0);
    }
  });

  it('restores the untouched checkpoint: same memory, its bytes verified during the restore', async () => {
    // Every pages chunk's digest came from CRIU, which hashed each chunk as it wrote it
    // (parallel-page-write.patch): the restore below checks them against the bytes on disk.
    const pages = checkpointed.manifest.files.filter((f) => f.path.startsWith('images/pages-'));
    expect(checkpointed.manifest.timings.hashedWhileDumpingBytes).toBeGreaterThanOrEqual(pages.reduce((n, f) => n + f.sizeBytes, 0));
    const restored = await h.torpor.restore({
      hash: sample.hash,
      node: h.node,
      runtime: 'local',
      readiness: sampleRestoredProbe(sample.options.statusFile),
    });
    const after = await readSampleStatus(sample.options.statusFile);
    expect(after.checksum).toBe(atCheckpoint.checksum);
    expect(after.instance).toBe(atCheckpoint.instance);
    expect(restored.pid).toBe(checkpointed.manifest.process.pid);
    const restoreLog = await readFile(path.join(h.storage, '.restores', sample.hash, restored.restoreId, 'restore.log'), 'utf8');
    expect(restoreLog).toContain('Running post-restore scripts');
  });
});
