import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { untilPolling, type WorkerProcess } from '../support/worker-process.js';

const WORKER = fileURLToPath(new URL('../support/fault-worker.ts', import.meta.url));

export type OtherNodeAgent = WorkerProcess;

/**
 * A second node's agent on this machine: its own process, in its own mount namespace where its own
 * store directory is mounted at `storageRoot`, the path every node of a cluster gives its agent
 * (the DaemonSet's host path). Its local store is its own, as a separate node's disk would be; what
 * it shares with the first agent is the object store, the manifest key and Temporal.
 */
export async function startOtherNodeAgent(ownStore: string, storageRoot: string, env: Record<string, string>): Promise<OtherNodeAgent> {
  const script = 'mount --bind "$OWN_STORE" "$TORPOR_STORAGE_ROOT" && exec "$NODE_BIN" --import tsx "$WORKER"';
  const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], {
    env: {
      ...process.env,
      ...env,
      OWN_STORE: ownStore,
      TORPOR_STORAGE_ROOT: storageRoot,
      NODE_BIN: process.execPath,
      WORKER,
      TORPOR_ROLE: 'agent',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return untilPolling(child, "the other node's agent");
}
