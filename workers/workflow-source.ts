import { fileURLToPath } from 'node:url';
import type { WorkerOptions } from '@temporalio/worker';

/** Workers bundle the workflows from source unless handed a prebuilt bundle (tests bundle once). */
export function workflowSource(bundle?: WorkerOptions['workflowBundle']): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  // Sources run through tsx; the image runs the compiled .js next to them.
  const ext = import.meta.url.endsWith('.js') ? 'js' : 'ts';
  return bundle ? { workflowBundle: bundle } : { workflowsPath: fileURLToPath(new URL(`../workflows/index.${ext}`, import.meta.url)) };
}
