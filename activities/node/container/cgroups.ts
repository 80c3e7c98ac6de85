import path from 'node:path';

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

/**
 * Where the task's cgroups are on this host: for each hierarchy it belongs to, the directory under
 * the host's mount of that hierarchy. Hierarchies the host has not mounted are left out.
 */
export function cgroupDirs(membership: CgroupMembership[], mounts: CgroupMount[]): CgroupDir[] {
  const dirs: CgroupDir[] = [];
  for (const member of membership) {
    const mount =
      member.controllers.length === 0
        ? mounts.find((m) => m.version === 2)
        : mounts.find((m) => m.version === 1 && member.controllers.every((c) => m.controllers.includes(c)));
    if (!mount) continue;
    const rel = path.posix.relative(mount.root, member.path);
    if (rel.startsWith('..')) continue;
    dirs.push({ version: mount.version, mountPoint: mount.mountPoint, dir: path.posix.join(mount.mountPoint, rel) });
  }
  return dirs;
}
