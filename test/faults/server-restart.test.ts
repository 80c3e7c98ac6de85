import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { TorporClient } from '../../client/index.js';
import { torporDataConverter } from '../../client/payload-codec.js';
import { startDevServer } from '../../dev/temporal-dev-server.js';
import { readSampleStatus, sampleRestoredProbe } from '../../sample-app/workload.js';
import { createControlWorker } from '../../workers/control.js';
import { createNodeAgent } from '../../workers/node-agent.js';
import { nodeAgentConfigFromEnv } from '../../workers/node-agent-config.js';
import { TEST_LOCAL_USER } from '../support/agent-config.js';
import { freePort } from '../support/free-port.js';
import { killCheckpointProcesses } from '../support/leftovers.js';
import { testSample } from '../support/sample.js';
import { expectWorldClean } from '../support/world.js';

describe('the Temporal server restarted mid-workflow', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('keeps the checkpoint workflow (dev server with a database file) and the workflow completes', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'torpor-restart-'));
    await chmod(dir, 0o711); // the workload runs as nobody and must reach its files in the storage below
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const port = await freePort();
    const dbFilename = path.join(dir, 'temporal.db');
    let server: TestWorkflowEnvironment = await startDevServer({ port, dbFilename });
    cleanups.push(() => server.teardown());
    const address = `127.0.0.1:${port}`;

    const config = nodeAgentConfigFromEnv({
      TORPOR_LOCAL_RUNTIME: 'on',
      ...process.env,
      TORPOR_STORAGE_ROOT: path.join(dir, 'storage'),
      NODE_NAME: 'restart-node',
    });
    config.localRuntime = TEST_LOCAL_USER;
    const connection = await NativeConnection.connect({ address });
    const workers: Worker[] = [
      await createControlWorker(connection, 'default', { workflowBundle: { codePath: inject('workflowBundlePath') } }),
      await createNodeAgent(connection, 'default', config),
    ];
    const running = workers.map((w) => w.run());
    cleanups.push(async () => {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await Promise.allSettled(running);
    });
    const client = new Client({ connection: await Connection.connect({ address }), dataConverter: torporDataConverter() });
    const torpor = new TorporClient(client);

    const sample = testSample(config.storageRoot, { SAMPLE_INIT_SECONDS: '6' });
    cleanups.push(() => killCheckpointProcesses(sample.hash));
    const handle = await torpor.startCheckpoint({ hash: sample.hash, node: config.nodeName, runtime: 'local', workload: sample.workload });
    while ((await torpor.progress(handle.workflowId)).phase !== 'waiting-ready') await new Promise((r) => setTimeout(r, 100));

    await server.teardown();
    server = await startDevServer({ port, dbFilename });

    const result = await client.workflow.getHandle(handle.workflowId).result();
    expect(result.outcome).toBe('created');
    await expectWorldClean(config.storageRoot, sample.hash, 'committed');
    const atCheckpoint = await readSampleStatus(sample.options.statusFile);
    const restored = await torpor.restore({
      hash: sample.hash,
      node: config.nodeName,
      runtime: 'local',
      readiness: sampleRestoredProbe(sample.options.statusFile),
    });
    expect((await readSampleStatus(sample.options.statusFile)).checksum).toBe(atCheckpoint.checksum);
    process.kill(-restored.pid, 'SIGKILL');
  });
});
