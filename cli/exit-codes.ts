import type { TorporError } from '../client/index.js';

/**
 * The CLI's exit codes, so scripts can tell what went wrong without parsing messages.
 *   0 ok · 1 the workflow failed (WorkloadNotReady, DumpFailed, ...) · 2 bad arguments or input
 *   (usage, InvalidSpec, TargetNotAllowed) · 3 not found (CheckpointNotFound, ScheduleNotFound)
 *   4 checkpoint in use (CheckpointInUse) · 5 unavailable (Temporal unreachable, AgentUnavailable)
 *   6 unexpected error (a bug: please report it)
 */
export const ExitCode = { ok: 0, failed: 1, usage: 2, notFound: 3, inUse: 4, unavailable: 5, unexpected: 6 } as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export function exitCodeOf(type: TorporError['type']): ExitCode {
  switch (type) {
    case 'InvalidSpec':
    case 'TargetNotAllowed':
      return ExitCode.usage;
    case 'CheckpointNotFound':
    case 'ScheduleNotFound':
      return ExitCode.notFound;
    case 'CheckpointInUse':
      return ExitCode.inUse;
    case 'AgentUnavailable':
      return ExitCode.unavailable;
    case 'Unknown':
      return ExitCode.unexpected;
    default:
      return ExitCode.failed;
  }
}
