import type { WorkflowHandle } from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import type { TorporClient } from '../client/index.js';

/** Prints each phase change of a running workflow (from its `progress` query) until it completes. */
export async function watchProgress<W extends Workflow>(torpor: TorporClient, handle: WorkflowHandle<W>): Promise<Awaited<ReturnType<W>>> {
  let last = '';
  const started = Date.now();
  const poll = async () => {
    const p = await torpor.progress(handle.workflowId).catch(() => null);
    if (p && p.phase !== last) {
      last = p.phase;
      console.log(`  ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s  ${p.phase}`);
    }
  };
  const timer = setInterval(() => void poll(), 250);
  try {
    return (await handle.result()) as Awaited<ReturnType<W>>;
  } finally {
    clearInterval(timer);
  }
}
