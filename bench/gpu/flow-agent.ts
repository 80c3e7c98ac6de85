import './flow-agent-entry.js';
import type { LocalRuntimeConfig } from '../../activities/node/agent-config.js';
import { canDumpOtherUsers } from '../../activities/node/proc/capabilities.js';
import { nodeTaskQueue } from '../../contract/naming.js';
import { connectWorker, runMain, temporalTargetFromEnv } from '../../workers/connection.js';
import { createNodeAgent } from '../../workers/node-agent.js';
import { nodeAgentConfigFromEnv } from '../../workers/node-agent-config.js';

/**
 * The node agent of the GPU-machine workflow benchmark: workers/node-agent.ts's agent, configured
 * from the environment as there. One difference, as dev/local-stack.ts has it: where root lacks
 * CAP_SYS_RESOURCE (this project's development VM, for the dry run) CRIU cannot dump another
 * user's process, so local workloads run as the agent's own user, said aloud.
 */
function localUser(configured: LocalRuntimeConfig): LocalRuntimeConfig {
  if (canDumpOtherUsers()) return configured;
  const own = { uid: process.getuid?.() ?? configured.uid, gid: process.getgid?.() ?? configured.gid };
  console.warn(`local workloads run as uid ${own.uid}: without CAP_SYS_RESOURCE here, CRIU cannot dump a process of another user`);
  return own;
}

runMain(async () => {
  const target = temporalTargetFromEnv();
  const config = nodeAgentConfigFromEnv();
  if (config.localRuntime) config.localRuntime = localUser(config.localRuntime);
  const worker = await createNodeAgent(await connectWorker(target), target.namespace, config);
  console.log(
    `node agent for ${config.nodeName} polling ${nodeTaskQueue(config.nodeName)}; storage ${config.storageRoot}; ` +
      `local workloads as uid ${config.localRuntime?.uid ?? 'none'}; containers ${config.containers ? config.containers.runcRoot : 'none'}`,
  );
  await worker.run();
});
