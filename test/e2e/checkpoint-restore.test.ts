import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckpointResult, RestoreResult } from '../../contract/types.js';
import { readSampleStatus, type SampleStatus, sampleRestoredProbe } from '../../sample-app/workload.js';
import { exists, killCheckpointProcesses, processesOfCheckpoint, temporaryDumps } from '../support/leftovers.js';
import { testSample } from '../support/sample.js';
import { startTorpor, type TorporHarness } from '../support/torpor-harness.js';

describe('checkpoint and restore of a real process (real Temporal, real CRIU)', () => {
  let h: TorporHarness;
  let sample: ReturnType<typeof testSample>;
  let checkpointed: CheckpointResult;
  let atCheckpoint: SampleStatus;
  let restored: RestoreResult;

  beforeAll(async () => {
    h = await startTorpor();
    sample = testSample(h.storage);
    checkpointed = await h.torpor.checkpoint({ hash: sample.hash, node: h.node, runtime: 'local', workload: sample.workload });
    atCheckpoint = await readSampleStatus(sample.options.statusFile);
  });

  afterAll(async () => {
    await killCheckpointProcesses(sample.hash);
    await h.stop();
  });

  it('commits a checkpoint whose manifest lists every image file with its size and the sha256 of each chunk', async () => {
    expect(checkpointed.outcome).toBe('created');
    const dir = path.join(h.storage, sample.hash);
    expect(await exists(path.join(dir, 'checkpoint.done'))).toBe(true);
    const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
    expect(manifest).toEqual(checkpointed.manifest);
    expect(manifest.files.some((f: { path: string }) => f.path.startsWith('images/pages-'))).toBe(true);
    expect(manifest).toMatchObject({ formatVersion: 2, chunkBytes: h.config.digestChunkBytes });
    for (const f of manifest.files) {
      expect(f.chunkSha256).toHaveLength(Math.max(1, Math.ceil(f.sizeBytes / h.config.digestChunkBytes)));
      for (const digest of f.chunkSha256 ?? []) expect(digest).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(manifest.totalBytes).toBeGreaterThan(16 * 2 ** 20);
    expect(manifest.tools.criu).toMatch(/^4\./);
    expect(manifest.timings.dumpMs).toBeGreaterThan(0);
    expect(await temporaryDumps(h.storage)).toEqual([]);
  });

  it('lets the app exit on the signal file after the dump, as ChReK apps do', async () => {
    expect(checkpointed.workloadEnd).toBe('exited');
    expect(await processesOfCheckpoint(sample.hash)).toEqual([]);
    const log = await readFile(checkpointed.manifest.contract.logFile, 'utf8');
    expect(log).toContain('Checkpoint signal file detected');
  });

  it('restores the process with its memory intact: same checksum, same instance, counter continues', async () => {
    restored = await h.torpor.restore({
      hash: sample.hash,
      node: h.node,
      runtime: 'local',
      readiness: sampleRestoredProbe(sample.options.statusFile),
    });
    const first = await readSampleStatus(sample.options.statusFile);
    await sleep(600);
    const later = await readSampleStatus(sample.options.statusFile);
    expect(first.phase).toBe('restored');
    expect(first.checksum).toBe(atCheckpoint.checksum);
    expect(first.instance).toBe(atCheckpoint.instance);
    expect(first.pid).toBe(checkpointed.manifest.process.pid);
    expect(restored.pid).toBe(checkpointed.manifest.process.pid);
    expect(first.counter).toBeGreaterThan(atCheckpoint.counter);
    expect(later.counter).toBeGreaterThan(first.counter);
    expect(await readFile(restored.logFile, 'utf8')).toContain('Detected restore from checkpoint');
  });

  it('returns the committed checkpoint for a second request of the same hash without dumping again', async () => {
    const handle = await h.torpor.startCheckpoint({ hash: sample.hash, node: h.node, runtime: 'local', workload: sample.workload });
    const again = await handle.result();
    expect(again.outcome).toBe('existing');
    expect(again.manifest.createdAt).toBe(checkpointed.manifest.createdAt);
    const history = await handle.fetchHistory();
    const scheduled = (history.events ?? []).flatMap((e) =>
      e.activityTaskScheduledEventAttributes?.activityType?.name ? [e.activityTaskScheduledEventAttributes.activityType.name] : [],
    );
    // The look-up and the start are one agent step (patch local-start-with-look-up): it found the checkpoint and started nothing.
    expect(scheduled).toEqual(['startUnlessCommitted']);
    expect(again.workloadEnd).toBe('not-started');
  });

  it('refuses a second restored copy on the same node while the first runs (the PID is taken)', async () => {
    await expect(h.torpor.restore({ hash: sample.hash, node: h.node, runtime: 'local' })).rejects.toMatchObject({
      type: 'RestoreFailed',
      message: expect.stringContaining('in use'),
    });
    expect(await processesOfCheckpoint(sample.hash)).toEqual([restored.pid]);
  });
});

describe('concurrent checkpoint requests', () => {
  it('joins a request for an in-flight hash instead of starting a second checkpoint', async () => {
    const h = await startTorpor();
    const sample = testSample(h.storage);
    try {
      const request = { hash: sample.hash, node: h.node, runtime: 'local' as const, workload: sample.workload };
      const first = await h.torpor.startCheckpoint(request);
      const second = await h.torpor.startCheckpoint(request);
      expect(second.firstExecutionRunId).toBe(first.firstExecutionRunId);
      const [a, b] = await Promise.all([first.result(), second.result()]);
      expect(a.outcome).toBe('created');
      expect(b.manifest.createdAt).toBe(a.manifest.createdAt);
    } finally {
      await killCheckpointProcesses(sample.hash);
      await h.stop();
    }
  });
});
