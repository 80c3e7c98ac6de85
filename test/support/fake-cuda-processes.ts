import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { processTree, readEnviron } from '../../activities/node/proc/identity.js';
import type { GpuNodeInfo } from '../../contract/gpu-types.js';
import { libcudaGpuNode } from './fake-gpu-node.js';

const SOURCE = fileURLToPath(new URL('./fake-libcuda.c', import.meta.url));

/** A launcher without CUDA state and two CUDA processes (marked FAKE_CUDA=1): the app and a second rank. */
export const FAKE_CUDA_LAUNCH =
  'FAKE_CUDA=1 python3 /app/app.py </dev/null & FAKE_CUDA=1 python3 -c "import time; time.sleep(1e6)" </dev/null & wait';

/**
 * The driver calls and logged steps of a container checkpoint whose GPU group is `a` and `b`: lock
 * all, checkpoint all, dump, commit, then the thaw (restore all, unlock all).
 */
export function containerCheckpointCalls(a: number | string, b: number | string): string[] {
  return [
    `lock ${a}`,
    `lock ${b}`,
    `checkpoint ${a}`,
    `checkpoint ${b}`,
    'dumpContainer',
    'commitCheckpoint',
    `restore ${a}`,
    `restore ${b}`,
    `unlock ${a}`,
    `unlock ${b}`,
  ];
}

/**
 * The fake libcuda for tests of GPU process groups in containers, built into a directory that is
 * also its state directory (FAKE_LIBCUDA_DIR). Which processes are CUDA processes their environment
 * says (FAKE_CUDA=1; CRIU restores it with them), and the node steps a test cares about are logged
 * into the driver's own calls.log, so one ordered list shows driver calls and steps together.
 */
export class FakeCudaDriver {
  private constructor(
    readonly dir: string,
    readonly library: string,
  ) {}

  static async build(prefix: string): Promise<FakeCudaDriver> {
    const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
    const library = path.join(dir, 'libfakecuda.so');
    execFileSync('cc', ['-shared', '-fPIC', '-o', library, SOURCE]);
    process.env.FAKE_LIBCUDA_DIR = dir;
    return new FakeCudaDriver(dir, library);
  }

  /** The agent's GPU dependencies: this driver, `gpus` as nvidia-smi's inventory, the PIDs it has state for. */
  gpuNode(gpus: GpuNodeInfo) {
    const tracked = () =>
      readdirSync(this.dir)
        .filter((f) => /^\d+$/.test(f))
        .map(Number);
    return libcudaGpuNode(this.library, gpus, tracked);
  }

  /** The processes of `root`'s tree that the test made CUDA processes. */
  async cudaProcesses(root: number): Promise<number[]> {
    const marked: number[] = [];
    for (const pid of await processTree(root)) {
      const env = await readEnviron(pid).catch((): Record<string, string> => ({}));
      if (env.FAKE_CUDA === '1') marked.push(pid);
    }
    return marked;
  }

  /** The driver's state file of each pid: 0 running, 2 checkpointed (what a CRIU restore of a CUDA process yields). */
  async mark(pids: number[], state: 0 | 2): Promise<void> {
    for (const pid of pids) await writeFile(path.join(this.dir, String(pid)), `${state}\n`);
  }

  /**
   * Logs `steps` into calls.log as they start; after a restore into a placeholder, marks the
   * restored tree's CUDA processes checkpointed, as the real driver finds them after CRIU.
   */
  logSteps(steps: string[]): ActivityInterceptorsFactory {
    return (ctx) => ({
      inbound: {
        execute: async (input, next) => {
          const step = ctx.info.activityType;
          if (steps.includes(step)) await appendFile(path.join(this.dir, 'calls.log'), `${step}\n`);
          const result = await next(input);
          if (step === 'restoreIntoPlaceholder') await this.mark(await this.cudaProcesses((result as { hostPid: number }).hostPid), 2);
          return result;
        },
      },
    });
  }

  /** The driver's calls and the logged steps, in order. */
  async calls(): Promise<string[]> {
    return (await readFile(path.join(this.dir, 'calls.log'), 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);
  }
}
