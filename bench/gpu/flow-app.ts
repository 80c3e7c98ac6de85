import { stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { queryComputeApps } from '../../activities/node/gpu/gpu-info.js';
import { type ImageRead, readImageBack } from './bench-host.js';
import type { Generation } from './bench-table.js';

export { dropPageCache, readJson } from './bench-host.js';

/** The benchmark app as the workflow benchmark runs it, from its environment (bench/gpu/device-workflows.sh sets it). */
export interface AppSetup {
  /** The app's directory (world-readable: llm_server.py or dry_run_app.py, bench_http.py). */
  appDir: string;
  script: string;
  python: string;
  /** Where the app writes generation-before/after.json and init.json (writable by the workload's user). */
  outputDir: string;
  httpPort: number;
  /** Passed to the app: the model, the compile caches, the fake driver of a dry run. */
  env: Record<string, string>;
}

/** What the app needs beside the ChReK variables the agent sets. */
const PASSED_ENV = [
  'BENCH_MODEL_DIR',
  'FAKE_LIBCUDA_DIR',
  'TORCHINDUCTOR_CACHE_DIR',
  'TRITON_CACHE_DIR',
  'XDG_CACHE_HOME',
  'TORCHINDUCTOR_COMPILE_THREADS',
  'PYTHONUNBUFFERED',
  'HF_HOME',
  // The GPU machines keep NVLink multicast off in every program (device KINDS.md), ours too.
  'NCCL_NVLS_ENABLE',
  'TORCH_SYMM_MEM_DISABLE_MULTICAST',
  'NVSHMEM_DISABLE_NVLS',
];

export function appSetupFromEnv(env: NodeJS.ProcessEnv = process.env): AppSetup {
  const required = (name: string) => {
    const value = env[name];
    if (!value) throw new Error(`${name} is not set (bench/gpu/device-workflows.sh sets it)`);
    return value;
  };
  const passed = Object.fromEntries(PASSED_ENV.flatMap((k) => (env[k] ? [[k, env[k] as string]] : [])));
  return {
    appDir: required('BENCH_APP_DIR'),
    script: env.BENCH_APP_SCRIPT ?? 'llm_server.py',
    python: env.BENCH_PYTHON ?? 'python3',
    outputDir: required('BENCH_OUTPUT_DIR'),
    httpPort: Number(env.BENCH_HTTP_PORT ?? 18080),
    env: passed,
  };
}

export const step = (message: string) => console.log(`[flow +${(performance.now() / 1000).toFixed(1)}s] ${message}`);

/** Polls for a file the app writes; the benchmark is a program, not an activity, so it may poll. */
export async function waitForFile(file: string, timeoutMs: number, alive: () => Promise<boolean> = async () => true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await stat(file).catch(() => null)) return;
    if (!(await alive())) throw new Error(`the app exited before writing ${file}`);
    if (Date.now() > deadline) throw new Error(`no ${file} within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** GET /generation from the app on this host's loopback. */
export async function fetchGeneration(port: number): Promise<Generation & { phase: string }> {
  const response = await fetch(`http://127.0.0.1:${port}/generation`, { signal: AbortSignal.timeout(10_000) });
  if (!response.ok) throw new Error(`GET /generation answered ${response.status}`);
  return (await response.json()) as Generation & { phase: string };
}

export function sameGeneration(a: Generation, b: Generation): boolean {
  return a.logits_sha256 === b.logits_sha256 && a.weights_checksum === b.weights_checksum && a.tokens.join() === b.tokens.join();
}

/** Whether a process of that PID exists (signal 0). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops a process tree the benchmark restored (it leads its own session). */
export function stopTree(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
      return;
    } catch {
      // not a group leader, or already gone
    }
  }
}

/** The GPUs `pid` holds memory on, as nvidia-smi sees them (after a restore: where it landed). */
export async function gpusOfProcess(pid: number): Promise<string[]> {
  return (await queryComputeApps()).filter((app) => app.pid === pid).map((app) => app.gpuUuid);
}

/** BENCH_IMAGE_READ=0 skips it; null where it could not run (no storage root, no pages image, page cache kept). */
export async function imageReadBack(hash: string, files: Array<{ path: string }>): Promise<ImageRead | null | undefined> {
  if (process.env.BENCH_IMAGE_READ === '0') return undefined;
  const root = process.env.TORPOR_STORAGE_ROOT;
  if (!root) return null;
  step('pages image read back from a cold page cache');
  return readImageBack(
    path.join(root, hash),
    files.map((f) => f.path),
  );
}
