import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, lutimes, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MockActivityEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { committedContainerCheckpoint } from '../../activities/node/container/container-store.js';
import { writeMarkerInRoot } from '../../activities/node/container/restore-marker.js';
import { signalPodActivities } from '../../activities/node/container/signal-pod.js';
import { killStrayCriu } from '../../activities/node/criu/stray.js';
import { specHashActivities } from '../../activities/node/local/spec-hash.js';
import { retentionActivities } from '../../activities/node/store/catalog.js';
import { checkpointStoreActivities } from '../../activities/node/store/checkpoints.js';
import { garbageActivities } from '../../activities/node/store/garbage.js';
import { StoreLayout } from '../../activities/node/store/layout.js';
import { writeRecord } from '../../activities/node/store/run-records.js';
import type { GarbageReport, RemovedCheckpoint, SpecHashResult, VerifiedCheckpoint } from '../../contract/types.js';
import { testAgentConfig } from '../support/agent-config.js';
import { exists, makeOutside, refusedWith, snapshot } from './hostile-files.js';

// Hostile inputs a tenant pod (which can write the signal directory, and in some deployments the
// store) or a forger of store files can plant; each is attacked through the agent's real
// activities on real files, and the thing it aims at is compared byte for byte afterwards.
let base: string;
let root: string;
let outside: string;
let layout: StoreLayout;
const env = new MockActivityEnvironment();
const DAY_AGO = new Date(Date.now() - 24 * 3600 * 1000);

beforeEach(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), 'torpor-hostile-'));
  root = path.join(base, 'store');
  await mkdir(root);
  outside = await makeOutside(path.join(base, 'host-files'));
  layout = new StoreLayout(root, path.join(base, 'signals'));
  await mkdir(layout.signalsDir());
});
afterEach(() => rm(base, { recursive: true, force: true }));

/** A link planted by a tenant, dated a day back so every age check counts it abandoned. */
async function plant(target: string, at: string): Promise<void> {
  await mkdir(path.dirname(at), { recursive: true });
  await symlink(target, at);
  await lutimes(at, DAY_AGO, DAY_AGO);
}

const collect = (l = layout): Promise<GarbageReport> => env.run(garbageActivities(l).collectGarbage, { tmpMaxAgeMs: 0, runMaxAgeMs: 0 });

async function commitFakeDump(hash: string, files: Record<string, string>, l = layout): Promise<void> {
  const dumpId = `${hash}.abcd1234`;
  const tmp = l.tmpDir(hash, dumpId);
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(tmp, rel)), { recursive: true });
    await writeFile(path.join(tmp, rel), content);
  }
  await writeRecord(l.dumpRecord(hash, dumpId), {
    pid: 1,
    workload: { command: ['x'], env: {} },
    contract: { readyFile: '/r', signalFile: '/s', restoreMarkerFile: '/m', logFile: '/l', location: l.checkpointDir(hash) },
    criuVersion: '4.1.1',
    criuArgs: ['dump'],
    imageBytes: 0,
    criuMs: 1,
  });
  const store = checkpointStoreActivities(testAgentConfig(l.root, { digestChunkBytes: 4 }), l);
  await env.run(store.commitCheckpoint, { hash, dumpId, startToReadyMs: 1, dumpMs: 1, gpu: null });
}

describe('garbage collection never follows a planted link (C3)', () => {
  const cases: [string, () => string][] = [
    ['a <hash>.done link in the signal directory to a host directory', () => path.join(layout.signalsDir(), 'evil.done')],
    ['a link of any name in the signal directory', () => path.join(layout.signalsDir(), 'not-a-signal')],
    ['a link in .trash', () => path.join(root, '.trash', 'evil.1234')],
    ['a link inside a half-deleted checkpoint in .trash', () => path.join(root, '.trash', 'old.5678', 'images')],
    ['a link inside an abandoned dump in .tmp', () => path.join(root, '.tmp', 'h1.dead', 'images')],
    ['a run directory that is a link', () => path.join(root, '.runs', 'victim')],
    ['an uncommitted <hash> directory that is a link', () => path.join(root, 'victim')],
    ['a restore directory that is a link', () => path.join(root, '.restores', 'victim', 'r1')],
    ['a link in a restore work directory', () => path.join(root, '.container-work', 'restore-x-1', 'criu')],
  ];
  it.each(cases)('%s: the host directory stays, the link goes', async (_, at) => {
    const link = at();
    await plant(outside, link);
    for (const dir of [path.dirname(link), path.dirname(path.dirname(link))]) await lutimes(dir, DAY_AGO, DAY_AGO).catch(() => undefined);
    const before = await snapshot(outside);
    await collect();
    expect(await snapshot(outside)).toEqual(before);
    expect(await exists(link)).toBe(false);
  });

  it('a signal directory that is itself a link to a host directory is refused, not swept', async () => {
    await rm(layout.signalsDir(), { recursive: true });
    await plant(outside, layout.signalsDir());
    const before = await snapshot(outside);
    await refusedWith(collect(), 'TargetNotAllowed');
    expect(await snapshot(outside)).toEqual(before);
  });

  it('deleting a checkpoint with a link planted inside it removes the link only', async () => {
    await commitFakeDump('planted', { 'images/a.img': 'a' });
    await plant(outside, path.join(root, 'planted', 'images', 'escape'));
    const before = await snapshot(outside);
    const removed: RemovedCheckpoint = await env.run(retentionActivities(testAgentConfig(root), layout).removeCheckpoint, {
      hash: 'planted',
    });
    expect(removed.removed).toBe(true);
    expect(await snapshot(outside)).toEqual(before);
  });

  it('a fresh dump and a checkpoint between rename and marker survive tmpMaxAgeMs 0 (M10 floor)', async () => {
    await mkdir(path.join(root, '.tmp', 'inflight.abcd', 'images'), { recursive: true });
    await writeFile(path.join(root, '.tmp', 'inflight.abcd', 'images', 'pages-1.img'), 'x');
    await mkdir(path.join(root, 'renamed'));
    await writeFile(path.join(root, 'renamed', 'manifest.json'), '{}');
    const report = await collect();
    expect(report.removed).toEqual([]);
    expect(await exists(path.join(root, '.tmp', 'inflight.abcd', 'images', 'pages-1.img'))).toBe(true);
    expect(await exists(path.join(root, 'renamed', 'manifest.json'))).toBe(true);
  });
});

describe('signal files are never written through a link (H1)', () => {
  const signal = (l = layout) => env.run(signalPodActivities(l).signalCheckpointPod, { hash: 'victim' });

  it('a <hash>.done link to a host file: the host file keeps its bytes, a fresh signal file is written', async () => {
    await plant(path.join(outside, 'precious.txt'), layout.signalFile('victim'));
    const before = await snapshot(outside);
    await signal();
    expect(await snapshot(outside)).toEqual(before);
    expect(await readFile(layout.signalFile('victim'), 'utf8')).toBe('victim\n');
    expect((await snapshot(layout.signalFile('victim')))['.']).toMatch(/^file:/);
  });

  it('a <hash>.done link to a host directory: nothing is created in it', async () => {
    await plant(outside, layout.signalFile('victim'));
    const before = await snapshot(outside);
    await signal();
    expect(await snapshot(outside)).toEqual(before);
  });

  it('a signal directory reached through a linked parent is refused', async () => {
    await plant(outside, path.join(base, 'linked-parent'));
    const linked = new StoreLayout(root, path.join(base, 'linked-parent', 'nested'));
    const before = await snapshot(outside);
    await refusedWith(signal(linked), 'TargetNotAllowed');
    expect(await snapshot(outside)).toEqual(before);
  });
});

describe('the restore marker is never written through a link (H3)', () => {
  it('a link at the marker path itself: the target keeps its bytes', async () => {
    const container = path.join(base, 'container-root');
    await plant(path.join(outside, 'precious.txt'), path.join(container, 'tmp', 'dynamo-restored'));
    const before = await snapshot(outside);
    await writeMarkerInRoot(container, '/tmp/dynamo-restored', 'restored\n');
    expect(await snapshot(outside)).toEqual(before);
    expect(await readFile(path.join(container, 'tmp', 'dynamo-restored'), 'utf8')).toBe('restored\n');
  });

  it('a link at a parent component of the marker path is refused', async () => {
    const container = path.join(base, 'container-root');
    await plant(outside, path.join(container, 'run'));
    const before = await snapshot(outside);
    await refusedWith(writeMarkerInRoot(container, '/run/torpor/restored', 'x'), 'TargetNotAllowed');
    expect(await snapshot(outside)).toEqual(before);
  });
});

describe('a manifest is trusted only with the agent MAC (H2)', () => {
  const verify = (hash: string, l = layout): Promise<VerifiedCheckpoint> =>
    env.run(checkpointStoreActivities(testAgentConfig(l.root), l).verifyCheckpoint, { hash, contents: 'now' as const });

  it('files and manifest rewritten consistently (new size and digests) are refused as CheckpointCorrupt', async () => {
    await commitFakeDump('forged', { 'images/pages-1.img': 'good' });
    const dir = layout.checkpointDir('forged');
    const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
    await writeFile(path.join(dir, 'images/pages-1.img'), 'evil');
    await cp(path.join(dir, 'images/pages-1.img'), path.join(dir, 'images/pages-2.img'));
    // The forger recomputes the digests with the agent's own code path: a commit in another store.
    const forgerRoot = path.join(base, 'forger');
    await mkdir(forgerRoot);
    const forger = new StoreLayout(forgerRoot);
    await commitFakeDump('forged', { 'images/pages-1.img': 'evil', 'images/pages-2.img': 'evil' }, forger);
    const forgedText = await readFile(path.join(forgerRoot, 'forged', 'manifest.json'), 'utf8');
    expect(JSON.parse(forgedText).files).not.toEqual(manifest.files);
    await writeFile(path.join(dir, 'manifest.json'), forgedText);
    const message = await refusedWith(verify('forged'), 'CheckpointCorrupt');
    expect(message).toContain('MAC');
    await refusedWith(
      env.run(checkpointStoreActivities(testAgentConfig(root), layout).findCheckpoint, { hash: 'forged' }),
      'CheckpointCorrupt',
    );
  });

  it('a checkpoint signed with another key (a copy from another agent) is refused', async () => {
    const otherKey = path.join(base, 'other.key');
    await writeFile(otherKey, randomBytes(32), { mode: 0o600 });
    const foreign = new StoreLayout(root, layout.signalsDir(), otherKey);
    await commitFakeDump('foreign', { 'images/a.img': 'a' }, foreign);
    await refusedWith(verify('foreign'), 'CheckpointCorrupt');
    expect((await verify('foreign', foreign)).manifest.hash).toBe('foreign');
  });

  it("one checkpoint's manifest and MAC moved into another's directory are refused", async () => {
    await commitFakeDump('one', { 'images/a.img': 'a' });
    await commitFakeDump('two', { 'images/a.img': 'b' });
    for (const f of ['manifest.json', 'manifest.hmac']) await cp(path.join(root, 'one', f), path.join(root, 'two', f));
    await writeFile(path.join(root, 'two', 'images/a.img'), 'a');
    await refusedWith(verify('two'), 'CheckpointCorrupt');
  });

  it('a checkpoint without a MAC (an older agent, or one deleted) is refused with what to do', async () => {
    await commitFakeDump('legacy', { 'images/a.img': 'a' });
    await rm(path.join(root, 'legacy', 'manifest.hmac'));
    expect(await refusedWith(verify('legacy'), 'CheckpointCorrupt')).toContain('without a manifest MAC');
  });
});

describe('temporary files are fresh and outside the checkpoint (H6, M4)', () => {
  it('a link planted at the old predictable tmp name of a record is left alone, and so is its target', async () => {
    const record = path.join(root, '.runs', 'victim', 'workload.json');
    await plant(path.join(outside, 'precious.txt'), `${record}.tmp-${process.pid}`);
    const before = await snapshot(outside);
    await writeRecord(record, { hash: 'victim' });
    expect(await snapshot(outside)).toEqual(before);
    expect(JSON.parse(await readFile(record, 'utf8'))).toEqual({ hash: 'victim' });
  });

  it('a commit leaves no temporary file in the checkpoint directory, and keeps its records private', async () => {
    await commitFakeDump('clean', { 'images/a.img': 'a' });
    expect((await readdir(path.join(root, 'clean'))).sort()).toEqual(['checkpoint.done', 'images', 'manifest.hmac', 'manifest.json']);
    expect((await snapshot(path.join(root, '.keys')))['manifest.key']).toMatch(/mode=600/);
  });
});

describe('tenant-reachable inputs are not trusted for paths or reads (H6, L7, L10)', () => {
  it('container.json edited after the commit (another namespace) is refused before it is used', async () => {
    const record = { containerId: 'c1', node: 'n1', labels: { podNamespace: 'team-a' }, imageLayers: '/l', createdAt: 'now' };
    await commitFakeDump('ctr', { 'container.json': JSON.stringify(record), 'images/a.img': 'a' });
    const forged = JSON.stringify({ ...record, labels: { podNamespace: 'team-b' } });
    await writeFile(path.join(root, 'ctr', 'container.json'), forged);
    await refusedWith(committedContainerCheckpoint(layout, 'ctr', 'n1'), 'CheckpointCorrupt');
  });

  it('a spec hash never reads kernel files or what a link points into them, whatever the command names', async () => {
    await symlink('/proc/kcore', path.join(base, 'innocent.txt'));
    const activities = specHashActivities(testAgentConfig(root), async () => ({ driverVersion: null, gpus: [] }));
    const result: SpecHashResult = await env.run(activities.deriveSpecHash, {
      name: 'probe',
      runtime: 'local' as const,
      workload: { command: ['sh', '/proc/kcore', '/proc/self/environ', path.join(base, 'innocent.txt')], env: {} },
    });
    expect(result.inputs.files.map((f) => f.path).filter((p) => p.startsWith('/proc') || p.includes('innocent'))).toEqual([]);
  });

  it('a stray-CRIU sweep of one dump stops its CRIU (SIGTERM) and leaves a sibling dump id alone', async () => {
    const criu = path.join(base, 'bin', 'criu');
    await mkdir(path.dirname(criu));
    await symlink((await execa('python3', ['-c', 'import sys; print(sys.executable)'])).stdout, criu);
    const dir = path.join(root, '.tmp', 'h1.abcd');
    const start = (imagesDir: string) => spawn(criu, ['-c', 'import time; time.sleep(600)', 'dump', '-D', imagesDir], { stdio: 'ignore' });
    const mine = start(path.join(dir, 'images'));
    const sibling = start(path.join(`${dir}-2`, 'images'));
    try {
      await sleep(300);
      expect(await killStrayCriu(dir)).toEqual([mine.pid]);
      expect(mine.signalCode ?? (await new Promise((r) => mine.once('exit', (_, signal) => r(signal))))).toBe('SIGTERM');
      expect(sibling.exitCode === null && sibling.signalCode === null).toBe(true);
    } finally {
      mine.kill('SIGKILL');
      sibling.kill('SIGKILL');
    }
  });
});
