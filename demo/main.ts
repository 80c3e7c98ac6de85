import { chmod, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { workflowUiUrl } from '../client/index.js';
import { startLocalStack } from '../dev/local-stack.js';
import { fetchSampleState, readSampleStatus, sampleHash, sampleHealthProbe, sampleWorkload } from '../sample-app/workload.js';
import { watchProgress } from './progress-printer.js';
import { printReport } from './report.js';

const DEMO_DIR = fileURLToPath(new URL('../.torpor/demo/', import.meta.url));
const UI_PORT = Number(process.env.TORPOR_UI_PORT ?? 8233);

function stopProcessGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    // already gone
  }
}

/** A directory the app may write its status into: the agent runs it as nobody (sticky, as /tmp is). */
async function writableByAll(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o1777);
  return dir;
}

/** Checkpoints the sample app through Temporal, restores it, and prints what it measured. */
async function main(): Promise<void> {
  await rm(DEMO_DIR, { recursive: true, force: true });
  await mkdir(DEMO_DIR, { recursive: true });
  if (!process.env.TEMPORAL_ADDRESS) console.log(`starting the Temporal dev server (Web UI on http://localhost:${UI_PORT}) ...`);
  const stack = await startLocalStack({ storageRoot: path.join(DEMO_DIR, 'storage'), uiPort: UI_PORT });
  const sample = {
    tableMb: Number(process.env.DEMO_TABLE_MB ?? 256),
    initSeconds: Number(process.env.DEMO_INIT_SECONDS ?? 10),
    statusFile: path.join(await writableByAll(path.join(DEMO_DIR, 'status')), 'sample-status.json'),
  };
  const hash = sampleHash('demo', sample);
  const target = { hash, node: stack.node, runtime: 'local' as const };
  let restoredPid: number | undefined;
  try {
    console.log(`checkpointing the sample app (hash ${hash}) on node ${stack.node} ...`);
    const checkpointHandle = await stack.torpor.startCheckpoint({ ...target, workload: sampleWorkload(sample) });
    const checkpoint = await watchProgress(stack.torpor, checkpointHandle);
    const before = await readSampleStatus(sample.statusFile);

    // The app listens on HTTP from its first second, as model servers do: the restored process is
    // ready once it answers /health on the port the checkpointed one listened on.
    console.log(`restoring it (ready when http://127.0.0.1:${before.port}/health answers) ...`);
    const restoreHandle = await stack.torpor.startRestore({ ...target, readiness: sampleHealthProbe(before.port) });
    const restore = await watchProgress(stack.torpor, restoreHandle);
    restoredPid = restore.pid;
    const firstAfter = await readSampleStatus(sample.statusFile);
    await sleep(1000);
    const after = await readSampleStatus(sample.statusFile);
    const answer = await fetchSampleState(before.port);

    const link = (h: { workflowId: string; firstExecutionRunId: string }) =>
      workflowUiUrl(stack.uiUrl, stack.namespace, h.workflowId, h.firstExecutionRunId);
    printReport({
      checkpoint,
      restore,
      before,
      firstAfter,
      after,
      answer,
      links: [
        ['checkpoint', link(checkpointHandle)],
        ['restore', link(restoreHandle)],
      ],
    });
    if (process.stdin.isTTY && !process.env.CI) {
      console.log(`\nThe Temporal UI stays up at ${stack.uiUrl} until you press Ctrl+C.`);
      await new Promise((resolve) => process.once('SIGINT', resolve));
    }
  } finally {
    if (restoredPid !== undefined) stopProcessGroup(restoredPid);
    await stack.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? `${err.name}: ${err.message}` : err);
  process.exit(1);
});
