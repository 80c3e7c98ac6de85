import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import {
  type ActivityInterceptorsFactory,
  DefaultLogger,
  NativeConnection,
  Runtime,
  type Worker,
  type WorkerOptions,
} from '@temporalio/worker';
import { afterAll, beforeAll, inject } from 'vitest';
import type { GpuActivityDeps } from '../../activities/node/gpu/index.js';
import type { NodeAgentConfig } from '../../activities/node/index.js';
import { TorporClient } from '../../client/index.js';
import { torporDataConverter } from '../../client/payload-codec.js';
import { createControlWorker } from '../../workers/control.js';
import { createNodeAgent } from '../../workers/node-agent.js';
import { nodeAgentConfigFromEnv } from '../../workers/node-agent-config.js';
import { TEST_LOCAL_USER } from './agent-config.js';
import { killCheckpointProcesses } from './leftovers.js';

let runtimeInstalled = false;

export interface TorporHarness {
  torpor: TorporClient;
  client: Client;
  config: NodeAgentConfig;
  node: string;
  storage: string;
  /** Stops the in-process control worker (to let a spawned one run the workflows). */
  stopControl(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Real workers against the run's real Temporal server: the control worker (workflows) and a node
 * agent with its own storage root and a node name of its own, so test files never share a queue.
 */
export interface HarnessOptions {
  config?: Partial<NodeAgentConfig>;
  /** Interceptors for the node agent (fault injection). */
  agentInterceptors?: ActivityInterceptorsFactory[];
  /** Run no node agent (to test a node nobody serves). */
  noAgent?: boolean;
  /** A fake CUDA driver and GPU inventory for the agent (this machine has no GPU). */
  gpu?: GpuActivityDeps;
  /** Activities of the control worker (the Kubernetes ones, against a test API server). */
  controlActivities?: WorkerOptions['activities'];
  /** The node name, when a test's Kubernetes node must carry it. */
  node?: string;
  /** Variables the agent's configuration is read from, over the test process's own (TORPOR_*). */
  env?: Record<string, string>;
}

export async function startTorpor(options: HarnessOptions = {}): Promise<TorporHarness> {
  if (!runtimeInstalled) {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    runtimeInstalled = true;
  }
  const address = inject('temporalAddress');
  const storage = await mkdtemp(path.join(os.tmpdir(), 'torpor-test-'));
  const node = options.node ?? `test-${randomBytes(4).toString('hex')}`;
  const config = {
    ...nodeAgentConfigFromEnv({
      // Tests run local workloads (off by default on a node).
      TORPOR_LOCAL_RUNTIME: 'on',
      ...process.env,
      ...options.env,
      TORPOR_STORAGE_ROOT: storage,
      NODE_NAME: node,
    }),
    localRuntime: TEST_LOCAL_USER,
    ...options.config,
  };
  const connection = await NativeConnection.connect({ address });
  const client = new Client({ connection: await Connection.connect({ address }), dataConverter: torporDataConverter() });
  const workers: Worker[] = [
    await createControlWorker(connection, 'default', {
      workflowBundle: { codePath: inject('workflowBundlePath') },
      ...(options.controlActivities ? { activities: options.controlActivities } : {}),
    }),
  ];
  if (!options.noAgent) {
    workers.push(
      await createNodeAgent(connection, 'default', config, { interceptors: { activity: options.agentInterceptors ?? [] } }, options.gpu),
    );
  }
  const running = workers.map((w) => w.run());
  return {
    torpor: new TorporClient(client),
    client,
    config,
    node,
    storage: config.storageRoot,
    async stopControl() {
      workers[0]?.shutdown();
      await running[0];
    },
    async stop() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await Promise.allSettled(running);
      await connection.close();
      await client.connection.close();
      await rm(storage, { recursive: true, force: true });
    },
  };
}

/**
 * One harness for a test file or describe block: started before its tests and stopped after them,
 * killing whatever the checkpoints named in `hashes` left running. `h` is filled in by beforeAll.
 */
export function useTorpor(options: HarnessOptions = {}): { h: TorporHarness; hashes: string[] } {
  const shared = { h: {} as TorporHarness, hashes: [] as string[] };
  beforeAll(async () => {
    Object.assign(shared.h, await startTorpor(options));
  });
  afterAll(async () => {
    for (const hash of shared.hashes) await killCheckpointProcesses(hash);
    await shared.h.stop();
  });
  return shared;
}
