/**
 * One node agent of the load benchmark, in its own process: workers/node-agent.ts's wiring with the
 * local runtime on. Where this machine's root lacks CAP_SYS_RESOURCE (CRIU then cannot dump another
 * user's process), the workloads run as this process's own user, as dev/local-stack.ts does.
 *   NODE_NAME, TORPOR_STORAGE_ROOT, TEMPORAL_ADDRESS, TORPOR_HEAVY_STEPS, TORPOR_AGENT_ACTIVITY_SLOTS
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { canDumpOtherUsers } from '../../activities/node/proc/capabilities.js';
import { nodeTaskQueue } from '../../contract/naming.js';
import { connectWorker, runMain, temporalTargetFromEnv } from '../../workers/connection.js';
import { createNodeAgent } from '../../workers/node-agent.js';
import { nodeAgentConfigFromEnv } from '../../workers/node-agent-config.js';

// One JSON line per entry, so the benchmark can read the heavy-step queue's waits back.
Runtime.install({
  logger: new DefaultLogger('INFO', ({ level, message, meta, timestampNanos }) => {
    process.stderr.write(`${JSON.stringify({ t: Number(timestampNanos / 1_000_000n), level, message, ...meta })}\n`);
  }),
});

runMain(async () => {
  const target = temporalTargetFromEnv();
  const config = nodeAgentConfigFromEnv({ ...process.env, TORPOR_LOCAL_RUNTIME: 'on' });
  if (config.localRuntime && !canDumpOtherUsers()) config.localRuntime = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const worker = await createNodeAgent(await connectWorker(target), target.namespace, config);
  console.log(`node agent ${config.nodeName} polling ${nodeTaskQueue(config.nodeName)}; heavy steps ${config.heavyStepLimit} at once`);
  await worker.run();
});
