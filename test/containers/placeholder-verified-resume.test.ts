import { cp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContainerActivities } from '../../activities/node/container/activities.js';
import { StoreLayout } from '../../activities/node/store/layout.js';
import { writeManifest } from '../../activities/node/store/manifest-mac.js';
import type { CheckpointManifest } from '../../contract/types.js';
import { failureOf } from '../support/failures.js';
import { evictFromPageCache } from '../support/page-cache.js';
import { checkpointedSource, eventually, RuncWorld, readStatus, waitForStatus } from '../support/runc-containers.js';

const world = new RuncWorld(path.resolve('.torpor/test/verified-resume'));
const activities = createContainerActivities(world.config(['team-a']));
const pod = (name: string) => ({
  'io.kubernetes.pod.namespace': 'team-a',
  'io.kubernetes.pod.name': name,
  'io.kubernetes.container.name': 'main',
});
const HASH = 'big-v1';
/** 4 MiB of table: the pages image spans several of the store's 1 MiB chunks (testAgentConfig). */
const TABLE_KB = 4096;

/** A copy of the checkpoint under `hash`, its manifest signed with the agent's key as a commit would sign it. */
async function copyCheckpoint(hash: string): Promise<string> {
  const dir = path.join(world.store, hash);
  await cp(path.join(world.store, HASH), dir, { recursive: true });
  const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as CheckpointManifest;
  await writeManifest(new StoreLayout(world.store), dir, { ...manifest, hash });
  return dir;
}

async function flipByte(file: string, offset: number): Promise<void> {
  const bytes = await readFile(file);
  bytes[offset] = (bytes[offset] ?? 0) ^ 0xff;
  await writeFile(file, bytes);
}

/** The largest pages image of a checkpoint: the process memory CRIU reads back. */
async function pagesImage(dir: string): Promise<{ file: string; sizeBytes: number }> {
  const images = path.join(dir, 'images');
  const sized = await Promise.all(
    (await readdir(images))
      .filter((f) => f.startsWith('pages-'))
      .map(async (f) => ({ file: path.join(images, f), sizeBytes: (await stat(path.join(images, f))).size })),
  );
  const largest = sized.sort((a, b) => b.sizeBytes - a.sizeBytes)[0];
  if (!largest) throw new Error(`no pages image in ${images}`);
  return largest;
}

/** CRIU's log of the restore into placeholder `id`. */
async function restoreLog(id: string): Promise<string> {
  const workRoot = world.config([]).workRoot;
  const dir = (await readdir(workRoot)).find((d) => d.startsWith(`restore-${id}-`));
  return dir === undefined ? '' : readFile(path.join(workRoot, dir, 'restore.log'), 'utf8');
}

/** A restore pod's container for checkpoint `hash`, waiting for the agent. */
async function startPlaceholder(id: string, hash: string): Promise<string> {
  const bundle = await world.createBundle(id, pod(`${id}-pod`), { placeholderFor: { hash, store: world.store } });
  await world.run(id, bundle);
  await eventually(async () => ((await world.output(id)).includes('waiting for the node agent') ? true : undefined), `${id} to wait`);
  return bundle;
}

/**
 * The restored app never ran: it reports to /data and prints a tick within its first loop, and
 * neither happened; nothing of it runs in the placeholder.
 */
async function expectAppNeverRan(id: string, bundle: string): Promise<void> {
  expect(await readStatus(bundle)).toBeUndefined();
  expect(await world.output(id)).not.toContain('tick');
  if ((await world.state(id)) === 'running') {
    expect((await world.exec(id, ['ps', '-eo', 'args'])).stdout).not.toMatch(/^python3 \/app\/app\.py/m);
  }
}

describe('a placeholder restore verifies every chunk while CRIU reads it, and the tree runs only when all match (real runc and CRIU)', () => {
  beforeAll(async () => {
    // CRIU's parallel page write, which the agent leaves off on hosts of fewer than eight cores.
    process.env.TORPOR_CRIU_PAGE_WRITERS = '2';
    await world.createImage();
    await checkpointedSource(world, activities, { hash: HASH, labels: pod('app-0'), env: [`APP_TABLE_KB=${TABLE_KB}`] });
  });
  afterAll(async () => {
    await world.cleanUp();
  });

  it('kills the held tree when a byte of a pages image is wrong, in its first chunk or its last: CheckpointCorrupt, the app never ran', async () => {
    const first = await copyCheckpoint('flip-first');
    const pages = await pagesImage(first);
    expect(pages.sizeBytes).toBeGreaterThan(2 << 20);
    await flipByte(pages.file, 4096 + 17);
    const last = await copyCheckpoint('flip-last');
    await flipByte((await pagesImage(last)).file, pages.sizeBytes - 3);

    for (const [hash, chunk] of [
      ['flip-first', 'chunk 0 of'],
      ['flip-last', `chunk ${Math.ceil(pages.sizeBytes / (1 << 20)) - 1} of`],
    ] as const) {
      const bundle = await startPlaceholder(`p-${hash}`, hash);
      const failure = await failureOf(activities.restoreIntoPlaceholder({ hash, placeholderContainerId: `p-${hash}`, nodeName: 'node-a' }));
      expect(failure.type).toBe('CheckpointCorrupt');
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toContain(path.basename(pages.file));
      expect(failure.message).toContain(chunk);
      await expectAppNeverRan(`p-${hash}`, bundle);
      // CRIU had restored the tree and held it at post-restore until the verdict, then killed it.
      expect(await restoreLog(`p-${hash}`)).toContain('Aborting restore due to post-restore script');
    }
  });

  it('refuses a changed manifest and a changed rootfs diff before anything is written into the placeholder', async () => {
    const manifestDir = await copyCheckpoint('flip-manifest');
    await flipByte(path.join(manifestDir, 'manifest.json'), 40);
    const diffDir = await copyCheckpoint('flip-diff');
    await flipByte(path.join(diffDir, 'rootfs-diff.tar'), 100);
    for (const [hash, names] of [
      ['flip-manifest', 'manifest'],
      ['flip-diff', 'rootfs-diff.tar'],
    ] as const) {
      const id = `p-${hash}`;
      const bundle = await startPlaceholder(id, hash);
      const failure = await failureOf(activities.restoreIntoPlaceholder({ hash, placeholderContainerId: id, nodeName: 'node-a' }));
      expect(failure.type).toBe('CheckpointCorrupt');
      expect(failure.message).toContain(names);
      // Untouched: still waiting, no restore marker, nothing of the app.
      expect(await world.state(id)).toBe('running');
      expect((await world.exec(id, ['test', '-e', '/tmp/dynamo-restored'])).exitCode).not.toBe(0);
      await expectAppNeverRan(id, bundle);
    }
  });

  it('restores an intact checkpoint, having verified every byte of it', async () => {
    const bundle = await startPlaceholder('p-good', HASH);
    // From a cold page cache, what CRIU reads of the libraries the tree had mapped is read ahead first.
    await evictFromPageCache(path.join(world.store, HASH));
    const restored = await activities.restoreIntoPlaceholder({ hash: HASH, placeholderContainerId: 'p-good', nodeName: 'node-a' });
    expect(restored.alreadyRestored).toBe(false);
    const manifest = JSON.parse(await readFile(path.join(world.store, HASH, 'manifest.json'), 'utf8')) as CheckpointManifest;
    expect(restored.verifiedBytes).toBe(manifest.totalBytes);
    // The pages' digests came from the CRIU under runc, which hashed every chunk as it wrote it.
    const pages = manifest.files.filter((f) => /^images\/pages-\d+\.img$/.test(f.path));
    expect(pages.length).toBeGreaterThan(0);
    expect(manifest.timings.hashedWhileDumpingBytes).toBeGreaterThanOrEqual(pages.reduce((n, f) => n + f.sizeBytes, 0));
    // Found through the placeholder's root.
    expect(restored.mappedFilesWarmed).toBeGreaterThan(0);
    const status = await waitForStatus(bundle, (s) => s.restored && s.checksum === s.built);
    expect(status.restored).toBe(true);
  });
});
