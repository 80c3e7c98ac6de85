import { access, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { torporFailure } from '../../../contract/failures.js';

/** One line of /proc/PID/cgroup: a hierarchy's controllers ([] for cgroup v2) and the task's path in it. */
export interface CgroupMembership {
  controllers: string[];
  path: string;
}

/** A cgroup filesystem mounted on the agent's host (from /proc/self/mountinfo). */
export interface CgroupMount {
  mountPoint: string;
  /** The path inside the hierarchy that is mounted there (usually /). */
  root: string;
  version: 1 | 2;
  controllers: string[];
}

/** A directory of a cgroup hierarchy that holds a task, as the agent reaches it. */
export interface CgroupDir {
  version: 1 | 2;
  mountPoint: string;
  dir: string;
}

export function parseProcCgroup(text: string): CgroupMembership[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [, controllers = '', ...rest] = line.split(':');
      return { controllers: controllers === '' ? [] : controllers.split(','), path: rest.join(':') };
    });
}

export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fields = left.split(' ');
    const [fsType, , superOptions = ''] = right.split(' ');
    const root = fields[3] ?? '/';
    const mountPoint = fields[4] ?? '';
    if (fsType === 'cgroup2') mounts.push({ mountPoint, root, version: 2, controllers: [] });
    if (fsType === 'cgroup') {
      const controllers = superOptions
        .split(',')
        .filter((o) => o !== 'rw' && o !== 'ro' && !o.startsWith('release_agent=') && o !== 'clone_children');
      mounts.push({ mountPoint, root, version: 1, controllers });
    }
  }
  return mounts;
}

/** The host's mount of the hierarchy one line of /proc/PID/cgroup names, if it has one. */
export function mountOf(member: CgroupMembership, mounts: CgroupMount[]): CgroupMount | undefined {
  return member.controllers.length === 0
    ? mounts.find((m) => m.version === 2)
    : mounts.find((m) => m.version === 1 && member.controllers.every((c) => m.controllers.includes(c)));
}

/**
 * Where the task's cgroups are on this host: for each hierarchy it belongs to, the directory under
 * the host's mount of that hierarchy. Hierarchies the host has not mounted are left out.
 */
export function cgroupDirs(membership: CgroupMembership[], mounts: CgroupMount[]): CgroupDir[] {
  const dirs: CgroupDir[] = [];
  for (const member of membership) {
    const mount = mountOf(member, mounts);
    if (!mount) continue;
    const rel = path.posix.relative(mount.root, member.path);
    if (rel.startsWith('..')) continue;
    dirs.push({ version: mount.version, mountPoint: mount.mountPoint, dir: path.posix.join(mount.mountPoint, rel) });
  }
  return dirs;
}

/** How to freeze one cgroup: v1's freezer.state, or v2's cgroup.freeze (and cgroup.events to see it done). */
function freezeFiles(dirs: CgroupDir[]): { state: string; frozen: string; thawed: string; done: (text: string) => boolean }[] {
  const v1 = dirs.filter((d) => d.version === 1).map((d) => path.join(d.dir, 'freezer.state'));
  const v2 = dirs.filter((d) => d.version === 2).map((d) => path.join(d.dir, 'cgroup.freeze'));
  return [
    ...v1.map((state) => ({ state, frozen: 'FROZEN', thawed: 'THAWED', done: (t: string) => t.trim() === 'FROZEN' })),
    ...v2.map((state) => ({ state, frozen: '1', thawed: '0', done: (t: string) => /^frozen 1$/m.test(t) })),
  ];
}

const FREEZE_TIMEOUT_MS = 10_000;

/**
 * Runs `work` with every task of the cgroup frozen (cgroup v1 freezer, or v2 cgroup.freeze), thawed
 * after whatever happens: the agent then works in the placeholder's files as root while nothing in
 * it can swap a checked directory for a link. Refused when the agent itself is in that cgroup.
 */
export async function withCgroupFrozen<T>(dirs: CgroupDir[], what: string, work: () => Promise<T>): Promise<T> {
  const existing = await Promise.all(
    freezeFiles(dirs).map(async (f) =>
      (await access(f.state).then(
        () => true,
        () => false,
      ))
        ? f
        : null,
    ),
  );
  const freezer = existing.find((f) => f !== null);
  if (!freezer) throw torporFailure('TargetNotAllowed', `${what} has no cgroup freezer the agent can use`);
  const procs = await readFile(path.join(path.dirname(freezer.state), 'cgroup.procs'), 'utf8');
  if (procs.split('\n').includes(String(process.pid))) {
    throw torporFailure('TargetNotAllowed', `${what} shares the node agent's cgroup; it cannot be frozen`);
  }
  await writeFile(freezer.state, freezer.frozen);
  try {
    const eventsFile = freezer.frozen === '1' ? path.join(path.dirname(freezer.state), 'cgroup.events') : freezer.state;
    const deadline = Date.now() + FREEZE_TIMEOUT_MS;
    while (!freezer.done(await readFile(eventsFile, 'utf8'))) {
      if (Date.now() > deadline) throw torporFailure('RestoreFailed', `${what} did not freeze within ${FREEZE_TIMEOUT_MS} ms`);
      await sleep(10);
      // v1 leaves a task caught mid-fork in FREEZING; writing FROZEN again retries it (cgroup-v1/freezer-subsystem).
      await writeFile(freezer.state, freezer.frozen);
    }
    return await work();
  } finally {
    await writeFile(freezer.state, freezer.thawed);
  }
}
