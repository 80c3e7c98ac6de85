import { chmod, readdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { CONTROL_TASK_QUEUE } from '../../contract/naming.js';
import type { CheckpointRequest } from '../../contract/spec.js';
import { exists, processesOfCheckpoint, temporaryDumps } from '../support/leftovers.js';
import { testSample } from '../support/sample.js';
import { useTorpor } from '../support/torpor-harness.js';

const { h, hashes } = useTorpor();

function request(env: Record<string, string> = {}, overrides: Partial<CheckpointRequest> = {}): CheckpointRequest {
  const sample = testSample(h.storage, env);
  hashes.push(sample.hash);
  return { hash: sample.hash, node: h.node, runtime: 'local', workload: sample.workload, ...overrides };
}

/** Nothing of a failed checkpoint may remain: no process, no temporary dump, no checkpoint directory. */
async function expectNothingLeft(hash: string) {
  expect(await processesOfCheckpoint(hash)).toEqual([]);
  expect(await temporaryDumps(h.storage)).toEqual([]);
  expect(await exists(path.join(h.storage, hash))).toBe(false);
}

describe('bad requests are refused before anything runs', () => {
  const cases: [string, Partial<CheckpointRequest>, RegExp][] = [
    ['an upper-case hash', { hash: 'ABC' }, /hash must match/],
    ['a hash with path traversal', { hash: '../../etc' }, /hash must match/],
    ['an empty hash', { hash: '' }, /hash must match/],
    ['a 64-character hash', { hash: 'a'.repeat(64) }, /hash must match/],
    ['an unknown runtime', { runtime: 'docker' as 'local' }, /runtime must be "local"/],
    ['a negative ready timeout', { readyTimeoutMs: -5 }, /readyTimeoutMs/],
    ['a node name with a slash', { node: 'a/b' }, /node must be a DNS subdomain/],
  ];
  for (const [name, overrides, message] of cases) {
    it(`rejects ${name} with InvalidSpec, in the client and in the workflow`, async () => {
      const bad = { ...request(), ...overrides };
      await expect(h.torpor.checkpoint(bad)).rejects.toMatchObject({ type: 'InvalidSpec', message: expect.stringMatching(message) });
      // The workflow validates too: a caller that bypasses the typed client gets the same answer.
      const handle = await h.client.workflow.start('checkpoint', {
        taskQueue: CONTROL_TASK_QUEUE,
        workflowId: `raw-${Math.random()}`,
        args: [bad],
      });
      const failure = await handle.result().catch((err: unknown) => (err as WorkflowFailedError).cause);
      expect(failure).toBeInstanceOf(ApplicationFailure);
      expect((failure as ApplicationFailure).type).toBe('InvalidSpec');
      expect((failure as ApplicationFailure).nonRetryable).toBe(true);
    });
  }

  it('rejects an empty command, a relative or escaping working directory and reserved variables', async () => {
    const base = request();
    const workloads = [
      { ...base.workload, command: [] },
      { ...base.workload, cwd: 'relative/dir' },
      { ...base.workload, cwd: '/tmp/../etc' },
      { ...base.workload, env: { DYN_CHECKPOINT_HASH: 'other' } },
    ];
    for (const workload of workloads) {
      await expect(h.torpor.checkpoint({ ...base, workload })).rejects.toMatchObject({ type: 'InvalidSpec' });
    }
    expect(await processesOfCheckpoint(base.hash)).toEqual([]);
  });
});

describe('failures of the workload and of CRIU', () => {
  it('reports a command that does not exist as WorkloadStartFailed', async () => {
    const bad = request();
    bad.workload = { ...bad.workload, command: ['/nonexistent/torpor-binary'] };
    await expect(h.torpor.checkpoint(bad)).rejects.toMatchObject({
      type: 'WorkloadStartFailed',
      message: expect.stringContaining('ENOENT'),
    });
    await expectNothingLeft(bad.hash);
  });

  it('times out an app that never becomes ready, kills it and leaves no files', async () => {
    const bad = request({ SAMPLE_NEVER_READY: '1' }, { readyTimeoutMs: 3000 });
    await expect(h.torpor.checkpoint(bad)).rejects.toMatchObject({ type: 'WorkloadNotReady', message: expect.stringContaining('3000 ms') });
    await expectNothingLeft(bad.hash);
  });

  it('reports an app that exits before it is ready, with its exit code and log tail', async () => {
    const bad = request({ SAMPLE_EXIT_BEFORE_READY: '1' });
    await expect(h.torpor.checkpoint(bad)).rejects.toMatchObject({
      type: 'WorkloadExited',
      message: expect.stringMatching(/code 3[\s\S]*exiting before ready/),
    });
    await expectNothingLeft(bad.hash);
  });

  it('reports an app that exits right after it is ready, before the dump', async () => {
    const bad = request({ SAMPLE_EXIT_AFTER_READY: '1' });
    await expect(h.torpor.checkpoint(bad)).rejects.toMatchObject({ type: 'WorkloadExited' });
    await expectNothingLeft(bad.hash);
  });

  it('surfaces a CRIU dump failure with the lines of its log that explain it, and discards the dump', async () => {
    const socketPath = path.join(os.tmpdir(), `torpor-ext-${process.pid}.sock`);
    const server = net.createServer(() => undefined).listen(socketPath);
    try {
      const bad = request({ SAMPLE_CONNECT_UNIX: socketPath });
      const err = await h.torpor.checkpoint(bad).catch((e: unknown) => e);
      expect(err).toMatchObject({ type: 'DumpFailed', message: expect.stringMatching(/Error \(criu\//) });
      expect((err as Error).message).toMatch(/unix|socket/i);
      await expectNothingLeft(bad.hash);
    } finally {
      server.close();
    }
  });
});

describe('restores that cannot proceed', () => {
  it('refuses to restore a hash that has no checkpoint', async () => {
    await expect(h.torpor.restore({ hash: 'never-checkpointed', node: h.node, runtime: 'local' })).rejects.toMatchObject({
      type: 'CheckpointNotFound',
    });
  });

  it('refuses to restore a checkpoint whose files were tampered with, and restores nothing', async () => {
    const good = request();
    const created = await h.torpor.checkpoint(good);
    const pages = created.manifest.files.find((f) => f.path.startsWith('images/pages-'));
    if (!pages) throw new Error('no pages image');
    const file = path.join(h.storage, good.hash, pages.path);
    await chmod(file, 0o644);
    await writeFile(file, Buffer.alloc(pages.sizeBytes, 0x5a));
    await expect(h.torpor.restore({ hash: good.hash, node: h.node, runtime: 'local' })).rejects.toMatchObject({
      type: 'CheckpointCorrupt',
      message: expect.stringContaining(`${pages.path} has sha256`),
    });
    expect(await processesOfCheckpoint(good.hash)).toEqual([]);
    expect(await readdir(path.join(h.storage, '.restores', good.hash)).catch(() => [])).toEqual([]);
  });

  it('refuses a checkpoint directory without its checkpoint.done marker', async () => {
    const good = request();
    await h.torpor.checkpoint(good);
    const { rm } = await import('node:fs/promises');
    await rm(path.join(h.storage, good.hash, 'checkpoint.done'));
    await expect(h.torpor.restore({ hash: good.hash, node: h.node, runtime: 'local' })).rejects.toMatchObject({
      type: 'CheckpointCorrupt',
      message: expect.stringContaining('never completed'),
    });
  });
});
