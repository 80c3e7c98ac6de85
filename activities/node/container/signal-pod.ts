import type { StoreLayout } from '../store/layout.js';
import { writeSignalFile } from '../store/signal-files.js';

export function signalPodActivities(layout: StoreLayout) {
  return {
    /**
     * Tells a checkpoint pod its checkpoint is committed (ChReK: the DaemonSet writes the signal
     * file): `<signal dir>/<hash>.done`, the host directory the Job mounts at /checkpoint-signal.
     * The pod can write there too, so nothing it planted is followed (store/signal-files.ts).
     */
    async signalCheckpointPod({ hash }: { hash: string }): Promise<void> {
      await writeSignalFile(layout, hash);
    },
  };
}
