import { type ActivityOptions, proxyActivities } from '@temporalio/workflow';
import type { NodeActivities } from '../activities/node/index.js';
import { NON_RETRYABLE_FAILURES } from '../contract/failures.js';
import { nodeTaskQueue } from '../contract/naming.js';

/**
 * Timeouts and retry policies of every activity group, in one place.
 * - quick: bookkeeping on the node (look-ups, signals, stops); short and freely retried.
 * - heavy: CRIU dump/restore and hashing of images; long, heartbeating bytes.
 * - wait: waiting for the workload; as long as the caller's timeout, heartbeating.
 * Schedule-to-start bounds how long a step waits for the node's agent to poll: a missing agent
 * surfaces as AgentUnavailable instead of a workflow that hangs.
 */
export const AGENT_SCHEDULE_TO_START_MS = 60_000;
const HEARTBEAT_TIMEOUT_MS = 15_000;
const retry = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
  nonRetryableErrorTypes: NON_RETRYABLE_FAILURES,
};

function group(node: string, options: Omit<ActivityOptions, 'taskQueue' | 'scheduleToStartTimeout'>) {
  return proxyActivities<NodeActivities>({
    taskQueue: nodeTaskQueue(node),
    scheduleToStartTimeout: AGENT_SCHEDULE_TO_START_MS,
    ...options,
  });
}

export function nodeActivities(node: string) {
  return {
    quick: group(node, { startToCloseTimeout: '1 minute', retry: { ...retry, maximumAttempts: 5 } }),
    heavy: group(node, { startToCloseTimeout: '2 hours', heartbeatTimeout: HEARTBEAT_TIMEOUT_MS, retry: { ...retry, maximumAttempts: 3 } }),
    /** Waits are bounded by the workload's own timeout; the activity reports that timeout as a typed failure first. */
    wait: (timeoutMs: number) =>
      group(node, {
        startToCloseTimeout: timeoutMs + 60_000,
        heartbeatTimeout: HEARTBEAT_TIMEOUT_MS,
        retry: { ...retry, maximumAttempts: 3 },
      }),
  };
}
