import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { StoreLayout } from '../store/layout.js';

export function signalPodActivities(layout: StoreLayout) {
  return {
    /**
     * Tells a checkpoint pod its checkpoint is committed (ChReK: the DaemonSet writes the signal
     * file): `<signal dir>/<hash>.done`, the host directory the Job mounts at /checkpoint-signal.
     */
    async signalCheckpointPod({ hash }: { hash: string }): Promise<void> {
      const file = layout.signalFile(hash);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, `${hash}\n`);
    },
  };
}
