import { fileURLToPath } from 'node:url';
import type { WorkerOptions } from '@temporalio/worker';

/** Workers bundle the workflows from source unless handed a prebuilt bundle (tests bundle once). */
export function workflowSource(bundle?: WorkerOptions['workflowBundle']): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  return bundle ? { workflowBundle: bundle } : { workflowsPath: fileURLToPath(new URL('../workflows/index.ts', import.meta.url)) };
}
