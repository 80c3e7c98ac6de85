import { torporFailure } from '../contract/failures.js';
import type { CheckpointSpec } from '../contract/spec.js';
import { clusterActivities, type nodeActivities } from './activity-policies.js';

/**
 * The only steps that differ between runtimes: how the checkpoint workload is started, when it is
 * ready, when it has exited, and how it is removed. Everything node-side is the same.
 */
export interface CheckpointWorkload {
  start(): Promise<unknown>;
  waitReady(): Promise<unknown>;
  /** True when it exited by itself after the signal; false when it had to be stopped. */
  waitExit(): Promise<boolean>;
  /** Stops it if still running and removes what it left (also its compensation). */
  remove(): Promise<unknown>;
}

/** `local`: a process the node agent starts on its own host. */
export function localCheckpointWorkload(spec: CheckpointSpec, agent: ReturnType<typeof nodeActivities>): CheckpointWorkload {
  const { hash } = spec;
  return {
    start: () => agent.quick.startWorkload({ hash, workload: spec.workload }),
    waitReady: () => agent.wait(spec.readyTimeoutMs).waitWorkloadReady({ hash, timeoutMs: spec.readyTimeoutMs }),
    async waitExit() {
      const exit = await agent.wait(spec.exitTimeoutMs).waitWorkloadExit({ hash, timeoutMs: spec.exitTimeoutMs });
      if (!exit.exited) await agent.quick.stopWorkload({ hash });
      return exit.exited;
    },
    remove: () => agent.quick.cleanupWorkload({ hash }),
  };
}

/** `kubernetes`: ChReK's checkpoint Job, pinned to the request's node, created by the control worker. */
export function kubernetesCheckpointWorkload(spec: CheckpointSpec): CheckpointWorkload {
  const { hash, node } = spec;
  const section = spec.kubernetes;
  if (section === undefined) throw torporFailure('InvalidSpec', 'kubernetes is required for the kubernetes runtime');
  const cluster = clusterActivities(spec.agentTimeoutMs);
  const kubernetes = { ...section, node, command: spec.workload.command, env: spec.workload.env };
  const { namespace } = section;
  return {
    start: () => cluster.quick.createCheckpointJob({ hash, kubernetes }),
    async waitReady() {
      const pod = await cluster.wait(spec.readyTimeoutMs).waitForCheckpointPod({ hash, namespace, timeoutMs: spec.readyTimeoutMs });
      if (pod.nodeName !== node) {
        throw torporFailure('TargetNotAllowed', `Checkpoint pod ${namespace}/${pod.podName} runs on ${pod.nodeName}, not on ${node}`);
      }
      return pod;
    },
    async waitExit() {
      const exit = await cluster.wait(spec.exitTimeoutMs).waitForCheckpointPodExit({ hash, namespace, timeoutMs: spec.exitTimeoutMs });
      return exit.exited;
    },
    remove: () => cluster.quick.deleteCheckpointJob({ hash, namespace }),
  };
}
