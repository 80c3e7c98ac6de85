import type { StoreLayout } from './layout.js';
import { inVerifiedDir } from './safe-files.js';

/**
 * The signal directory is mounted read-write into checkpoint pods, so a pod can plant anything in
 * it: `<hash>.done` is written as a fresh file (a planted link is unlinked, never followed) in a
 * directory whose every component is checked not to be a link. Pods read it: 0644 in a 0755 directory.
 */
export async function writeSignalFile(layout: StoreLayout, hash: string): Promise<void> {
  const file = layout.signalFile(hash);
  await inVerifiedDir(layout.signalsDir(), (dir) => dir.writeNew(file.slice(file.lastIndexOf('/') + 1), `${hash}\n`, 0o644), {
    mode: 0o755,
  });
}

/** Removes `<hash>.done` (a link as a link). Already gone, or no signal directory, is success. */
export async function removeSignalFile(layout: StoreLayout, hash: string): Promise<void> {
  const file = layout.signalFile(hash);
  await inVerifiedDir(layout.signalsDir(), (dir) => dir.unlink(file.slice(file.lastIndexOf('/') + 1))).catch((err) =>
    (err as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : Promise.reject(err),
  );
}
