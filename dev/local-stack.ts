import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import type { LocalRuntimeConfig } from '../activities/node/agent-config.js';
import { canDumpOtherUsers } from '../activities/node/proc/capabilities.js';
import { startCodecServer } from '../client/codec-server.js';
import { TorporClient } from '../client/index.js';
import { payloadCodecFromEnv, torporDataConverter } from '../client/payload-codec.js';
import { createControlWorker } from '../workers/control.js';
import { createNodeAgent } from '../workers/node-agent.js';
import { nodeAgentConfigFromEnv } from '../workers/node-agent-config.js';
import { useLocalPayloadKeys } from './payload-keys.js';
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

/** The dev UI shows plaintext: a codec server on a free loopback port, for the UI's origin only. */
function startUiCodecServer(uiPort: number) {
  return startCodecServer({ codec: payloadCodecFromEnv(), origin: `http://localhost:${uiPort}`, host: '127.0.0.1', port: 0 });
}

/**
 * Who the stack's local workloads run as: nobody (or TORPOR_LOCAL_UID), unless this machine's root
 * lacks CAP_SYS_RESOURCE and CRIU could not dump them; then the stack's own user, said aloud.
 */
function localStackUser(configured: LocalRuntimeConfig): LocalRuntimeConfig {
  if (process.env.TORPOR_LOCAL_UID || canDumpOtherUsers()) return configured;
  const own = { uid: process.getuid?.() ?? configured.uid, gid: process.getgid?.() ?? configured.gid };
  console.warn(`local workloads run as uid ${own.uid}: without CAP_SYS_RESOURCE here, CRIU cannot dump a process of another user`);
  return own;
}

/**
 * Everything on this machine in one process: Temporal (the dev server, or TEMPORAL_ADDRESS when set),
 * the control worker and this host's node agent. The demo and the benchmarks use it.
 */
export async function startLocalStack(options: LocalStackOptions) {
  quietWorkerLogs();
  useLocalPayloadKeys();
  const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
  const external = process.env.TEMPORAL_ADDRESS;
  const { uiPort } = options;
  const codec = uiPort === undefined || external ? null : await startUiCodecServer(uiPort);
  const server = external
    ? null
    : await startDevServer(codec && uiPort !== undefined ? { ui: true, uiPort, uiCodecEndpoint: codec.url } : {});
  const address = external ?? (server?.address as string);
  const client = new Client({ connection: await Connection.connect({ address }), namespace, dataConverter: torporDataConverter() });
  const connection = await NativeConnection.connect({ address });
  const config = nodeAgentConfigFromEnv({
    // The local stack exists to run local workloads (off by default on a node), as nobody unless TORPOR_LOCAL_UID says.
    TORPOR_LOCAL_RUNTIME: 'on',
    ...process.env,
    TORPOR_STORAGE_ROOT: options.storageRoot,
  });
  if (config.localRuntime) config.localRuntime = localStackUser(config.localRuntime);
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
      codec?.server.close();
    },
  };
}
