import path from 'node:path';
import { InvalidArgumentError, Option } from 'commander';
import { ESTABLISHED_POLICIES, type EstablishedPolicy } from '../contract/network.js';
import type { ReadinessProbe } from '../contract/spec.js';
import { parseInterval } from '../contract/spec.js';

/** Commander collector for repeatable `-e NAME=VALUE`. */
export function collectEnv(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`"${value}" is not NAME=VALUE`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** "90s", "15m", "1h30m", "7d" or plain milliseconds. */
export function durationMs(value: string): number {
  const ms = /^\d+$/.test(value) ? Number(value) : parseInterval(value);
  if (ms === null) throw new InvalidArgumentError(`"${value}" is not a duration such as 30s, 15m, 1h or 1h30m`);
  return ms;
}

export function positiveInt(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`"${value}" is not a whole number`);
  return Number(value);
}

export function commaList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export function isoDate(value: string): Date {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new InvalidArgumentError(`"${value}" is not a date (ISO 8601, e.g. 2025-01-31T12:00:00Z)`);
  return date;
}

/** `--ready-http 8000/health`: ready once GET http://127.0.0.1:8000/health answers 2xx (the path defaults to /). */
export function httpProbe(value: string): ReadinessProbe {
  const match = /^(\d{1,5})(\/.*)?$/.exec(value);
  const port = Number(match?.[1]);
  if (!match || port < 1 || port > 65535) throw new InvalidArgumentError(`"${value}" is not PORT or PORT/PATH, e.g. 8000/health`);
  return { kind: 'http', port, path: match[2] ?? '/', host: '127.0.0.1' };
}

/** `--established close|keep`: what a checkpoint does with the workload's established TCP connections. */
export function establishedOption(): Option {
  return new Option('--established <policy>', 'established TCP connections: close them (default) or keep them (TCP repair)').choices(
    ESTABLISHED_POLICIES,
  );
}

/** The workload options `checkpoint` and `schedule create` share. */
export interface WorkloadOptions {
  cwd?: string;
  env?: Record<string, string>;
  hashEnv?: string[];
  readyTimeout?: number;
  exitTimeout?: number;
  established?: EstablishedPolicy;
}

/**
 * The workload part of a request: only the options given, so the schema's defaults apply to the rest.
 * The working directory defaults to the CLI's own (the local runtime runs it on this host).
 */
export function workloadRequest(command: string[], o: WorkloadOptions) {
  return {
    workload: { command, env: o.env ?? {}, cwd: path.resolve(o.cwd ?? process.cwd()) },
    ...(o.hashEnv === undefined ? {} : { hashEnv: o.hashEnv }),
    ...(o.readyTimeout === undefined ? {} : { readyTimeoutMs: o.readyTimeout }),
    ...(o.exitTimeout === undefined ? {} : { exitTimeoutMs: o.exitTimeout }),
    ...(o.established === undefined ? {} : { network: { established: o.established } }),
  };
}
