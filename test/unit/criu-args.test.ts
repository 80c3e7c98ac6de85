import { describe, expect, it } from 'vitest';
import {
  compareVersions,
  criuDumpArgs,
  criuLogExcerpt,
  criuRestoreArgs,
  criuVersionProblem,
  inheritFdKey,
  parseCriuVersion,
} from '../../activities/node/criu/args.js';
import type { NetworkPolicy } from '../../contract/network.js';

const CLOSE: NetworkPolicy = { established: 'close', lock: 'iptables' };
const KEEP: NetworkPolicy = { established: 'keep', lock: 'nftables' };
const dump = (network: NetworkPolicy, extra: string[] = []) =>
  criuDumpArgs({ pid: 4242, imagesDir: '/s/.tmp/h.1/images', workDir: '/s/.tmp/h.1/logs', network, extra });
const restore = (network: NetworkPolicy) =>
  criuRestoreArgs({
    imagesDir: '/s/h/images',
    workDir: '/s/.restores/h/r',
    pidFile: '/s/.restores/h/r/pid',
    inherit: [{ fd: 3, dumpedPath: '/s/.runs/h/workload.log' }],
    network,
    extra: [],
  });

describe('CRIU command lines', () => {
  it('dumps the whole tree of the workload and leaves it running for the signal', () => {
    const args = dump(CLOSE, ['--ext-unix-sk']);
    expect(args.slice(0, 3)).toEqual(['dump', '--tree', '4242']);
    expect(args).toContain('--leave-running');
    expect(args[args.indexOf('--images-dir') + 1]).toBe('/s/.tmp/h.1/images');
    expect(args[args.indexOf('--work-dir') + 1]).toBe('/s/.tmp/h.1/logs');
    expect(args.at(-1)).toBe('--ext-unix-sk');
  });

  it('restores detached, writes a pidfile and hands the old log path a fresh fd', () => {
    const args = restore(CLOSE);
    expect(args[0]).toBe('restore');
    expect(args).toContain('--restore-detached');
    expect(args).toContain('--manage-cgroups=ignore');
    expect(args[args.indexOf('--pidfile') + 1]).toBe('/s/.restores/h/r/pid');
    expect(args[args.indexOf('--inherit-fd') + 1]).toBe('fd[3]:s/.runs/h/workload.log');
  });

  it('closes established connections by default: the original runs on, nothing is saved or locked', () => {
    const args = dump(CLOSE);
    expect(args).toEqual(expect.arrayContaining(['--leave-running', '--tcp-close']));
    expect(args).not.toContain('--tcp-established');
    expect(args[args.indexOf('--network-lock') + 1]).toBe('iptables');
    expect(restore(CLOSE)).toContain('--tcp-close');
    expect(restore(CLOSE)).not.toContain('--tcp-established');
  });

  it('keeps established connections with TCP repair: the dump ends the original and the restore takes over the lock', () => {
    const args = dump(KEEP);
    expect(args).toContain('--tcp-established');
    expect(args).not.toContain('--leave-running');
    expect(args).not.toContain('--tcp-close');
    expect(args[args.indexOf('--network-lock') + 1]).toBe('nftables');
    const restored = restore(KEEP);
    expect(restored).toContain('--tcp-established');
    expect(restored).not.toContain('--tcp-close');
    expect(restored[restored.indexOf('--network-lock') + 1]).toBe('nftables');
  });

  it('names dumped files the way CRIU does, without the leading slash', () => {
    expect(inheritFdKey('/var/log/app.log')).toBe('var/log/app.log');
    expect(inheritFdKey('//x')).toBe('x');
  });
});

describe('CRIU log excerpts', () => {
  const log = [
    '(00.000085) File /run/criu.kdat does not exist',
    "(00.077052) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
    '(00.080858)   5374: Error (criu/files-reg.c:2175): File tmp/app.log has bad size 70 (expect 35)',
    '(00.081835) Error (criu/cr-restore.c:2320): Restoring FAILED.',
  ].join('\n');

  it('keeps the error lines and drops the harmless rlimit one', () => {
    const excerpt = criuLogExcerpt(log);
    expect(excerpt).toContain('has bad size');
    expect(excerpt).toContain('Restoring FAILED');
    expect(excerpt).not.toContain('RLIMIT_NOFILE');
    expect(excerpt).not.toContain('criu.kdat');
  });

  it('falls back to the last lines when no line says Error', () => {
    expect(criuLogExcerpt('a\nb\nc', 2)).toBe('b\nc');
  });

  it('reads the version from criu --version', () => {
    expect(parseCriuVersion('Version: 4.1.1\n')).toBe('4.1.1');
    expect(parseCriuVersion('Version: 4.2.1\nGitID: v4.2.1\n')).toBe('4.2.1');
    expect(parseCriuVersion('garbage')).toBe('unknown');
  });
});

describe('the CRIU version the agent accepts', () => {
  it('compares versions numerically, part by part', () => {
    expect(compareVersions('4.2.1', '4.2.0')).toBeGreaterThan(0);
    expect(compareVersions('4.2', '4.2.0')).toBe(0);
    expect(compareVersions('4.10', '4.9')).toBeGreaterThan(0);
    expect(compareVersions('3.19', '4.2.0')).toBeLessThan(0);
  });

  it('accepts 4.2.0 and newer', () => {
    for (const ok of ['4.2', '4.2.0', '4.2.1', '4.3', '5.0']) expect(criuVersionProblem(ok, '/usr/sbin/criu')).toBeNull();
  });

  it('refuses 4.1.1, 3.17 and an unreadable version, naming what it found and where', () => {
    expect(criuVersionProblem('4.1.1', '/usr/sbin/criu')).toMatch(
      /needs CRIU 4\.2\.0 or newer, but found CRIU 4\.1\.1 at \/usr\/sbin\/criu/,
    );
    expect(criuVersionProblem('3.17', 'criu')).toMatch(/found CRIU 3\.17/);
    expect(criuVersionProblem('unknown', 'criu')).toMatch(/could not read/);
  });
});
