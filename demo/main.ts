import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { TorporClient, workflowUiUrl } from '../client/index.js';
import type { CheckpointResult, RestoreResult } from '../contract/types.js';
import { startDevServer } from '../dev/temporal-dev-server.js';
import { readSampleStatus, type SampleStatus, sampleHash, sampleRestoredProbe, sampleWorkload } from '../sample-app/workload.js';
import { createControlWorker } from '../workers/control.js';
import { createNodeAgent } from '../workers/node-agent.js';
import { nodeAgentConfigFromEnv } from '../workers/node-agent-config.js';
import { watchProgress } from './progress-printer.js';
import { printReport } from './report.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEMO_DIR = path.join(ROOT, '.torpor', 'demo');
const UI_PORT = Number(process.env.TORPOR_UI_PORT ?? 8233);

async function temporal() {
  if (process.env.TEMPORAL_ADDRESS) {
    const address = process.env.TEMPORAL_ADDRESS;
    const ui = process.env.TEMPORAL_UI_URL ?? 'http://localhost:8233';
    return {
      client: new Client({ connection: await Connection.connect({ address }) }),
      worker: await NativeConnection.connect({ address }),
      ui,
      stop: async () => {},
    };
  }
  console.log(`starting the Temporal dev server (Web UI on http://localhost:${UI_PORT}) ...`);
  const env = await startDevServer({ ui: true, uiPort: UI_PORT });
  return { client: env.client, worker: env.nativeConnection, ui: `http://localhost:${UI_PORT}`, stop: () => env.teardown() };
}

/** Workers log warnings and errors only, and not the expected "nothing registered" notices of split workers. */
function quietWorkerLogs(): void {
  Runtime.install({
    logger: new DefaultLogger('WARN', (entry) => {
      if (!/^No (activities|workflows) registered/.test(entry.message)) console.error(`[${entry.level}] ${entry.message}`);
    }),
  });
}

async function main(): Promise<void> {
  quietWorkerLogs();
  await rm(DEMO_DIR, { recursive: true, force: true });
  await mkdir(DEMO_DIR, { recursive: true });
  const server = await temporal();
  const namespace = 'default';
  const agentConfig = nodeAgentConfigFromEnv({ ...process.env, TORPOR_STORAGE_ROOT: path.join(DEMO_DIR, 'storage') });
  const workers: Worker[] = [
    await createControlWorker(server.worker, namespace),
    await createNodeAgent(server.worker, namespace, agentConfig),
  ];
  const running = workers.map((w) => w.run());
  const torpor = new TorporClient(server.client);

  const sample = {
    tableMb: Number(process.env.DEMO_TABLE_MB ?? 256),
    initSeconds: Number(process.env.DEMO_INIT_SECONDS ?? 10),
    statusFile: path.join(DEMO_DIR, 'sample-status.json'),
  };
  const hash = sampleHash('demo', sample);
  let restored: RestoreResult | undefined;
  try {
    console.log(`checkpointing the sample app (hash ${hash}) on node ${agentConfig.nodeName} ...`);
    const checkpointHandle = await torpor.startCheckpoint({ hash, node: agentConfig.nodeName, runtime: 'local', workload: sampleWorkload(sample) });
    const checkpointed: CheckpointResult = await watchProgress(torpor, checkpointHandle);
    const before: SampleStatus = await readSampleStatus(sample.statusFile);

    console.log('restoring it ...');
    const restoreHandle = await torpor.startRestore({
      hash,
      node: agentConfig.nodeName,
      runtime: 'local',
      readiness: sampleRestoredProbe(sample.statusFile),
    });
    const restoreResult = await watchProgress(torpor, restoreHandle);
    restored = restoreResult;
    const firstAfter = await readSampleStatus(sample.statusFile);
    await sleep(1000);
    const after = await readSampleStatus(sample.statusFile);

    printReport({
      checkpoint: checkpointed,
      restore: restoreResult,
      before,
      firstAfter,
      after,
      links: [
        ['checkpoint', workflowUiUrl(server.ui, namespace, checkpointHandle.workflowId, checkpointHandle.firstExecutionRunId)],
        ['restore', workflowUiUrl(server.ui, namespace, restoreHandle.workflowId, restoreHandle.firstExecutionRunId)],
      ],
    });
    if (process.stdin.isTTY && !process.env.CI) {
      console.log(`\nThe Temporal UI stays up at ${server.ui} until you press Ctrl+C.`);
      await new Promise((resolve) => process.once('SIGINT', resolve));
    }
  } finally {
    if (restored) {
      try {
        process.kill(-restored.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    for (const w of workers) w.shutdown();
    await Promise.allSettled(running);
    await server.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? `${err.name}: ${err.message}` : err);
  process.exit(1);
});
