import { fileURLToPath } from 'node:url';
import type { WorkerOptions } from '@temporalio/worker';

/**
 * Workers bundle the workflows from source unless handed a prebuilt bundle (tests bundle once), or
 * TORPOR_WORKFLOW_BUNDLE names one made by bundleWorkflowCode (a machine without the sources or a
 * bundler: bench/gpu/pack-workflows.sh).
 */
export function workflowSource(
  bundle?: WorkerOptions['workflowBundle'],
  env: NodeJS.ProcessEnv = process.env,
): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  if (bundle) return { workflowBundle: bundle };
  if (env.TORPOR_WORKFLOW_BUNDLE) return { workflowBundle: { codePath: env.TORPOR_WORKFLOW_BUNDLE } };
  // Sources run through tsx; the image runs the compiled .js next to them.
  const ext = import.meta.url.endsWith('.js') ? 'js' : 'ts';
  return { workflowsPath: fileURLToPath(new URL(`../workflows/index.${ext}`, import.meta.url)) };
}
