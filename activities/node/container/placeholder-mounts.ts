import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CgroupDir } from './cgroups.js';

/** A mount of an OCI runtime spec (a bundle's config.json). */
export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

/**
 * The key runc gives CRIU for masked file paths (/proc/kcore and the like are bind mounts of
 * /dev/null): on restore it maps back to the host's /dev/null.
 */
const MASKED_PATH_KEY = '/dev/null';

function isBind(mount: OciMount): boolean {
  return mount.type === 'bind' || (mount.options ?? []).some((o) => o === 'bind' || o === 'rbind');
}

/**
 * What each external mount of a dumped container becomes when its process tree is restored into
 * the placeholder: runc dumps a bind mount under its destination as key, so it maps to the
 * placeholder's source for the same destination (its volumes, /dev/shm, service-account token).
 * On a cgroup v1 host the container's /sys/fs/cgroup/<hierarchy> mounts are binds of its own
 * cgroups, so they map to the placeholder's.
 */
export function externalMountMap(placeholderMounts: OciMount[], placeholderCgroups: CgroupDir[]): Array<[string, string]> {
  const map = new Map<string, string>([[MASKED_PATH_KEY, MASKED_PATH_KEY]]);
  for (const mount of placeholderMounts) {
    if (isBind(mount) && mount.source) map.set(mount.destination, path.resolve(mount.source));
    if (mount.type === 'cgroup') {
      for (const cgroup of placeholderCgroups.filter((c) => c.version === 1)) {
        map.set(path.posix.join(mount.destination, path.posix.basename(cgroup.mountPoint)), cgroup.dir);
      }
    }
  }
  return [...map];
}

/** The host directory bind-mounted at `destination`, if the container has such a bind mount. */
export function bindSource(mounts: OciMount[], destination: string): string | undefined {
  const mount = mounts.findLast((m) => m.destination === destination && isBind(m) && m.source);
  return mount?.source ? path.resolve(mount.source) : undefined;
}

/** The parts of a bundle's OCI runtime spec (config.json) the agent reads. */
export interface BundleSpec {
  root?: { path: string };
  mounts?: OciMount[];
  annotations?: Record<string, string>;
  process?: { env?: string[]; args?: string[] };
}

export async function readBundleSpec(bundle: string): Promise<BundleSpec> {
  return JSON.parse(await readFile(path.join(bundle, 'config.json'), 'utf8')) as BundleSpec;
}
