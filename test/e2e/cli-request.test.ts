import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SAMPLE_APP } from '../../sample-app/workload.js';
import { exists, killCheckpointProcesses } from '../support/leftovers.js';
import { startTorpor, type TorporHarness } from '../support/torpor-harness.js';

const CLI = fileURLToPath(new URL('../../cli/torpor.mjs', import.meta.url));
const PROBE = fileURLToPath(new URL('../../sample-app/probe.py', import.meta.url));

// biome-ignore lint/suspicious/noExplicitAny: JSON documents printed by the CLI, asserted field by field
type Json = any;

describe('torpor checkpoint/restore --request: a whole request from a JSON file or stdin (real Temporal, real CRIU)', () => {
  let h: TorporHarness;
  let dir: string;
  const hash = `cli-req-${randomBytes(3).toString('hex')}`;

  async function torpor(args: string[], input?: string): Promise<{ code: number; json: Json; stderr: string }> {
    const run = await execa(process.execPath, [CLI, '--address', inject('temporalAddress'), '--json', ...args], {
      reject: false,
      cwd: dir,
      ...(input === undefined ? {} : { input }),
    });
    return { code: run.exitCode ?? -1, json: run.stdout.trim().startsWith('{') ? JSON.parse(run.stdout) : null, stderr: run.stderr };
  }

  async function file(name: string, body: string): Promise<string> {
    await writeFile(path.join(dir, name), body);
    return path.join(dir, name);
  }

  beforeAll(async () => {
    h = await startTorpor();
    dir = await mkdtemp(path.join(os.tmpdir(), 'torpor-cli-request-'));
    await copyFile(SAMPLE_APP, path.join(dir, 'app.py'));
  });

  afterAll(async () => {
    await killCheckpointProcesses(hash);
    await h.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('rejects a file that is not JSON, a request the contract rejects, and --request with the flags it replaces (exit 2)', async () => {
    const notJson = await torpor(['checkpoint', '--request', await file('bad.json', '{"hash": ')]);
    expect(notJson.code).toBe(2);
    expect(notJson.json.error).toMatchObject({ type: 'Usage', message: expect.stringMatching(/bad\.json is not JSON/) });

    const missing = await torpor(['restore', '--request', path.join(dir, 'nowhere.json')]);
    expect(missing.json.error).toMatchObject({ type: 'Usage', exitCode: 2, message: expect.stringMatching(/cannot read the request/) });

    const invalid = { hash: 'Not A Hash', runtime: 'kubernetes', workload: { command: ['python3'] } };
    const rejected = await torpor(['checkpoint', '--request', '-'], JSON.stringify(invalid));
    expect(rejected.code).toBe(2);
    expect(rejected.json.error.type).toBe('InvalidSpec');
    expect(rejected.json.error.message).toMatch(/hash must match/);

    const both = await torpor(['checkpoint', '--request', '-', '--name', 'x'], '{}');
    expect(both.json.error).toMatchObject({
      type: 'Usage',
      exitCode: 2,
      message: expect.stringMatching(/cannot be used with option '--name/),
    });
    const withCommand = await torpor(['restore', '--request', '-', hash], '{}');
    expect(withCommand.json.error).toMatchObject({ type: 'Usage', exitCode: 2 });
  });

  it('checkpoints a local-runtime request from a file (node from --node) and restores one from stdin', async () => {
    const statusFile = path.join(dir, 'status.json');
    const workload = {
      command: ['python3', '-u', 'app.py'],
      cwd: dir,
      env: { SAMPLE_TABLE_MB: '16', SAMPLE_INIT_SECONDS: '1', SAMPLE_STATUS_FILE: statusFile },
    };
    const request = await file('checkpoint.json', JSON.stringify({ hash, runtime: 'local', workload }));
    const checkpoint = await torpor(['--node', h.node, 'checkpoint', '--request', request]);
    expect(checkpoint.code, checkpoint.stderr).toBe(0);
    expect(checkpoint.json).toMatchObject({ workflowId: `checkpoint/${hash}`, result: { outcome: 'created', hash, node: h.node } });
    expect(await exists(path.join(h.storage, hash, 'checkpoint.done'))).toBe(true);

    const restoreRequest = {
      hash,
      node: h.node,
      runtime: 'local',
      restoreId: 'q1',
      readiness: { kind: 'exec', command: ['python3', PROBE, statusFile] },
    };
    const restore = await torpor(['restore', '--request', '-'], JSON.stringify(restoreRequest));
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.json).toMatchObject({ workflowId: `restore/${hash}/q1`, result: { hash, restoreId: 'q1', node: h.node } });
    process.kill(-restore.json.result.pid, 'SIGKILL');
  });
});
