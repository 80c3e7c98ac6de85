/**
 * A worker in its own process, so a test can SIGKILL it like a crash: the node agent (with an
 * optional kill point, see fault-injection.ts) or the control worker. Prints "polling" when ready.
 *   TORPOR_ROLE=agent|control, TEMPORAL_ADDRESS, NODE_NAME, TORPOR_STORAGE_ROOT,
 *   TORPOR_KILL_AT=<before|during|after>:<activity>[:ms], TORPOR_KILL_MARKER=<file>, TORPOR_WORKFLOW_BUNDLE=<file>
 */
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createControlWorker } from '../../workers/control.js';
import { createNodeAgent } from '../../workers/node-agent.js';
import { nodeAgentConfigFromEnv } from '../../workers/node-agent-config.js';
import { TEST_LOCAL_USER } from './agent-config.js';
import { killInterceptor, parseKillPoint } from './fault-injection.js';

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const connection = await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS as string });
  const killAt = parseKillPoint(process.env.TORPOR_KILL_AT);
  const worker =
    process.env.TORPOR_ROLE === 'control'
      ? await createControlWorker(connection, 'default', { workflowBundle: { codePath: process.env.TORPOR_WORKFLOW_BUNDLE as string } })
      : await createNodeAgent(
          connection,
          'default',
          { ...nodeAgentConfigFromEnv({ TORPOR_LOCAL_RUNTIME: 'on', ...process.env }), localRuntime: TEST_LOCAL_USER },
          {
            interceptors: { activity: killAt ? [killInterceptor(killAt, process.env.TORPOR_KILL_MARKER as string)] : [] },
          },
        );
  console.log('polling');
  await worker.run();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
