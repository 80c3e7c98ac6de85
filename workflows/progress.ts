import { defineQuery, setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { TorporHash, TorporNamespace, TorporNode, TorporPhase } from '../contract/search-attributes.js';
import type { Phase, Progress } from '../contract/types.js';

export const progressQuery = defineQuery<Progress>('progress');

/**
 * Tracks the phase, the wall time of each step and the bytes written, answers the `progress`
 * query with them, and mirrors the phase into the TorporPhase search attribute and the UI's
 * current details.
 */
export function trackProgress() {
  const progress: Progress = { phase: 'validating', stepMs: {}, bytesWritten: 0 };
  setHandler(progressQuery, () => progress);
  const enter = (phase: Phase) => {
    progress.phase = phase;
    upsertSearchAttributes([{ key: TorporPhase, value: phase }]);
    setCurrentDetails(`**${phase}**`);
  };
  return {
    progress,
    /** Tags the execution with what it works on, once the request is valid. */
    /** `namespace`: the workload's Kubernetes namespace, 'local' for the local runtime; none where the workflow does not know it (containers). */
    identify(hash: string, node: string, namespace?: string) {
      upsertSearchAttributes([
        { key: TorporHash, value: hash },
        { key: TorporNode, value: node },
        ...(namespace === undefined ? [] : [{ key: TorporNamespace, value: namespace }]),
      ]);
    },
    async step<T>(phase: Phase, run: () => Promise<T>): Promise<T> {
      enter(phase);
      const started = Date.now();
      const result = await run();
      progress.stepMs[phase] = Date.now() - started;
      return result;
    },
    set: enter,
  };
}

export type ProgressTracker = ReturnType<typeof trackProgress>;
