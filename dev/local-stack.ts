import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { TorporClient } from '../client/index.js';
import { createControlWorker } from '../workers/control.js';
import { createNodeAgent } from '../workers/node-agent.js';
import { nodeAgentConfigFromEnv } from '../workers/node-agent-config.js';
import { startDevServer } from './temporal-dev-server.js';

export interface LocalStackOptions {
  storageRoot: string;
  /** Start the dev server's Web UI on this port (the demo); none when omitted. */
  uiPort?: number;
}

/** Workers log warnings and errors only, and not the expected "nothing registered" notices of split workers. */
function quietWorkerLogs(): void {
  Runtime.install({
    logger: new DefaultLogger('WARN', (entry) => {
      if (!/^No (activities|workflows) registered/.test(entry.message)) console.error(`[${entry.level}] ${entry.message}`);
    }),
  });
}

/**
 * Everything on this machine in one process: Temporal (the dev server, or TEMPORAL_ADDRESS when set),
 * the control worker and this host's node agent. The demo and the benchmarks use it.
 */
export async function startLocalStack(options: LocalStackOptions) {
  quietWorkerLogs();
  const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
  const external = process.env.TEMPORAL_ADDRESS;
  const server = external ? null : await startDevServer(options.uiPort === undefined ? {} : { ui: true, uiPort: options.uiPort });
  const address = external ?? (server?.address as string);
  const client = new Client({ connection: await Connection.connect({ address }), namespace });
  const connection = await NativeConnection.connect({ address });
  const config = nodeAgentConfigFromEnv({ ...process.env, TORPOR_STORAGE_ROOT: options.storageRoot });
  const workers: Worker[] = [await createControlWorker(connection, namespace), await createNodeAgent(connection, namespace, config)];
  const running = workers.map((w) => w.run());
  return {
    torpor: new TorporClient(client),
    client,
    namespace,
    address,
    node: config.nodeName,
    uiUrl: external ? (process.env.TEMPORAL_UI_URL ?? 'http://localhost:8233') : `http://localhost:${options.uiPort ?? 8233}`,
    async stop() {
      for (const w of workers) w.shutdown();
      await Promise.allSettled(running);
      await connection.close();
      await client.connection.close();
      await server?.teardown();
    },
  };
}
