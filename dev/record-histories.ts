/**
 * Records the histories the determinism guard replays (test/replay.test.ts): representative runs
 * of each workflow on a fresh local stack, then the kubernetes runtime's from
 * test/kube/kubernetes-workflows.test.ts (a real API server, the node steps faked) and the
 * container, refresh (continued as new while joining) and store workflows' from
 * test/hostile/long-steps.test.ts (real runc and CRIU), which save them when TORPOR_RECORD_HISTORIES=1. Run again (npm run record-histories) when a workflow changes on
 * purpose, behind a patch or a new workflow type, and commit the new files.
 *
 * checkpoint-kubernetes-signal-beside-commit-created, container-restore-verify-while-restoring and
 * restore-kubernetes-verify-while-restoring-ready are copies of what those tests recorded after the
 * patches of their names, kept beside the older recordings of the same names (renamed by hand).
 *
 * checkpoint-kubernetes-unpatched-created and restore-kubernetes-unpatched-ready were recorded once
 * by that test with workflows/ as it was before the KUBERNETES_CONTAINER_STEPS patch (commit
 * 975fe99^); today's code cannot record them again, so this script leaves them alone.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { sampleRestoredProbe, sampleWorkload } from '../sample-app/workload.js';
import { startLocalStack } from './local-stack.js';
import { temporalCliPath } from './temporal-dev-server.js';

const OUT = fileURLToPath(new URL('../test/histories/', import.meta.url));
const WORK = fileURLToPath(new URL('../.torpor/record-histories/', import.meta.url));

/** The CLI writes the canonical JSON form that the SDK's replayer reads. */
async function save(address: string, name: string, workflowId: string): Promise<void> {
  const { stdout } = await execa(temporalCliPath(), [
    'workflow',
    'show',
    '--address',
    address,
    '--workflow-id',
    workflowId,
    '--output',
    'json',
  ]);
  await writeFile(path.join(OUT, `${name}.json`), `${stdout.trim()}\n`);
  console.log(`recorded ${name} (${(JSON.parse(stdout) as { events: unknown[] }).events.length} events)`);
}

async function main(): Promise<void> {
  await rm(WORK, { recursive: true, force: true });
  await mkdir(OUT, { recursive: true });
  const stack = await startLocalStack({ storageRoot: path.join(WORK, 'storage') });
  const { torpor, node } = stack;
  const address = stack.address;
  const statusFile = path.join(WORK, 'status.json');
  const workload = sampleWorkload({ tableMb: 16, initSeconds: 1, statusFile });
  const target = { node, runtime: 'local' as const };
  try {
    const created = await torpor.startCheckpoint({ ...target, hash: 'history-created', workload });
    await created.result();
    await save(address, 'checkpoint-created', created.workflowId);

    const existing = await torpor.startCheckpoint({ ...target, hash: 'history-created', workload });
    await existing.result();
    await save(address, 'checkpoint-existing', existing.workflowId);

    const notReady = await torpor.startCheckpoint({
      ...target,
      hash: 'history-not-ready',
      workload: { ...workload, env: { ...workload.env, SAMPLE_NEVER_READY: '1' } },
      readyTimeoutMs: 2000,
    });
    await notReady.result().catch(() => undefined);
    await save(address, 'checkpoint-not-ready-compensated', notReady.workflowId);

    const restored = await torpor.startRestore({
      ...target,
      hash: 'history-created',
      restoreId: 'r1',
      readiness: sampleRestoredProbe(statusFile),
    });
    const { pid } = await restored.result();
    process.kill(-pid, 'SIGKILL');
    await save(address, 'restore-ready', restored.workflowId);

    const missing = await torpor.startRestore({ ...target, hash: 'history-missing', restoreId: 'r1' });
    await missing.result().catch(() => undefined);
    await save(address, 'restore-not-found', missing.workflowId);
  } finally {
    await stack.stop();
  }
}

/** The kubernetes runtime needs the test control plane that only the tests' set-up builds. */
async function recordKubernetes(): Promise<void> {
  const root = fileURLToPath(new URL('../', import.meta.url));
  await execa('bash', ['scripts/setup.sh'], { cwd: root, env: { TORPOR_SETUP_KUBE: '1' }, stdio: 'inherit' });
  const recording = [
    'test/kube/kubernetes-workflows.test.ts',
    'test/hostile/long-steps.test.ts',
    // checkpoint-in-one-step-created, checkpoint-gpu-in-one-step-created, checkpoint/restore-shared-store-*.
    'test/e2e/visibility.test.ts',
    'test/e2e/gpu-workflow.test.ts',
    'test/shared-store/cross-node.test.ts',
  ];
  await execa('vitest', ['run', ...recording], {
    cwd: root,
    env: { TORPOR_RECORD_HISTORIES: '1' },
    stdio: 'inherit',
    preferLocal: true,
  });
}

main()
  .then(recordKubernetes)
  .catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
