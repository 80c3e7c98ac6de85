import { defineQuery, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Phase, Progress } from '../contract/types.js';

export const progressQuery = defineQuery<Progress>('progress');

/** Tracks the phase and the wall time of each step, and answers the `progress` query with them. */
export function trackProgress() {
  const progress: Progress = { phase: 'validating', stepMs: {} };
  setHandler(progressQuery, () => progress);
  return {
    progress,
    async step<T>(phase: Phase, run: () => Promise<T>): Promise<T> {
      progress.phase = phase;
      const started = Date.now();
      const result = await run();
      progress.stepMs[phase] = Date.now() - started;
      return result;
    },
    set(phase: Phase) {
      progress.phase = phase;
    },
    totalMs(): number {
      return Date.now() - workflowInfo().startTime.getTime();
    },
  };
}
