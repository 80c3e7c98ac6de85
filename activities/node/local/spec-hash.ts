import { createHash } from 'node:crypto';
import { access, constants, lstat, open, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { torporFailure } from '../../../contract/failures.js';
import type { GpuNodeInfo } from '../../../contract/gpu-types.js';
import { specHash } from '../../../contract/spec-hash.js';
import type { SpecHashInput, SpecHashInputs, SpecHashResult } from '../../../contract/types.js';
import type { NodeAgentConfig } from '../agent-config.js';
import { criuVersion } from '../criu/runner.js';
import { queryGpus as realQueryGpus } from '../gpu/gpu-info.js';
import { byteHeartbeat } from '../heartbeat.js';

/** Kernel and device trees: a "regular file" there (/proc/kcore) is no program or script, and reading it as root is an oracle. */
const PSEUDO_ROOTS = ['/proc', '/sys', '/dev'];

async function isRegularFile(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** The real path of `p` when that is a regular file outside the kernel's trees; otherwise null (it is not hashed). */
async function hashableFile(p: string): Promise<string | null> {
  const real = await realpath(p).catch(() => null);
  if (real === null || PSEUDO_ROOTS.some((root) => real === root || real.startsWith(`${root}/`))) return null;
  return (await lstat(real).then(
    (s) => s.isFile(),
    () => false,
  ))
    ? real
    : null;
}

/** sha256 of a regular file opened without following a link (it was resolved just before). */
async function sha256Regular(file: string, onBytes: (n: number) => void): Promise<string> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    if (!(await handle.stat()).isFile()) throw torporFailure('WorkloadStartFailed', `${file} is no longer a regular file`);
    const hash = createHash('sha256');
    for await (const chunk of handle.createReadStream({ highWaterMark: 4 << 20, autoClose: false }) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      onBytes(chunk.length);
    }
    return hash.digest('hex');
  } finally {
    await handle.close();
  }
}

/** Where `program` would be found when started from `cwd` with `searchPath`, symlinks followed; null if nowhere. */
export async function resolveProgram(program: string, cwd: string, searchPath: string): Promise<string | null> {
  const candidates = program.includes('/')
    ? [path.resolve(cwd, program)]
    : searchPath
        .split(':')
        .filter((dir) => dir !== '')
        .map((dir) => path.resolve(cwd, dir, program));
  for (const candidate of candidates) {
    if (!(await isRegularFile(candidate))) continue;
    if (
      await access(candidate, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return hashableFile(candidate);
  }
  return null;
}

/** The files the command names: its program, then every argument that is a regular file (relative to `cwd`). */
export async function commandFiles(command: readonly string[], cwd: string, searchPath: string): Promise<string[]> {
  const [program, ...args] = command;
  const resolved = await resolveProgram(program as string, cwd, searchPath);
  if (resolved === null) {
    throw torporFailure(
      'WorkloadStartFailed',
      `Cannot derive the spec hash: ${program} is not an executable file on PATH or relative to ${cwd}`,
    );
  }
  const files = [resolved];
  for (const arg of args) {
    const real = await hashableFile(path.resolve(cwd, arg));
    if (real !== null) files.push(real);
  }
  return [...new Set(files)];
}

/** What a spec-hash result shows for each environment value that counted. */
export const REDACTED = '<redacted>';

/** The `deriveSpecHash` activity: reads the files, GPUs and CRIU version that the hash covers (contract/spec-hash.ts). */
export function specHashActivities(config: NodeAgentConfig, queryGpus: () => Promise<GpuNodeInfo> = realQueryGpus) {
  return {
    async deriveSpecHash(input: SpecHashInput): Promise<SpecHashResult> {
      const { workload } = input;
      const cwd = workload.cwd ?? process.cwd();
      const searchPath = workload.env.PATH ?? process.env.PATH ?? '';
      const beat = byteHeartbeat('hashing');
      const files = [];
      for (const file of await commandFiles(workload.command, cwd, searchPath)) {
        files.push({ path: file, sha256: await sha256Regular(file, beat.add) });
      }
      const env = Object.fromEntries(Object.entries(workload.env).filter(([name]) => input.hashEnv?.includes(name) ?? true));
      const gpus = await queryGpus();
      const inputs: SpecHashInputs = {
        formatVersion: 1,
        name: input.name,
        runtime: input.runtime,
        imageDigest: null,
        files,
        command: workload.command,
        cwd: workload.cwd ?? null,
        env,
        gpu: { models: gpus.gpus.map((g) => g.name), driverVersion: gpus.driverVersion },
        criuVersion: await criuVersion(config.criuPath),
      };
      // Values may be secrets and the result lands in workflow history: the names only.
      const named = Object.fromEntries(Object.keys(env).map((name) => [name, REDACTED]));
      return { hash: specHash(inputs), inputs: { ...inputs, env: named } };
    },
  };
}
