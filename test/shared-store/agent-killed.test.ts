import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { payloadCodecFromEnv } from '../../client/payload-codec.js';
import { readSampleStatus, sampleRestoredProbe, sampleWorkload } from '../../sample-app/workload.js';
import { decodedHistoryJson, payloadsOf, rawHistoryJson } from '../support/history-payloads.js';
import { killCheckpointProcesses } from '../support/leftovers.js';
import { type S3Server, startS3Server } from '../support/s3-server.js';
import { startTorpor, type TorporHarness } from '../support/torpor-harness.js';
import { sharedKeyFile } from './fixtures.js';
import { type OtherNodeAgent, startOtherNodeAgent } from './other-node-agent.js';

describe('node B killed mid-download (real S3, Temporal, CRIU)', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  });

  it('retries the fetch on the restarted agent, keeping the chunks it verified, and restores the same memory', async () => {
    const s3: S3Server = await startS3Server();
    cleanup.push(() => s3.stop());
    const keyFile = await sharedKeyFile();
    cleanup.push(() => rm(path.dirname(keyFile), { recursive: true, force: true }));
    const env = { ...s3.agentEnv(), TORPOR_MANIFEST_KEY_FILE: keyFile, TORPOR_DIGEST_CHUNK_BYTES: String(1 << 20) };
    const a: TorporHarness = await startTorpor({ env });
    cleanup.push(() => a.stop());
    // Big enough that the download is still running when the kill comes.
    const statusFile = path.join(os.tmpdir(), 'torpor-sample-status', `killed-${randomBytes(3).toString('hex')}.json`);
    const workload = sampleWorkload({ tableMb: 192, initSeconds: 1, statusFile, env: {} });
    const hash = `t-${randomBytes(6).toString('hex')}`;
    cleanup.push(() => killCheckpointProcesses(hash));
    const { manifest } = await a.torpor.checkpoint({ hash, node: a.node, runtime: 'local', workload, sharedStore: true });
    const atCheckpoint = await readSampleStatus(statusFile);

    const bStore = await mkdtemp(path.join(os.tmpdir(), 'torpor-node-b-'));
    cleanup.push(() => rm(bStore, { recursive: true, force: true }));
    const marker = path.join(bStore, '..', `${path.basename(bStore)}.killed`);
    cleanup.push(() => rm(marker, { force: true }));
    const nodeB = `test-b-${randomBytes(4).toString('hex')}`;
    const bEnv = { ...env, NODE_NAME: nodeB, TEMPORAL_ADDRESS: inject('temporalAddress'), TORPOR_KILL_MARKER: marker };
    const dying: OtherNodeAgent = await startOtherNodeAgent(bStore, a.storage, { ...bEnv, TORPOR_KILL_AT: 'during:fetchCheckpoint:400' });
    cleanup.push(() => dying.kill());

    const handle = await a.torpor.startRestore({
      hash,
      node: nodeB,
      runtime: 'local',
      sharedStore: true,
      readiness: sampleRestoredProbe(statusFile),
    });
    await dying.exited;
    expect(await readFile(marker, 'utf8')).toContain('fetchCheckpoint');
    const restarted = await startOtherNodeAgent(bStore, a.storage, bEnv);
    cleanup.push(() => restarted.kill());
    const restored = await handle.result();

    expect(restored.node).toBe(nodeB);
    const status = await readSampleStatus(statusFile);
    expect(status.checksum).toBe(atCheckpoint.checksum);
    const decoded = JSON.parse(await decodedHistoryJson(await rawHistoryJson(handle), payloadCodecFromEnv()));
    const texts = payloadsOf(decoded).map((p) => Buffer.from(p.data ?? '', 'base64').toString('utf8'));
    const fetched = texts.map((t) => /"source":"shared-store".*"fetchedBytes":(\d+),"keptBytes":(\d+)/.exec(t)).find(Boolean);
    expect(fetched, 'the fetch result in the history').toBeTruthy();
    const [fetchedBytes, keptBytes] = [Number(fetched?.[1]), Number(fetched?.[2])];
    expect(keptBytes).toBeGreaterThan(0);
    expect(fetchedBytes).toBeLessThan(manifest.totalBytes);
    expect(fetchedBytes + keptBytes).toBe(manifest.totalBytes);
  });
});
