import { describe, expect, it } from 'vitest';
import { type PlaceholderRestoreArgsInput, placeholderRestoreArgs } from '../../activities/node/container/placeholder-args.js';

const input: PlaceholderRestoreArgsInput = {
  imageDir: '/s/app-v1/images',
  workDir: '/s/.container-work/restore-ph-abc',
  initPid: 4242,
  rootfs: '/run/bundles/ph/rootfs',
  cgroupDirs: ['/sys/fs/cgroup/memory/kubepods/pod1/ph'],
  externalMounts: [['/dev/null', '/dev/null']],
  dumpedStdio: ['/dev/null', 'pipe:[1234]', 'pipe:[5678]'],
  networkLock: 'nftables',
};

const valuesOf = (args: string[], flag: string) => args.flatMap((arg, i) => (arg === flag ? [args[i + 1] ?? ''] : []));

describe('restore into a placeholder of a container dumped from a CNI pod sandbox', () => {
  it("hands CRIU the placeholder's network namespace as runc's external key instead of joining it", () => {
    const { args, inheritedFiles } = placeholderRestoreArgs({ ...input, externalNetns: true });
    expect(valuesOf(args, '--join-ns')).toEqual(['ipc:/proc/self/fd/4', 'uts:/proc/self/fd/5']);
    expect(valuesOf(args, '--inherit-fd')).toEqual(['fd[3]:extRootNetNS', 'fd[6]:pipe:[1234]', 'fd[7]:pipe:[5678]']);
    expect(inheritedFiles[0]).toEqual({ path: '/proc/4242/ns/net', flags: 'r' });
  });

  it('joins the network namespace when the dump had its own (runc made it)', () => {
    const { args } = placeholderRestoreArgs(input);
    expect(valuesOf(args, '--join-ns')).toContain('net:/proc/self/fd/3');
    expect(valuesOf(args, '--inherit-fd')).not.toContain('fd[3]:extRootNetNS');
  });
});
