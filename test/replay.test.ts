import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { describe, expect, inject, it } from 'vitest';

const HISTORIES = fileURLToPath(new URL('./histories/', import.meta.url));

async function histories() {
  const files = (await readdir(HISTORIES)).filter((f) => f.endsWith('.json')).sort();
  return Promise.all(
    // The replayer takes the CLI's JSON form as it is.
    files.map(async (f) => ({ name: f, history: JSON.parse(await readFile(path.join(HISTORIES, f), 'utf8')) as unknown })),
  );
}

describe('determinism guard: recorded histories replay against the current workflow code', async () => {
  const recorded = await histories();

  it('has representative histories to replay', () => {
    expect(recorded.map((r) => r.name)).toEqual([
      'checkpoint-created.json',
      'checkpoint-existing.json',
      'checkpoint-gpu-in-one-step-created.json',
      'checkpoint-in-one-step-created.json',
      'checkpoint-kubernetes-created.json',
      'checkpoint-kubernetes-gpu-created.json',
      'checkpoint-kubernetes-placed-created.json',
      'checkpoint-kubernetes-placed-unpatched-created.json',
      'checkpoint-kubernetes-pull-failed-compensated.json',
      'checkpoint-kubernetes-shared-first-existing.json',
      'checkpoint-kubernetes-signal-beside-commit-created.json',
      'checkpoint-kubernetes-unpatched-created.json',
      'checkpoint-not-ready-compensated.json',
      'checkpoint-shared-store-created.json',
      'checkpoint-start-with-look-up-created.json',
      'container-checkpoint-created.json',
      'container-gpu-checkpoint-created.json',
      'container-gpu-restore-restored.json',
      'container-restore-restored.json',
      'container-restore-verify-while-restoring.json',
      'delete-not-found.json',
      'gc-collected.json',
      'inspect-checkpoint.json',
      'list-checkpoints.json',
      'refresh-joining-continued-as-new.json',
      'restore-kubernetes-gpu-ready.json',
      'restore-kubernetes-ready.json',
      'restore-kubernetes-unpatched-ready.json',
      'restore-kubernetes-verify-while-restoring-ready.json',
      'restore-not-found.json',
      'restore-ready.json',
      'restore-shared-store-ready.json',
    ]);
  });

  for (const { name, history } of recorded) {
    it(`replays ${name} without a non-determinism error`, async () => {
      await Worker.runReplayHistory({ workflowBundle: { codePath: inject('workflowBundlePath') } }, history, name);
    });
  }

  it('fails when the workflow code changes incompatibly (the guard is not vacuous)', async () => {
    const bundle = await bundleWorkflowCode({
      workflowsPath: fileURLToPath(new URL('./support/incompatible-workflows.ts', import.meta.url)),
      logger: {
        log: () => undefined,
        trace: () => undefined,
        debug: () => undefined,
        info: () => undefined,
        warn: () => undefined,
        error: () => undefined,
      },
    });
    const created = recorded.find((r) => r.name === 'checkpoint-created.json');
    await expect(Worker.runReplayHistory({ workflowBundle: bundle }, created?.history, 'incompatible')).rejects.toBeInstanceOf(
      DeterminismViolationError,
    );
  });
});
