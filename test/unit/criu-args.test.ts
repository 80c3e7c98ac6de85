import { describe, expect, it } from 'vitest';
import { criuDumpArgs, criuLogExcerpt, criuRestoreArgs, inheritFdKey, parseCriuVersion } from '../../activities/node/criu-args.js';

describe('CRIU command lines', () => {
  it('dumps the whole tree of the workload and leaves it running for the signal', () => {
    const args = criuDumpArgs({ pid: 4242, imagesDir: '/s/.tmp/h.1/images', workDir: '/s/.tmp/h.1/logs', extra: ['--tcp-established'] });
    expect(args.slice(0, 3)).toEqual(['dump', '--tree', '4242']);
    expect(args).toContain('--leave-running');
    expect(args[args.indexOf('--images-dir') + 1]).toBe('/s/.tmp/h.1/images');
    expect(args[args.indexOf('--work-dir') + 1]).toBe('/s/.tmp/h.1/logs');
    expect(args.at(-1)).toBe('--tcp-established');
  });

  it('restores detached, writes a pidfile and hands the old log path a fresh fd', () => {
    const args = criuRestoreArgs({
      imagesDir: '/s/h/images',
      workDir: '/s/.restores/h/r',
      pidFile: '/s/.restores/h/r/pid',
      inherit: [{ fd: 3, dumpedPath: '/s/.runs/h/workload.log' }],
      extra: [],
    });
    expect(args[0]).toBe('restore');
    expect(args).toContain('--restore-detached');
    expect(args[args.indexOf('--pidfile') + 1]).toBe('/s/.restores/h/r/pid');
    expect(args[args.indexOf('--inherit-fd') + 1]).toBe('fd[3]:s/.runs/h/workload.log');
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
    expect(parseCriuVersion('garbage')).toBe('unknown');
  });
});
