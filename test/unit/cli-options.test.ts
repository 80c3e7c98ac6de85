import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { ExitCode, exitCodeOf } from '../../cli/exit-codes.js';
import { formatBytes, table } from '../../cli/format.js';
import { collectEnv, durationMs, httpProbe, workloadRequest } from '../../cli/options.js';
import { intervalSchema, parseInterval, refreshScheduleSchema } from '../../contract/spec.js';

describe('schedule intervals', () => {
  it('parses units and combinations into milliseconds', () => {
    expect(parseInterval('90s')).toBe(90_000);
    expect(parseInterval('15m')).toBe(900_000);
    expect(parseInterval('1h30m')).toBe(5_400_000);
    expect(parseInterval('7d')).toBe(7 * 86_400_000);
    for (const bad of ['', '1', 'h', '1.5h', '1 h', '-1h', '1w', 'soon']) expect(parseInterval(bad), bad).toBeNull();
  });

  it('rejects an interval under a minute or over 366 days, and garbage', () => {
    expect(intervalSchema.parse('1m')).toBe(60_000);
    expect(intervalSchema.parse(3_600_000)).toBe(3_600_000);
    for (const bad of ['59s', '0m', 1000, '367d', 'often', 1.5]) expect(intervalSchema.safeParse(bad).success, String(bad)).toBe(false);
  });

  it('validates a whole schedule request: name, keep, interval', () => {
    const ok = { name: 'web', node: 'n1', runtime: 'local', workload: { command: ['x'] }, every: '1h' };
    expect(refreshScheduleSchema.parse(ok)).toMatchObject({ every: 3_600_000, keep: 3, paused: false });
    expect(refreshScheduleSchema.safeParse({ ...ok, name: 'Web_1' }).success).toBe(false);
    expect(refreshScheduleSchema.safeParse({ ...ok, name: 'a'.repeat(47) }).success).toBe(false);
    expect(refreshScheduleSchema.safeParse({ ...ok, keep: 0 }).success).toBe(false);
    expect(refreshScheduleSchema.safeParse({ ...ok, hashEnv: ['NOT VALID'] }).success).toBe(false);
  });
});

describe('CLI options and exit codes', () => {
  it('collects -e NAME=VALUE (values may hold "=") and refuses anything else', () => {
    expect(collectEnv('B=x=y', collectEnv('A=1'))).toEqual({ A: '1', B: 'x=y' });
    expect(() => collectEnv('NOVALUE')).toThrow(InvalidArgumentError);
    expect(() => collectEnv('=x')).toThrow(InvalidArgumentError);
  });

  it('reads durations as units or plain milliseconds', () => {
    expect(durationMs('2m')).toBe(120_000);
    expect(durationMs('1500')).toBe(1500);
    expect(() => durationMs('2 minutes')).toThrow(InvalidArgumentError);
  });

  it('builds the workload part of a request from the options given, with an absolute working directory', () => {
    expect(workloadRequest(['python3', 'app.py'], { cwd: '/srv', env: { A: '1' }, readyTimeout: 5000 })).toEqual({
      workload: { command: ['python3', 'app.py'], env: { A: '1' }, cwd: '/srv' },
      readyTimeoutMs: 5000,
    });
    expect(workloadRequest(['x'], {}).workload.cwd).toBe(process.cwd());
  });

  it('maps each failure type to its exit code', () => {
    expect(exitCodeOf('InvalidSpec')).toBe(ExitCode.usage);
    expect(exitCodeOf('TargetNotAllowed')).toBe(ExitCode.usage);
    expect(exitCodeOf('CheckpointNotFound')).toBe(ExitCode.notFound);
    expect(exitCodeOf('ScheduleNotFound')).toBe(ExitCode.notFound);
    expect(exitCodeOf('CheckpointInUse')).toBe(ExitCode.inUse);
    expect(exitCodeOf('AgentUnavailable')).toBe(ExitCode.unavailable);
    expect(exitCodeOf('DumpFailed')).toBe(ExitCode.failed);
    expect(exitCodeOf('Unknown')).toBe(ExitCode.unexpected);
    expect(new Set(Object.values(ExitCode)).size).toBe(Object.keys(ExitCode).length);
  });

  it('formats sizes and aligns tables', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(72.3 * 2 ** 20)).toBe('72.3 MiB');
    expect(table(['A', 'BB'], [['xyz', '1']])).toEqual(['A    BB', 'xyz  1']);
  });
});

describe('network and HTTP readiness options', () => {
  it('parses --ready-http PORT and PORT/PATH into a loopback HTTP probe', () => {
    expect(httpProbe('8000')).toEqual({ kind: 'http', port: 8000, path: '/', host: '127.0.0.1' });
    expect(httpProbe('8000/v1/health')).toEqual({ kind: 'http', port: 8000, path: '/v1/health', host: '127.0.0.1' });
    for (const bad of ['', 'http://x:80/', '0', '70000', '80health', 'x/y'])
      expect(() => httpProbe(bad), bad).toThrow(InvalidArgumentError);
  });

  it('puts --established into the request only when given', () => {
    expect(workloadRequest(['x'], { established: 'keep' })).toMatchObject({ network: { established: 'keep' } });
    expect(workloadRequest(['x'], {})).not.toHaveProperty('network');
  });
});
