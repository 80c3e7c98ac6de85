import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { decodeArrayFromPayloads } from '@temporalio/common/lib/internal-non-workflow/index.js';
import { DefaultLogger, type LogEntry, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { defaultHeavyStepLimit } from '../../activities/node/heavy-steps.js';
import { torporDataConverter } from '../../client/payload-codec.js';
import { createNodeAgent } from '../../workers/node-agent.js';
import { nodeAgentConfigFromEnv } from '../../workers/node-agent-config.js';
import { TEST_LOCAL_USER } from '../support/agent-config.js';
import { testSample } from '../support/sample.js';

const logs: LogEntry[] = [];
Runtime.install({ logger: new DefaultLogger('DEBUG', (entry) => logs.push(entry)) });

const WORKFLOWS = fileURLToPath(new URL('../support/heavy-step-workflows.ts', import.meta.url));
const HEARTBEAT_TIMEOUT_MS = 2000;
// Sparse: no disk used, but sha256 reads every byte (about 1.4 GB/s on one core here), so the hash holds the only slot for seconds.
const HASHED_FILE_BYTES = 6 * 2 ** 30;

let storage: string;
let bigFile: string;
let client: Client;
let connection: NativeConnection;
let workers: Worker[];
let running: Promise<void>[];
const node = `heavy-${randomBytes(4).toString('hex')}`;
const testQueue = `heavy-step-race-${node}`;

beforeAll(async () => {
  const address = inject('temporalAddress');
  storage = await mkdtemp(path.join(os.tmpdir(), 'torpor-heavy-'));
  bigFile = path.join(storage, 'big.bin');
  await writeFile(bigFile, '');
  await truncate(bigFile, HASHED_FILE_BYTES);
  connection = await NativeConnection.connect({ address });
  client = new Client({ connection: await Connection.connect({ address }), dataConverter: torporDataConverter() });
  const config = {
    ...nodeAgentConfigFromEnv({
      ...process.env,
      TORPOR_LOCAL_RUNTIME: 'on',
      TORPOR_STORAGE_ROOT: storage,
      NODE_NAME: node,
      TORPOR_HEAVY_STEPS: '1',
    }),
    localRuntime: TEST_LOCAL_USER,
  };
  workers = [
    await createNodeAgent(connection, 'default', config),
    await Worker.create({ connection, taskQueue: testQueue, workflowsPath: WORKFLOWS, dataConverter: torporDataConverter() }),
  ];
  running = workers.map((w) => w.run());
});

afterAll(async () => {
  for (const w of workers ?? []) w.shutdown();
  await Promise.allSettled(running ?? []);
  await connection?.close();
  await client?.connection.close();
  await rm(storage, { recursive: true, force: true });
});

/** The heartbeat details the server holds for a pending `dumpWorkload`, read until `done` settles. */
async function dumpHeartbeats(handle: WorkflowHandle, done: Promise<unknown>): Promise<unknown[]> {
  let finished = false;
  void done.finally(() => {
    finished = true;
  });
  const seen: unknown[] = [];
  while (!finished) {
    const { raw } = await handle.describe();
    for (const a of raw.pendingActivities ?? []) {
      if (a.activityType?.name !== 'dumpWorkload' || !a.heartbeatDetails?.payloads) continue;
      seen.push(...(await decodeArrayFromPayloads(client.workflow.options.loadedDataConverter, a.heartbeatDetails.payloads)));
    }
    await sleep(200);
  }
  return seen;
}

/** When the agent logged `message` for activity type `step` (ns since the epoch). */
function instant(message: string, step: string): bigint {
  const entry = logs.find((e) => e.message === message && (e.meta?.step ?? e.meta?.activityType) === step);
  if (!entry) throw new Error(`no "${message}" logged for ${step}`);
  return entry.timestampNanos;
}

describe('heavy steps on one agent, limited to one at a time (TORPOR_HEAVY_STEPS=1, real worker and CRIU)', () => {
  it('runs the second heavy step after the first, keeps it alive while queued, and lets a quick step through', async () => {
    const sample = testSample(storage);
    const handle = await client.workflow.start('heavyStepRace', {
      taskQueue: testQueue,
      workflowId: `heavy-step-race/${sample.hash}`,
      args: [
        {
          node,
          hash: sample.hash,
          workload: sample.workload,
          hashedWorkload: { command: ['sh', bigFile], env: {} },
          heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS,
        },
      ],
    });
    const done = handle.result();
    const heartbeats = await dumpHeartbeats(handle, done);
    const result = (await done) as { imageBytes: number; found: unknown };
    expect(heartbeats).toContainEqual(expect.objectContaining({ step: 'dumpWorkload', phase: 'queued', position: 1 }));
    // The dump succeeded although it waited longer than its heartbeat timeout: it heartbeated "queued".
    expect(result.imageBytes).toBeGreaterThan(0);
    expect(result.found).toBeNull();

    const hashStart = instant('heavy step started', 'deriveSpecHash');
    const hashEnd = instant('heavy step finished', 'deriveSpecHash');
    const dumpQueued = instant('heavy step queued', 'dumpWorkload');
    const dumpStart = instant('heavy step started', 'dumpWorkload');
    const quickDone = instant('Activity completed', 'findCheckpoint');
    expect(dumpQueued).toBeGreaterThan(hashStart);
    expect(dumpQueued).toBeLessThan(hashEnd);
    expect(dumpStart).toBeGreaterThanOrEqual(hashEnd);
    expect(quickDone).toBeLessThan(hashEnd);
    // The scenario's precondition, not a performance figure: the wait outlasted the heartbeat timeout.
    const waited = logs.find((e) => e.message === 'heavy step started' && e.meta?.step === 'dumpWorkload')?.meta?.waitedMs as number;
    expect(waited).toBeGreaterThan(HEARTBEAT_TIMEOUT_MS);
  });

  it('derives its default from the node: one per core, at most one per 2 GiB of available memory, at least one', () => {
    expect(defaultHeavyStepLimit(16, 125 * 2 ** 30)).toBe(16);
    expect(defaultHeavyStepLimit(16, 9 * 2 ** 30)).toBe(4);
    expect(defaultHeavyStepLimit(2, 23 * 2 ** 30)).toBe(2);
    expect(defaultHeavyStepLimit(8, 2 ** 30)).toBe(1);
  });
});
