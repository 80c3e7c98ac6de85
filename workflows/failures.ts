import { TimeoutType } from '@temporalio/common';
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';
import { torporFailure } from '../contract/failures.js';

/**
 * The failure a workflow ends with: the activity's typed ApplicationFailure itself (so callers read
 * `InvalidSpec`, `DumpFailed`, ... directly), and AgentUnavailable for a node nobody serves.
 */
export function surfaceFailure(err: unknown, node: string): unknown {
  if (!(err instanceof ActivityFailure)) return err;
  if (err.cause instanceof ApplicationFailure) return err.cause;
  if (err.cause instanceof TimeoutFailure && err.cause.timeoutType === TimeoutType.SCHEDULE_TO_START) {
    return torporFailure('AgentUnavailable', `No node agent picked up ${err.activityType} on node ${node}`);
  }
  if (err.cause instanceof TimeoutFailure && err.cause.timeoutType === TimeoutType.HEARTBEAT) {
    return torporFailure('AgentUnavailable', `The node agent on ${node} stopped heartbeating during ${err.activityType}`);
  }
  return err;
}
