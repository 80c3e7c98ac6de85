import { torporFailure } from '../../../contract/failures.js';
import type { LocalRuntimeConfig, NodeAgentConfig } from '../agent-config.js';
import { canDumpOtherUsers } from '../proc/capabilities.js';

/**
 * The user a local-runtime step runs the caller's code as; refuses the step when the local runtime
 * is off (the default). Whoever can start a workflow chooses that code, so it is opt-in per node.
 */
export function localRuntimeOwner(config: Pick<NodeAgentConfig, 'localRuntime' | 'nodeName'>, step: string): LocalRuntimeConfig {
  if (config.localRuntime) return config.localRuntime;
  throw torporFailure(
    'RuntimeDisabled',
    `Node agent ${config.nodeName} refuses ${step}: its local runtime is off, and ${step} would run a caller's command or process on the node`,
  );
}

/**
 * Refuses to start an agent whose local workloads it could never checkpoint: they run as another
 * user, whose process CRIU cannot dump without CAP_SYS_RESOURCE.
 */
export function assertCanDumpLocalWorkloads(config: Pick<NodeAgentConfig, 'localRuntime'>, canDump = canDumpOtherUsers()): void {
  const owner = config.localRuntime;
  if (owner === undefined || owner.uid === process.getuid?.() || canDump) return;
  throw new Error(
    `local workloads run as uid ${owner.uid} (TORPOR_LOCAL_UID), but this agent lacks CAP_SYS_RESOURCE, without which CRIU ` +
      'cannot dump a process of another user: grant it (a privileged container has it) or set TORPOR_LOCAL_RUNTIME=off',
  );
}
