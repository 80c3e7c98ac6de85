import { copyFile, mkdir, readdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { RealNodeLayout } from './kube-real-config.js';

const CGROUP_ROOT = '/sys/fs/cgroup';
/**
 * Host paths the kubelet and CNI write whatever their configuration says: the kubelet's
 * device-plugin directory and its /var/log/containers links, CNI's result cache, the sandboxes'
 * network namespaces. What a node added there is removed when it stops.
 */
const HOST_DIRS = ['/var/lib/kubelet', '/var/lib/cni', '/var/log/containers', '/var/log/pods'];
const HOST_LISTINGS = ['/var/run/netns', '/var/lib/cni/results', '/var/log/containers'];
/** Host sysctls the kubelet sets to its own defaults (protectKernelDefaults off): put back when the node stops. */
const KUBELET_SYSCTLS = ['/proc/sys/vm/overcommit_memory', '/proc/sys/kernel/panic', '/proc/sys/kernel/panic_on_oops'];

export interface HostSnapshot {
  dirs: Set<string>;
  entries: Map<string, Set<string>>;
  sysctls: Map<string, string>;
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

export async function hostSnapshot(): Promise<HostSnapshot> {
  const dirs = new Set<string>();
  for (const d of HOST_DIRS) if (await exists(d)) dirs.add(d);
  const entries = new Map<string, Set<string>>();
  for (const d of HOST_LISTINGS) entries.set(d, new Set(await readdir(d).catch(() => [] as string[])));
  const sysctls = new Map<string, string>();
  for (const p of KUBELET_SYSCTLS) {
    const value = await readFile(p, 'utf8').catch(() => null);
    if (value !== null) sysctls.set(p, value);
  }
  return { dirs, entries, sysctls };
}

/**
 * The pods' cgroup parent in every hierarchy (the v1 ones and the hybrid host's `unified`, where
 * the kubelet makes it too): the kubelet refuses a cgroupRoot that does not exist.
 */
export async function cgroupDirs(root: string): Promise<string[]> {
  const hierarchies = await readdir(CGROUP_ROOT).catch(() => [] as string[]);
  return hierarchies.map((h) => path.join(CGROUP_ROOT, h, root));
}

async function removeCgroupTree(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) if (e.isDirectory()) await removeCgroupTree(path.join(dir, e.name));
  await rmdir(dir).catch(() => undefined);
}

/** Unmounts everything below `dir`, deepest first (pod volumes, overlay rootfs, sandbox /dev/shm). */
async function unmountBelow(dir: string): Promise<void> {
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await execa('umount', ['-l', m], { reject: false });
}

/** Removes what appeared in the host paths since `before`: new entries first, then directories that were not there. */
async function removeHostAdditions(before: HostSnapshot): Promise<void> {
  for (const [dir, had] of before.entries) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      // Other tests make network namespaces too; the CRI plugin's are named cni-*.
      if (had.has(name) || (dir === '/var/run/netns' && !name.startsWith('cni-'))) continue;
      const entry = path.join(dir, name);
      if (dir === '/var/run/netns') await execa('umount', [entry], { reject: false });
      await rm(entry, { recursive: true, force: true });
    }
  }
  for (const dir of HOST_DIRS.filter((d) => !before.dirs.has(d)).reverse()) await rm(dir, { recursive: true, force: true });
}

/** Keeps the daemons' logs (a failed test's reader needs them), then removes everything the node made. */
export async function removeLeftovers(l: RealNodeLayout, before: HostSnapshot): Promise<void> {
  await removeHostAdditions(before);
  for (const [p, value] of before.sysctls) await writeFile(p, value).catch(() => undefined);
  await execa('ip', ['link', 'del', l.bridge], { reject: false });
  await unmountBelow(l.dir);
  const logs = path.resolve('.torpor/test/real-node-logs');
  await mkdir(logs, { recursive: true });
  for (const f of (await readdir(l.dir).catch(() => [] as string[])).filter((n) => n.endsWith('.log'))) {
    await copyFile(path.join(l.dir, f), path.join(logs, f)).catch(() => undefined);
  }
  for (const d of await cgroupDirs(l.cgroupRoot)) await removeCgroupTree(d);
  await rm(l.dir, { recursive: true, force: true }).catch(() => undefined);
}
