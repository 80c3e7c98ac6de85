import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { TestProject } from 'vitest/node';
import { useLocalPayloadKeys } from '../../dev/payload-keys.js';
import { startDevServer } from '../../dev/temporal-dev-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    workflowBundlePath: string;
  }
}

/** One real Temporal dev server and one workflow bundle for the whole run. */
export default async function setup(project: TestProject) {
  // Before the test processes fork, so they, their workers and the CLIs they run share the key.
  useLocalPayloadKeys();
  const env = await startDevServer();
  const bundle = await bundleWorkflowCode({
    workflowsPath: fileURLToPath(new URL('../../workflows/index.ts', import.meta.url)),
    logger: {
      log: () => undefined,
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: console.warn,
      error: console.error,
    },
  });
  const dir = fileURLToPath(new URL('../../.torpor/test/', import.meta.url));
  await mkdir(dir, { recursive: true });
  const workflowBundlePath = `${dir}workflow-bundle.js`;
  await writeFile(workflowBundlePath, bundle.code);
  project.provide('temporalAddress', env.address);
  project.provide('workflowBundlePath', workflowBundlePath);
  return async () => {
    await env.teardown();
  };
}
