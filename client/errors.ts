import { ApplicationFailure, ScheduleNotFoundError, WorkflowFailedError } from '@temporalio/client';
import type { FailureType } from '../contract/failures.js';

/** A Torpor failure as callers see it: the stable `type` and the message that says what to do. */
export class TorporError extends Error {
  constructor(
    readonly type: FailureType | 'Unknown',
    message: string,
    readonly workflowId?: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = `TorporError(${type})`;
  }
}

/** The typed TorporError behind a workflow failure, a validation failure or a missing schedule; anything else as it is. */
export function toTorporError(err: unknown, workflowId?: string): unknown {
  if (err instanceof TorporError) return err;
  if (err instanceof ScheduleNotFoundError) {
    return new TorporError('ScheduleNotFound', `No refresh schedule ${err.scheduleId} (create it with ensureRefreshSchedule)`);
  }
  const cause = err instanceof WorkflowFailedError ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    return new TorporError((cause.type ?? 'Unknown') as FailureType, cause.message, workflowId, cause.details?.[0]);
  }
  return err;
}

/** Validates on the caller's side first, so bad input fails before any workflow starts. */
export function validated<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw toTorporError(err);
  }
}
