import { pathExists } from '../store/file-digests.js';
import { bindSource, type OciMount } from './placeholder-mounts.js';
import { packDirectory, unpackIntoDirectory } from './rootfs-diff.js';

/**
 * /dev/shm of a Kubernetes container is a bind mount of its pod's shm (a tmpfs on the host), so it
 * is an external mount CRIU does not capture; its files go into the checkpoint beside the images
 * and are put into the placeholder's /dev/shm before the restore, where the app finds them again.
 */
export const DEV_SHM = '/dev/shm';

export async function captureDevShm(sourceMounts: OciMount[], tarFile: string): Promise<void> {
  const shm = bindSource(sourceMounts, DEV_SHM);
  if (shm) await packDirectory(shm, tarFile);
}

export async function replayDevShm(tarFile: string, placeholderMounts: OciMount[]): Promise<void> {
  const shm = bindSource(placeholderMounts, DEV_SHM);
  if (shm && (await pathExists(tarFile))) await unpackIntoDirectory(tarFile, shm);
}
