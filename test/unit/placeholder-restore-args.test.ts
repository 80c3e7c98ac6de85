import { describe, expect, it } from 'vitest';
import {
  JOIN_CGROUPS,
  type PlaceholderRestoreArgsInput,
  placeholderRestoreArgs,
} from '../../activities/node/container/placeholder-args.js';

const input: PlaceholderRestoreArgsInput = {
  imageDir: '/s/app-v1/images',
  workDir: '/s/.container-work/restore-ph-abc',
  initPid: 4242,
  rootfs: '/run/bundles/ph/rootfs',
  cgroupDirs: ['/sys/fs/cgroup/kubepods/pod1/ph', '/sys/fs/cgroup/memory/kubepods/pod1/ph'],
  externalMounts: [
    ['/dev/null', '/dev/null'],
    ['/data', '/var/lib/kubelet/pods/1/volumes/data'],
    ['/dev/shm', '/run/pods/1/shm'],
  ],
  dumpedStdio: ['/dev/null', 'pipe:[1234]', 'pipe:[5678]'],
  networkLock: 'nftables',
};

/** The values that follow each occurrence of `flag`. */
function valuesOf(args: string[], flag: string): string[] {
  return args.flatMap((arg, i) => (arg === flag ? [args[i + 1] ?? ''] : []));
}

describe('CRIU command line of a restore into a placeholder', () => {
  it('restores the images onto the placeholder rootfs, detached, with its log in the work directory', () => {
    const { args } = placeholderRestoreArgs(input);
    expect(args.slice(0, 10)).toEqual([
      'restore',
      '-D',
      '/s/app-v1/images',
      '-W',
      '/s/.container-work/restore-ph-abc',
      '-o',
      'restore.log',
      '-v4',
      '--root',
      '/run/bundles/ph/rootfs',
    ]);
    expect(args.at(-1)).toBe('--restore-detached');
  });

  it("joins the placeholder's net, IPC and UTS namespaces through inherited fds numbered from 3", () => {
    const { args, inheritedFiles } = placeholderRestoreArgs(input);
    expect(valuesOf(args, '--join-ns')).toEqual(['net:/proc/self/fd/3', 'ipc:/proc/self/fd/4', 'uts:/proc/self/fd/5']);
    expect(inheritedFiles.slice(0, 3)).toEqual([
      { path: '/proc/4242/ns/net', flags: 'r' },
      { path: '/proc/4242/ns/ipc', flags: 'r' },
      { path: '/proc/4242/ns/uts', flags: 'r' },
    ]);
  });

  it("maps every external mount of the dump to the placeholder's source", () => {
    expect(valuesOf(placeholderRestoreArgs(input).args, '--ext-mount-map')).toEqual([
      '/dev/null:/dev/null',
      '/data:/var/lib/kubelet/pods/1/volumes/data',
      '/dev/shm:/run/pods/1/shm',
    ]);
  });

  it("hands the dumped init's stdio pipes the placeholder init's, read-write, after the namespaces; nothing else is inherited", () => {
    const { args, inheritedFiles } = placeholderRestoreArgs(input);
    expect(valuesOf(args, '--inherit-fd')).toEqual(['fd[6]:pipe:[1234]', 'fd[7]:pipe:[5678]']);
    expect(inheritedFiles.slice(3)).toEqual([
      { path: '/proc/4242/fd/1', flags: 'r+' },
      { path: '/proc/4242/fd/2', flags: 'r+' },
    ]);
    const noPipes = placeholderRestoreArgs({ ...input, dumpedStdio: ['/dev/null', '/dev/null', 'socket:[9]'] });
    expect(valuesOf(noPipes.args, '--inherit-fd')).toEqual([]);
    expect(noPipes.inheritedFiles).toHaveLength(3);
  });

  it("closes established connections, locks the network with the node's method, uses the compat mount engine and leaves cgroups alone", () => {
    const { args } = placeholderRestoreArgs(input);
    expect(args).toContain('--tcp-close');
    expect(valuesOf(args, '--network-lock')).toEqual(['nftables']);
    expect(valuesOf(placeholderRestoreArgs({ ...input, networkLock: 'iptables' }).args, '--network-lock')).toEqual(['iptables']);
    expect(args).toContain('--mntns-compat-mode');
    expect(args).toContain('--manage-cgroups=ignore');
  });

  it('puts the flags in this order: paths, namespaces, mounts, inherited pipes, then the restore options', () => {
    expect(placeholderRestoreArgs(input).args.slice(10)).toEqual([
      '--join-ns',
      'net:/proc/self/fd/3',
      '--join-ns',
      'ipc:/proc/self/fd/4',
      '--join-ns',
      'uts:/proc/self/fd/5',
      '--ext-mount-map',
      '/dev/null:/dev/null',
      '--ext-mount-map',
      '/data:/var/lib/kubelet/pods/1/volumes/data',
      '--ext-mount-map',
      '/dev/shm:/run/pods/1/shm',
      '--inherit-fd',
      'fd[6]:pipe:[1234]',
      '--inherit-fd',
      'fd[7]:pipe:[5678]',
      '--manage-cgroups=ignore',
      '--mntns-compat-mode',
      '--tcp-close',
      '--network-lock',
      'nftables',
      '--restore-detached',
    ]);
  });

  it("launches CRIU in the placeholder's cgroups and PID namespace, in a mount namespace with its own /proc", () => {
    expect(placeholderRestoreArgs(input).launcher).toEqual([
      'sh',
      '-c',
      JOIN_CGROUPS,
      'sh',
      '/sys/fs/cgroup/kubepods/pod1/ph/cgroup.procs',
      '/sys/fs/cgroup/memory/kubepods/pod1/ph/cgroup.procs',
      '--',
      'nsenter',
      '--target=4242',
      '--pid',
      '--',
      'unshare',
      '--mount',
      '--propagation=private',
      '--mount-proc',
      '--',
    ]);
  });
});
