import { mkdir, readdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type FailureType, torporFailure } from '../../../contract/failures.js';
import { HASH_PATTERN } from '../../../contract/spec.js';
import { type CgroupMembership, type CgroupMount, mountOf, parseCgroupMounts, parseProcCgroup } from '../container/cgroups.js';

/**
 * Each local workload, and each restored copy, lives in a cgroup of its own under
 * `/torpor-workloads`, next to the root of every hierarchy where the agent itself is not at the
 * root: in Kubernetes the agent's cgroups are its container's, and runc kills every process of
 * those when the DaemonSet rolls. The cgroup is also what stop kills, so a forked, detached child
 * cannot outlive its workload.
 */
export const WORKLOADS_CGROUP = 'torpor-workloads';

/** How long the processes of a cgroup may take to go after SIGKILL; longer means one is stuck in the kernel (D state). */
const KILL_WAIT_MS = 10_000;

/** An empty workload cgroup older than this is left over (its process exited on its own); a new one is entered within milliseconds. */
const LEFTOVER_AGE_MS = 60_000;

export function workloadCgroupName(hash: string): string {
  return checkPart(hash);
}

/** A restored copy gets its own cgroup: stopping the checkpoint's original must not kill it. */
export function restoredCgroupName(hash: string, restoreId: string): string {
  return `${checkPart(hash)}.${checkPart(restoreId)}`;
}

function checkPart(part: string): string {
  if (!HASH_PATTERN.test(part)) throw torporFailure('TargetNotAllowed', `"${part}" cannot name a workload cgroup`);
  return part;
}

/** Only a name the two functions above make: one path component, never `..`. */
function checkName(name: string): string {
  name.split('.').forEach(checkPart);
  if (name.split('.').length > 2) throw torporFailure('TargetNotAllowed', `"${name}" cannot name a workload cgroup`);
  return name;
}

async function hostCgroups(): Promise<{ member: CgroupMembership; mount: CgroupMount | undefined }[]> {
  const membership = parseProcCgroup(await readFile('/proc/self/cgroup', 'utf8'));
  const mounts = parseCgroupMounts(await readFile('/proc/self/mountinfo', 'utf8'));
  return membership.map((member) => ({ member, mount: mountOf(member, mounts) }));
}

/** Mount points of the hierarchies the workload cgroup goes into: those the agent must be left in. */
async function targetMounts(): Promise<string[]> {
  const hierarchies = await hostCgroups();
  const needed = hierarchies.filter(({ member, mount }) => member.path !== '/' && mount !== undefined);
  for (const { member, mount } of needed) {
    if (mount?.root !== '/') {
      throw torporFailure(
        'WorkloadStartFailed',
        `The agent sees only ${mount?.root} of the ${member.controllers.join(',') || 'unified'} cgroup hierarchy, so a local workload cannot leave the agent's cgroup: mount the host's /sys/fs/cgroup into the agent`,
      );
    }
  }
  // An agent at every root still needs one cgroup to stop the workload by.
  const chosen = needed.length > 0 ? needed : hierarchies.filter(({ mount }) => mount?.root === '/').slice(0, 1);
  if (chosen.length === 0) throw torporFailure('WorkloadStartFailed', 'No cgroup hierarchy is mounted where the agent can reach its root');
  return [...new Set(chosen.map(({ mount }) => mount?.mountPoint as string))];
}

/** The directories of cgroup `name` that exist now, in any hierarchy (an agent restarted elsewhere still finds them). */
async function existingDirs(name: string): Promise<string[]> {
  const mountPoints = new Set((await hostCgroups()).flatMap(({ mount }) => (mount?.root === '/' ? [mount.mountPoint] : [])));
  const dirs = [...mountPoints].map((mp) => path.join(mp, WORKLOADS_CGROUP, name));
  const present = await Promise.all(
    dirs.map((d) =>
      stat(d).then(
        () => d,
        () => null,
      ),
    ),
  );
  return present.filter((d) => d !== null);
}

/**
 * A v1 cpuset starts with no CPUs and no memory nodes, and takes no task until it has its parent's.
 * On cgroup v2 (a `cgroup.controllers` file) an empty cpuset already means the parent's, and the
 * root has no cpuset files to copy.
 */
async function inheritCpuset(dir: string): Promise<void> {
  if (
    await stat(path.join(dir, 'cgroup.controllers')).then(
      () => true,
      () => false,
    )
  )
    return;
  for (const file of ['cpuset.cpus', 'cpuset.mems']) {
    const own = await readFile(path.join(dir, file), 'utf8').catch(() => null);
    if (own === null || own.trim() !== '') continue;
    await writeFile(path.join(dir, file), await readFile(path.join(dir, '..', file), 'utf8'));
  }
}

/** Creates cgroup `name` in every hierarchy the agent must be left in; returns its directories. */
export async function createWorkloadCgroup(name: string): Promise<string[]> {
  checkName(name);
  const dirs: string[] = [];
  for (const mountPoint of await targetMounts()) {
    const parent = path.join(mountPoint, WORKLOADS_CGROUP);
    const dir = path.join(parent, name);
    for (const level of [parent, dir]) {
      await mkdir(level).catch((err: NodeJS.ErrnoException) => (err.code === 'EEXIST' ? undefined : Promise.reject(err)));
      await inheritCpuset(level);
    }
    await removeLeftovers(parent, name);
    dirs.push(dir);
  }
  return dirs;
}

/**
 * A workload or restored copy that exits on its own is never stopped, so its empty cgroup stays:
 * each new one removes those. rmdir refuses a cgroup that still holds a process.
 */
async function removeLeftovers(parent: string, keep: string): Promise<void> {
  for (const entry of await readdir(parent, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name === keep) continue;
    const dir = path.join(parent, entry.name);
    const age = Date.now() - ((await stat(dir).catch(() => null))?.ctimeMs ?? Date.now());
    if (age > LEFTOVER_AGE_MS) await rmdir(dir).catch(() => undefined);
  }
}

async function procsOf(dir: string): Promise<number[]> {
  const text = await readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map(Number);
}

/** Moves `pid` into the cgroup in every hierarchy, then checks that it is there. */
export async function enterWorkloadCgroup(dirs: string[], pid: number): Promise<void> {
  for (const dir of dirs) await writeFile(path.join(dir, 'cgroup.procs'), String(pid));
  await assertInWorkloadCgroup(dirs, pid);
}

export async function assertInWorkloadCgroup(dirs: string[], pid: number, failure: FailureType = 'WorkloadStartFailed'): Promise<void> {
  for (const dir of dirs) {
    if (!(await procsOf(dir)).includes(pid)) {
      throw torporFailure(failure, `Process ${pid} is not in its workload cgroup ${dir}`);
    }
  }
}

/**
 * A command prefix that puts itself into the cgroup's directories, then execs the command appended
 * to it (as root: CRIU restores under it, and its restored tree inherits the cgroup).
 */
export function cgroupLauncher(dirs: string[]): string[] {
  const script = 'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 125; shift; done; shift; exec "$@"';
  return ['/bin/sh', '-c', script, 'torpor-cgroup-enter', ...dirs, '--'];
}

/**
 * Stops every process of cgroup `name` (SIGTERM, then SIGKILL after `graceMs`, again until none is
 * left: a process forking meanwhile is caught on a later round) and removes the empty cgroup.
 * Returns whether it held any process; a cgroup that does not exist holds none.
 */
export async function stopWorkloadCgroup(name: string, graceMs = 5000): Promise<boolean> {
  const dirs = await existingDirs(checkName(name));
  const [dir] = dirs;
  if (dir === undefined) return false;
  const held = (await procsOf(dir)).length > 0;
  if (held) {
    signalAll(await procsOf(dir), 'SIGTERM');
    if (!(await emptiesWithin(dir, graceMs, null))) {
      if (!(await emptiesWithin(dir, KILL_WAIT_MS, 'SIGKILL'))) {
        throw torporFailure('ProcessWontExit', `Processes of cgroup ${dir} did not exit within ${KILL_WAIT_MS} ms of SIGKILL`);
      }
    }
  }
  for (const d of dirs) await removeCgroupDir(d);
  return held;
}

/** A cgroup whose last task just exited can refuse rmdir (EBUSY) for a moment while the kernel lets go of it. */
async function removeCgroupDir(dir: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const code = await rmdir(dir).then(
      () => null,
      (err: NodeJS.ErrnoException) => err.code,
    );
    if (code === null || code === 'ENOENT') return;
    if (code !== 'EBUSY' || attempt >= 20) throw torporFailure('ProcessWontExit', `Cannot remove cgroup ${dir}: ${code}`);
    await sleep(50);
  }
}

async function emptiesWithin(dir: string, ms: number, signal: NodeJS.Signals | null): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    const pids = await procsOf(dir);
    if (pids.length === 0) return true;
    if (Date.now() > deadline) return false;
    if (signal) signalAll(pids, signal);
    await sleep(50);
  }
}

function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}
