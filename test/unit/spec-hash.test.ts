import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandFiles, resolveProgram } from '../../activities/node/local/spec-hash.js';
import { planRetention, workloadNameOf } from '../../contract/retention.js';
import { HASH_PATTERN } from '../../contract/spec.js';
import { canonicalJson, specHash } from '../../contract/spec-hash.js';
import type { CheckpointSummary, SpecHashInputs } from '../../contract/types.js';

const base: SpecHashInputs = {
  formatVersion: 1,
  name: 'llama-8b',
  runtime: 'local',
  imageDigest: null,
  files: [
    { path: '/usr/bin/python3.11', sha256: 'a'.repeat(64) },
    { path: '/srv/app/serve.py', sha256: 'b'.repeat(64) },
  ],
  command: ['python3', 'serve.py', '--port', '8000'],
  cwd: '/srv/app',
  env: { MODEL: 'llama-8b', DTYPE: 'bf16' },
  gpu: { models: ['NVIDIA H100 80GB HBM3', 'NVIDIA A100'], driverVersion: '550.54.15' },
  criuVersion: '4.1.1',
};

/** The same object with every key order reversed, at every level. */
function reversedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversedKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([k, v]) => [k, reversedKeys(v)]),
  );
}

describe('spec hash: derived from content, stable across key order', () => {
  it('is `<name>-<16 hex>` and satisfies HASH_PATTERN', () => {
    const hash = specHash(base);
    expect(hash).toMatch(/^llama-8b-[0-9a-f]{16}$/);
    expect(HASH_PATTERN.test(hash)).toBe(true);
    expect(HASH_PATTERN.test(specHash({ ...base, name: 'a'.repeat(46) }))).toBe(true);
  });

  it('does not change with the order of keys, files or GPU models', () => {
    expect(specHash(reversedKeys(base) as SpecHashInputs)).toBe(specHash(base));
    expect(specHash({ ...base, files: [...base.files].reverse(), gpu: { ...base.gpu, models: [...base.gpu.models].reverse() } })).toBe(
      specHash(base),
    );
    expect(canonicalJson({ b: 1, a: { d: 2, c: [3, { f: 4, e: 5 }] } })).toBe('{"a":{"c":[3,{"e":5,"f":4}],"d":2},"b":1}');
  });

  it('changes with every input: image, files, command order, cwd, env, GPU model, driver, CRIU, runtime, name', () => {
    const variants: Partial<SpecHashInputs>[] = [
      { imageDigest: `sha256:${'c'.repeat(64)}` },
      { files: [{ path: '/srv/app/serve.py', sha256: 'd'.repeat(64) }] },
      { command: ['python3', '--port', '8000', 'serve.py'] },
      { cwd: '/srv/other' },
      { env: { MODEL: 'llama-70b', DTYPE: 'bf16' } },
      { env: { MODEL: 'llama-8b' } },
      { gpu: { models: ['NVIDIA L4'], driverVersion: '550.54.15' } },
      { gpu: { models: base.gpu.models, driverVersion: '560.28.03' } },
      { criuVersion: '4.2' },
      { name: 'llama-8c' },
    ];
    const hashes = new Set([specHash(base), ...variants.map((v) => specHash({ ...base, ...v }))]);
    expect(hashes.size).toBe(variants.length + 1);
  });

  it('refuses a name that cannot prefix a hash', () => {
    expect(() => specHash({ ...base, name: 'Llama' })).toThrow(/not a valid workload name/);
    expect(() => specHash({ ...base, name: 'a'.repeat(47) })).toThrow(/not a valid workload name/);
  });
});

describe('the files a command names (local runtime)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'torpor-spec-'));
    await writeFile(path.join(dir, 'serve.py'), 'print(1)\n');
    await writeFile(path.join(dir, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
    await symlink(path.join(dir, 'run.sh'), path.join(dir, 'run-link'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('finds the program on PATH, follows symlinks, and adds arguments that are files', async () => {
    expect(await resolveProgram('run-link', '/', `/nonexistent:${dir}`)).toBe(path.join(dir, 'run.sh'));
    expect(await resolveProgram('serve.py', dir, dir)).toBeNull(); // not executable
    expect(await commandFiles(['./run.sh', '-u', 'serve.py', '--flag', dir], dir, '')).toEqual([
      path.join(dir, 'run.sh'),
      path.join(dir, 'serve.py'),
    ]);
  });

  it('fails with WorkloadStartFailed when the program is nowhere', async () => {
    await expect(commandFiles(['no-such-program'], dir, dir)).rejects.toMatchObject({ type: 'WorkloadStartFailed' });
  });
});

describe('retention plan', () => {
  const summary = (hash: string, createdAt: string, used = false): CheckpointSummary => ({
    hash,
    node: 'n',
    name: workloadNameOf(hash),
    createdAt,
    totalBytes: 1,
    fileCount: 1,
    command: ['x'],
    gpu: null,
    usedBy: used ? [{ restoreId: 'r1', pid: 42, state: 'running' }] : [],
  });
  const a = summary('web-aaaaaaaaaaaaaaaa', '2025-01-01T00:00:00Z');
  const b = summary('web-bbbbbbbbbbbbbbbb', '2025-01-02T00:00:00Z', true);
  const c = summary('web-cccccccccccccccc', '2025-01-03T00:00:00Z');
  const d = summary('web-dddddddddddddddd', '2025-01-04T00:00:00Z');
  const other = summary('api-eeeeeeeeeeeeeeee', '2024-01-01T00:00:00Z');
  const manual = summary('web-3f2a', '2020-01-01T00:00:00Z');

  it('knows the workload name of spec hashes only', () => {
    expect(workloadNameOf('llama-8b-0123456789abcdef')).toBe('llama-8b');
    expect(workloadNameOf('llama-8b-3f2a')).toBeNull();
    expect(workloadNameOf('0123456789abcdef')).toBeNull();
  });

  it('keeps the newest N of the workload, deletes the rest, never one in use, never another workload or a hand-chosen hash', () => {
    expect(planRetention([a, b, c, d, other, manual], { name: 'web', keep: 2 })).toEqual({
      keep: [d.hash, c.hash],
      remove: [a.hash],
      inUse: [b.hash],
    });
  });

  it('always keeps the protected (current) hash, counting it toward N', () => {
    expect(planRetention([a, c, d], { name: 'web', keep: 1, protect: [a.hash] })).toEqual({
      keep: [a.hash],
      remove: [d.hash, c.hash],
      inUse: [],
    });
    expect(planRetention([a, c, d], { name: 'web', keep: 2, protect: [a.hash] }).keep).toEqual([a.hash, d.hash]);
  });
});
