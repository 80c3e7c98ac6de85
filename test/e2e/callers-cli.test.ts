import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SAMPLE_APP } from '../../sample-app/workload.js';
import { exists, killCheckpointProcesses, processesOfCheckpoint } from '../support/leftovers.js';
import { startTorpor, type TorporHarness } from '../support/torpor-harness.js';

const CLI = fileURLToPath(new URL('../../cli/torpor.mjs', import.meta.url));
const PROBE = fileURLToPath(new URL('../../sample-app/probe.py', import.meta.url));

// biome-ignore lint/suspicious/noExplicitAny: JSON documents printed by the CLI, asserted field by field
type Json = any;

describe('the torpor CLI against the local runtime (real Temporal, real CRIU; --json output and exit codes)', () => {
  let h: TorporHarness;
  let appDir: string;
  let statusFile: string;
  const name = `cli-${randomBytes(3).toString('hex')}`;
  const hashes = new Set<string>();
  let hash: string;

  /** Runs the CLI as a person or a script would: a separate process, talking to Temporal only. */
  async function torpor(...args: string[]): Promise<{ code: number; json: Json; stdout: string; stderr: string }> {
    const run = await execa(process.execPath, [CLI, '--address', inject('temporalAddress'), '--node', h.node, ...args], {
      reject: false,
      cwd: appDir,
      env: { TEMPORAL_UI_URL: 'http://ui.test:8233' },
    });
    const json = args.includes('--json') && run.stdout.trim().startsWith('{') ? JSON.parse(run.stdout) : null;
    return { code: run.exitCode ?? -1, json, stdout: run.stdout, stderr: run.stderr };
  }

  const workloadArgs = () => [
    '-e',
    'SAMPLE_TABLE_MB=16',
    '-e',
    'SAMPLE_INIT_SECONDS=1',
    '-e',
    `SAMPLE_STATUS_FILE=${statusFile}`,
    '--hash-env',
    'SAMPLE_TABLE_MB,SAMPLE_INIT_SECONDS',
    '--',
    'python3',
    '-u',
    'app.py',
  ];

  beforeAll(async () => {
    h = await startTorpor();
    appDir = await mkdtemp(path.join(os.tmpdir(), 'torpor-cli-'));
    await copyFile(SAMPLE_APP, path.join(appDir, 'app.py'));
    statusFile = path.join(appDir, 'status.json');
  });

  afterAll(async () => {
    await torpor('schedule', 'delete', name);
    for (const x of hashes) await killCheckpointProcesses(x);
    await h.stop();
    await rm(appDir, { recursive: true, force: true });
  });

  it('checkpoint --name derives the spec hash, checkpoints, and prints the result and its Temporal UI link', async () => {
    const run = await torpor('checkpoint', '--json', '--name', name, ...workloadArgs());
    expect(run.code, run.stderr).toBe(0);
    hash = run.json.result.hash;
    hashes.add(hash);
    expect(hash).toMatch(new RegExp(`^${name}-[0-9a-f]{16}$`));
    expect(run.json).toMatchObject({ workflowId: `checkpoint/${hash}`, result: { outcome: 'created', node: h.node } });
    expect(run.json.ui).toBe(`http://ui.test:8233/namespaces/default/workflows/checkpoint%2F${hash}/${run.json.runId}/history`);
    expect(run.stderr).toBe('');
    expect(await exists(path.join(h.storage, hash, 'checkpoint.done'))).toBe(true);
  });

  it('a second checkpoint of the same spec derives the same hash and returns the existing checkpoint', async () => {
    const run = await torpor('checkpoint', '--json', '--name', name, ...workloadArgs());
    expect(run.code, run.stderr).toBe(0);
    expect(run.json.result).toMatchObject({ hash, outcome: 'existing' });
  });

  it('list and inspect show the checkpoint, in JSON and for people (with the UI link)', async () => {
    const list = await torpor('list', '--json');
    expect(list.code, list.stderr).toBe(0);
    expect(list.json.checkpoints).toEqual([expect.objectContaining({ hash, name, node: h.node, usedBy: [] })]);
    expect(list.json.workflowId).toMatch(new RegExp(`^list/${h.node}/`));

    const inspect = await torpor('inspect', hash, '--json');
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(inspect.json.manifest).toMatchObject({ hash, node: h.node, workload: { command: ['python3', '-u', 'app.py'], cwd: appDir } });
    expect(inspect.json.summary).toMatchObject({ hash, name, usedBy: [] });

    const human = await torpor('list');
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(hash);
    expect(human.stdout).toMatch(/ui: http:\/\/ui\.test:8233\/namespaces\/default\/workflows\/list%2F/);
  });

  it('rejects an unknown hash (exit 3), a malformed hash (exit 2), a missing program (exit 1) and a missing --name (exit 2)', async () => {
    const unknown = await torpor('inspect', 'no-such-checkpoint', '--json');
    expect(unknown.code).toBe(3);
    expect(unknown.json.error).toMatchObject({ type: 'CheckpointNotFound', exitCode: 3 });
    expect(unknown.json.error.ui).toMatch(/inspect%2Fno-such-checkpoint/);

    const malformed = await torpor('delete', '../etc', '--json');
    expect(malformed.code).toBe(2);
    expect(malformed.json.error).toMatchObject({ type: 'InvalidSpec', message: expect.stringMatching(/hash must match/) });

    const missing = await torpor('checkpoint', '--json', '--name', `${name}-x`, '--', '/nonexistent/program');
    expect(missing.code).toBe(1);
    expect(missing.json.error.type).toBe('WorkloadStartFailed');

    const noName = await torpor('checkpoint', '--json', '--', 'python3', 'app.py');
    expect(noName.code).toBe(2);
    expect(noName.json.error).toMatchObject({ type: 'Usage', message: expect.stringMatching(/--name/) });

    const noArgs = await torpor('restore', '--json');
    expect(noArgs.code).toBe(2);
    expect(noArgs.json.error.type).toBe('Usage');
  });

  it('restore brings it back; delete is refused with exit 4 while that restore runs, and works once it is gone', async () => {
    const restore = await torpor('restore', hash, '--json', '--restore-id', 'r1', '--', 'python3', PROBE, statusFile);
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.json).toMatchObject({ workflowId: `restore/${hash}/r1`, result: { hash, restoreId: 'r1' } });

    const refused = await torpor('delete', hash, '--json');
    expect(refused.code).toBe(4);
    expect(refused.json.error).toMatchObject({ type: 'CheckpointInUse', message: expect.stringMatching(/restore r1/) });
    expect(await exists(path.join(h.storage, hash, 'checkpoint.done'))).toBe(true);
    expect((await torpor('list', '--json')).json.checkpoints[0].usedBy).toEqual([
      { restoreId: 'r1', pid: restore.json.result.pid, state: 'running' },
    ]);

    process.kill(-restore.json.result.pid, 'SIGKILL');
    for (let i = 0; i < 50 && (await processesOfCheckpoint(hash)).length > 0; i++) await sleep(100);
    const deleted = await torpor('delete', hash, '--json');
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.json.result).toMatchObject({ hash, removed: true });
    expect(deleted.json.result.freedBytes).toBeGreaterThan(16 * 2 ** 20);
    expect(await exists(path.join(h.storage, hash))).toBe(false);
    expect((await torpor('list', '--json')).json.checkpoints).toEqual([]);
    expect((await torpor('delete', hash, '--json')).code).toBe(3);
  });

  it('schedule create | list | trigger | delete, with the interval validated (exit 2) and a missing schedule (exit 3)', async () => {
    const tooShort = await torpor('schedule', 'create', name, '--json', '--every', '10s', ...workloadArgs());
    expect(tooShort.code).toBe(2);
    expect(tooShort.json.error).toMatchObject({ type: 'InvalidSpec', message: expect.stringMatching(/every must be at least 1 minute/) });

    const created = await torpor('schedule', 'create', name, '--json', '--every', '6h', '--keep', '2', ...workloadArgs());
    expect(created.code, created.stderr).toBe(0);
    expect(created.json).toMatchObject({ scheduleId: `refresh/${name}/${h.node}`, everyMs: 6 * 3_600_000, keep: 2, overlap: 'SKIP' });
    expect(created.json.ui).toBe(`http://ui.test:8233/namespaces/default/schedules/${encodeURIComponent(created.json.scheduleId)}`);

    let listed: Json = null;
    for (let i = 0; i < 30 && !listed?.schedules?.length; i++) {
      if (i > 0) await sleep(300);
      listed = (await torpor('schedule', 'list', '--json')).json;
    }
    expect(listed.schedules.map((s: Json) => s.scheduleId)).toEqual([created.json.scheduleId]);

    const triggered = await torpor('schedule', 'trigger', name, '--json');
    expect(triggered.code, triggered.stderr).toBe(0);
    expect(triggered.json).toMatchObject({ skipped: false, result: { outcome: 'created', hash } });
    expect(triggered.json.workflowId).toMatch(new RegExp(`^refresh/${name}/${h.node}-`));
    expect(await exists(path.join(h.storage, hash, 'checkpoint.done'))).toBe(true);

    expect((await torpor('schedule', 'delete', name, '--json')).code).toBe(0);
    const gone = await torpor('schedule', 'trigger', name, '--json');
    expect(gone.code).toBe(3);
    expect(gone.json.error.type).toBe('ScheduleNotFound');
  });

  it('gc removes stale temporary dumps, trash and run files, reports them, and leaves committed checkpoints alone', async () => {
    const old = new Date(Date.now() - 3 * 3_600_000);
    const plant = async (rel: string, dir = true) => {
      const p = path.join(h.storage, rel);
      await mkdir(dir ? p : path.dirname(p), { recursive: true });
      if (!dir) await writeFile(p, 'x');
      await utimes(p, old, old);
    };
    await plant(`.tmp/${hash}.deadbeef/images/pages-1.img`, false);
    await utimes(path.join(h.storage, '.tmp', `${hash}.deadbeef`, 'images'), old, old);
    await utimes(path.join(h.storage, '.tmp', `${hash}.deadbeef`), old, old);
    await plant(`.trash/${hash}.cafebabe`);
    await plant('.runs/gone-workload/workload.log', false);
    await utimes(path.join(h.storage, '.runs', 'gone-workload'), old, old);

    const gc = await torpor('gc', '--json', '--tmp-max-age', '1h', '--run-max-age', '2h');
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.json.workflowId).toBe(`gc/${h.node}`);
    expect([...gc.json.result.removed].sort()).toEqual([`.runs/gone-workload`, `.tmp/${hash}.deadbeef`, `.trash/${hash}.cafebabe`].sort());
    expect(gc.json.result.stoppedWorkloads).toEqual([]);
    expect(await exists(path.join(h.storage, '.tmp', `${hash}.deadbeef`))).toBe(false);
    expect(await exists(path.join(h.storage, hash, 'checkpoint.done'))).toBe(true);

    const again = await torpor('gc', '--json', '--tmp-max-age', '1h', '--run-max-age', '2h');
    expect(again.json.result.removed).toEqual([]);
  });
});
