import { access, constants, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { torporFailure } from '../../../contract/failures.js';
import type { GpuNodeInfo } from '../../../contract/gpu-types.js';
import { specHash } from '../../../contract/spec-hash.js';
import type { SpecHashInput, SpecHashInputs, SpecHashResult } from '../../../contract/types.js';
import type { NodeAgentConfig } from '../agent-config.js';
import { criuVersion } from '../criu/runner.js';
import { queryGpus as realQueryGpus } from '../gpu/gpu-info.js';
import { byteHeartbeat } from '../heartbeat.js';
import { sha256File } from '../store/file-digests.js';

async function isRegularFile(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isFile(),
    () => false,
  );
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
      return realpath(candidate);
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
    const candidate = path.resolve(cwd, arg);
    if (await isRegularFile(candidate)) files.push(await realpath(candidate));
  }
  return [...new Set(files)];
}

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
        files.push({ path: file, sha256: await sha256File(file, beat.add) });
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
      return { hash: specHash(inputs), inputs };
    },
  };
}
