import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./fault-worker.ts', import.meta.url));

export interface WorkerProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  kill(): Promise<void>;
}

/** Starts fault-worker.ts in its own process and resolves once it polls. */
export async function startWorkerProcess(env: Record<string, string>): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return untilPolling(child, 'worker process');
}

/** Resolves once `child` (a Temporal worker) prints that it polls; fails if it exits before. */
export async function untilPolling(child: ChildProcess, what: string): Promise<WorkerProcess> {
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('polling')) resolve();
    });
    exited.then(() => reject(new Error(`${what} exited before polling: ${out}`)), reject);
  });
  return {
    child,
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
