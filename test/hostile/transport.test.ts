/**
 * Hostile transport: what a reader of the Temporal history sees, and what a caller or worker without
 * the payload key can do. 9 hostile inputs, numbered [T1]..[T9].
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { Client, type WorkflowHandle } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { describe, expect, inject, it } from 'vitest';
import { startSpecHashWorkflow } from '../../client/checkpoint-workflows.js';
import { startCodecServer } from '../../client/codec-server.js';
import { TorporError } from '../../client/index.js';
import {
  AesGcmPayloadCodec,
  ENCRYPTED_ENCODING,
  newPayloadKeyLine,
  parsePayloadKeys,
  payloadCodecFromEnv,
} from '../../client/payload-codec.js';
import { CONTROL_TASK_QUEUE, checkpointWorkflowId } from '../../contract/naming.js';
import { createNodeAgent } from '../../workers/node-agent.js';
import { nodeAgentConfigFromEnv } from '../../workers/node-agent-config.js';
import { TEST_LOCAL_USER } from '../support/agent-config.js';
import { decodedTexts, encodingOf, payloadEntries, rawHistoryJson } from '../support/history-payloads.js';
import { testSample } from '../support/sample.js';
import { useTorpor } from '../support/torpor-harness.js';

const SECRET = `hunter2-${randomBytes(8).toString('hex')}`;
const secretForms = [SECRET, Buffer.from(SECRET).toString('base64')];
const codec = payloadCodecFromEnv();

async function eventsOf(handle: WorkflowHandle): Promise<Array<Record<string, unknown>>> {
  return (JSON.parse(await rawHistoryJson(handle)) as { events: Array<Record<string, unknown>> }).events;
}

/** Waits until the run's workflow task failed (a refused payload) and returns that failure's message. */
async function workflowTaskFailure(handle: WorkflowHandle): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const failed = (await eventsOf(handle)).find((e) => e.workflowTaskFailedEventAttributes);
    if (failed) return JSON.stringify(failed);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the workflow task never failed');
}

/** Only failed workflow tasks: no activity was ever scheduled, so nothing ran on any node. */
async function expectNothingScheduled(handle: WorkflowHandle): Promise<void> {
  const events = await eventsOf(handle);
  expect(events.some((e) => e.activityTaskScheduledEventAttributes || e.workflowTaskCompletedEventAttributes)).toBe(false);
}

function clientWith(base: Client, codecs: AesGcmPayloadCodec[]): Client {
  return new Client({ connection: base.connection, dataConverter: { payloadCodecs: codecs } });
}

describe('hostile transport: payloads are ciphertext and the key is required', () => {
  const { h, hashes } = useTorpor({ config: { localRuntime: TEST_LOCAL_USER } });

  it('[T1] a secret in the request env is ciphertext in the server history, and no result echoes it', async () => {
    const sample = testSample(h.storage);
    hashes.push(sample.hash);
    const workload = { ...sample.workload, env: { ...sample.workload.env, API_TOKEN: SECRET } };
    const handle = await h.torpor.startCheckpoint({ hash: sample.hash, node: h.node, runtime: 'local', workload });
    await h.torpor.result(handle);
    const raw = await rawHistoryJson(new Client({ connection: h.client.connection }).workflow.getHandle(handle.workflowId));
    const entries = payloadEntries(JSON.parse(raw));
    expect(entries.length).toBeGreaterThan(10);
    // Search attributes stay plaintext (the server indexes them): Torpor writes only hash, node, phase and namespace there.
    // The SDK writes a patch's ID in plaintext too (its marker and TemporalChangeVersion): names from the code, not the request.
    const plaintext = entries.filter((e) => encodingOf(e.payload) !== ENCRYPTED_ENCODING).map((e) => e.path);
    const allowed = [
      /\.searchAttributes\.indexedFields\.(Torpor(Hash|Node|Phase|Namespace)|TemporalChangeVersion)$/,
      /\.markerRecordedEventAttributes\.details\.patch-data\.payloads\.\d+$/,
    ];
    expect(plaintext.filter((p) => !allowed.some((a) => a.test(p)))).toEqual([]);
    for (const form of secretForms) expect(raw).not.toContain(form);
    expect(raw).not.toContain('API_TOKEN');
    const events = await eventsOf(handle);
    const results = events.filter((e) => e.activityTaskCompletedEventAttributes || e.workflowExecutionCompletedEventAttributes);
    const plain = await decodedTexts(results, codec);
    expect(plain.join('\n')).toContain(sample.hash);
    expect(plain.join('\n')).not.toContain(SECRET);
  });

  it('[T2] the spec hash of a workload with a secret names the variable and never returns its value', async () => {
    const { workload } = testSample(h.storage);
    const request = { name: 'hostile', node: h.node, runtime: 'local' as const, workload: { ...workload, env: { API_TOKEN: SECRET } } };
    const started = await startSpecHashWorkflow(h.client, request);
    const result = await h.torpor.result(started);
    expect(result.inputs.env).toEqual({ API_TOKEN: '<redacted>' });
    const events = await eventsOf(started);
    const results = events.filter((e) => e.activityTaskCompletedEventAttributes || e.workflowExecutionCompletedEventAttributes);
    const plain = (await decodedTexts(results, codec)).join('\n');
    expect(plain).toContain(result.hash);
    expect(plain).not.toContain(SECRET);
  });

  const refusedCallers: Array<[string, () => AesGcmPayloadCodec[], RegExp]> = [
    ['[T3] a caller without the key (plaintext)', () => [], /plaintext payload refused/],
    [
      '[T4] a caller with a key of another id',
      () => [new AesGcmPayloadCodec(parsePayloadKeys(newPayloadKeyLine('attacker-1')))],
      /encrypted with key attacker-1/,
    ],
    [
      '[T5] a caller forging the key id with other key bytes',
      () => [new AesGcmPayloadCodec(parsePayloadKeys(newPayloadKeyLine('local-1')))],
      /does not decrypt with the configured key local-1/,
    ],
  ];
  for (const [name, codecs, message] of refusedCallers) {
    it(`${name} cannot start a checkpoint: its workflow task fails, nothing runs`, async () => {
      const sample = testSample(h.storage);
      const handle = await clientWith(h.client, codecs()).workflow.start('checkpoint', {
        taskQueue: CONTROL_TASK_QUEUE,
        workflowId: checkpointWorkflowId(sample.hash),
        args: [{ hash: sample.hash, node: h.node, runtime: 'local', workload: sample.workload }],
      });
      try {
        expect(await workflowTaskFailure(handle)).toMatch(message);
        await expectNothingScheduled(handle);
        expect((await readdir(h.storage)).filter((f) => f.includes(sample.hash))).toEqual([]);
      } finally {
        await handle.terminate('hostile test');
      }
    });
  }

  it('[T6] a node agent without the key fails its activities with an error that says which key to configure', async () => {
    const node = `nokey-${randomBytes(3).toString('hex')}`;
    const config = {
      ...nodeAgentConfigFromEnv({ ...process.env, TORPOR_STORAGE_ROOT: h.storage, NODE_NAME: node }),
      localRuntime: TEST_LOCAL_USER,
    };
    const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
    const agent = await createNodeAgent(connection, 'default', config, { dataConverter: { payloadCodecs: [new AesGcmPayloadCodec([])] } });
    const running = agent.run();
    const sample = testSample(h.storage);
    const handle = await h.torpor.startCheckpoint({ hash: sample.hash, node, runtime: 'local', workload: sample.workload });
    try {
      let message = '';
      for (let i = 0; i < 100 && !message; i++) {
        const pending = (await handle.describe()).raw.pendingActivities ?? [];
        message = pending.map((a) => a.lastFailure?.message ?? '').join('');
        if (!message) await new Promise((r) => setTimeout(r, 200));
      }
      expect(message).toMatch(/payload encrypted with key local-1 \(none configured\); configure TORPOR_PAYLOAD_KEY_FILE/);
      expect((await readdir(h.storage)).filter((f) => f.includes(sample.hash))).toEqual([]);
    } finally {
      await handle.terminate('hostile test');
      agent.shutdown();
      await running;
      await connection.close();
    }
  });

  it('[T7, T8] a request for a running checkpoint with another node or workload is refused, and the run goes on untouched', async () => {
    const sample = testSample(h.storage, { SAMPLE_INIT_SECONDS: '3' });
    hashes.push(sample.hash);
    const request = { hash: sample.hash, node: h.node, runtime: 'local' as const, workload: sample.workload };
    const first = await h.torpor.startCheckpoint(request);
    const joined = await h.torpor.startCheckpoint(request);
    expect(joined.firstExecutionRunId).toBe(first.firstExecutionRunId);
    const otherNode = h.torpor.startCheckpoint({ ...request, node: 'some-other-node' });
    await expect(otherNode).rejects.toMatchObject({ type: 'CheckpointConflict', message: expect.stringMatching(/different node/) });
    const otherWorkload = { ...sample.workload, command: ['/bin/sh', '-c', 'id > /tmp/pwned'] };
    const conflict = h.torpor.startCheckpoint({ ...request, workload: otherWorkload });
    await expect(conflict).rejects.toBeInstanceOf(TorporError);
    await expect(conflict).rejects.toMatchObject({ type: 'CheckpointConflict', message: expect.stringMatching(/different workload/) });
    const result = await h.torpor.result(first);
    expect(result).toMatchObject({ hash: sample.hash, node: h.node, outcome: 'created' });
    const run = await h.client.workflow.getHandle(first.workflowId).describe();
    expect(run.runId).toBe(first.firstExecutionRunId);
  });

  it('[T9] the codec server decodes for the UI origin only, and refuses a tampered payload', async () => {
    const { server, url } = await startCodecServer({ codec, origin: 'http://ui.test:8233', host: '127.0.0.1', port: 0 });
    try {
      const [encrypted] = await codec.encode([
        { metadata: { encoding: new TextEncoder().encode('json/plain') }, data: new TextEncoder().encode('"hi"') },
      ]);
      const asJson = (p: typeof encrypted) => ({
        metadata: Object.fromEntries(Object.entries(p?.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
        data: Buffer.from(p?.data ?? new Uint8Array()).toString('base64'),
      });
      const post = (body: unknown) =>
        fetch(`${url}/decode`, { method: 'POST', body: JSON.stringify(body), headers: { 'X-Namespace': 'default' } });
      const ok = await post({ payloads: [asJson(encrypted)] });
      expect(ok.headers.get('access-control-allow-origin')).toBe('http://ui.test:8233');
      const decoded = (await ok.json()) as { payloads: Array<{ data: string }> };
      expect(Buffer.from(decoded.payloads[0]?.data ?? '', 'base64').toString()).toBe('"hi"');
      const tampered = asJson(encrypted);
      tampered.data = Buffer.from(Buffer.from(tampered.data, 'base64').map((b, i) => (i === 20 ? b ^ 1 : b))).toString('base64');
      const refused = await post({ payloads: [tampered] });
      expect(refused.status).toBe(400);
      expect(await refused.text()).toMatch(/does not decrypt/);
    } finally {
      server.close();
    }
  });
});
