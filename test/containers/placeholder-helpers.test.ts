import { mkdir, mkdtemp, readFile, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { cgroupDirs, parseCgroupMounts, parseProcCgroup } from '../../activities/node/container/cgroups.js';
import { bindSource, externalMountMap } from '../../activities/node/container/placeholder-mounts.js';
import { checkMarkerPath, writeMarkerInRoot } from '../../activities/node/container/restore-marker.js';

const MOUNTINFO = [
  '30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755',
  '31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw',
  '34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct',
  '35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory',
  '36 30 0:32 /kubepods /sys/fs/cgroup/pids rw,nosuid shared:16 - cgroup cgroup rw,pids',
].join('\n');

describe('placeholder restore helpers', () => {
  it('finds the host directories of a task’s cgroups, v1 and v2, relative to how each hierarchy is mounted', () => {
    const membership = parseProcCgroup(
      '4:memory:/kubepods/pod1/c1\n3:cpu,cpuacct:/kubepods/pod1/c1\n2:pids:/kubepods/pod1/c1\n1:blkio:/x\n0::/kubepods/pod1/c1\n',
    );
    expect(cgroupDirs(membership, parseCgroupMounts(MOUNTINFO))).toEqual([
      { version: 1, mountPoint: '/sys/fs/cgroup/memory', dir: '/sys/fs/cgroup/memory/kubepods/pod1/c1' },
      { version: 1, mountPoint: '/sys/fs/cgroup/cpu,cpuacct', dir: '/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/c1' },
      { version: 1, mountPoint: '/sys/fs/cgroup/pids', dir: '/sys/fs/cgroup/pids/pod1/c1' },
      { version: 2, mountPoint: '/sys/fs/cgroup/unified', dir: '/sys/fs/cgroup/unified/kubepods/pod1/c1' },
    ]);
  });

  it('maps each external mount key to the placeholder’s own source: binds, masked paths, v1 cgroups; not tmpfs or proc', () => {
    const mounts = [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev/shm', type: 'bind', source: '/run/sandboxes/p2/shm', options: ['rbind', 'rw'] },
      { destination: '/data', type: 'none', source: '/var/lib/kubelet/pods/p2/volumes/data', options: ['rbind', 'rw'] },
      { destination: '/scratch', type: 'tmpfs', source: 'tmpfs' },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup' },
    ];
    const map = new Map(externalMountMap(mounts, [{ version: 1, mountPoint: '/sys/fs/cgroup/memory', dir: '/sys/fs/cgroup/memory/p2' }]));
    expect(Object.fromEntries(map)).toEqual({
      '/dev/null': '/dev/null',
      '/dev/shm': '/run/sandboxes/p2/shm',
      '/data': '/var/lib/kubelet/pods/p2/volumes/data',
      '/sys/fs/cgroup/memory': '/sys/fs/cgroup/memory/p2',
    });
    expect(bindSource(mounts, '/dev/shm')).toBe('/run/sandboxes/p2/shm');
    expect(bindSource(mounts, '/scratch')).toBeUndefined();
  });

  it('writes the restore marker inside the container root, and refuses a path through a symlink or out of it', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'torpor-root-'));
    await writeMarkerInRoot(root, '/run/torpor/restored', 'yes');
    expect(await readFile(path.join(root, 'run/torpor/restored'), 'utf8')).toBe('yes');
    await mkdir(path.join(root, 'outside'));
    await symlink(path.join(root, 'outside'), path.join(root, 'tmp'));
    const error = await writeMarkerInRoot(root, '/tmp/dynamo-restored', 'yes').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApplicationFailure);
    expect((error as ApplicationFailure).type).toBe('TargetNotAllowed');
    for (const bad of ['relative/marker', '/tmp/../etc/passwd', '/tmp/', '/tmp//x'])
      expect(() => checkMarkerPath(bad), bad).toThrow(/^Restore marker/);
  });
});
