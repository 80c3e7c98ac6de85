import path from 'node:path';
import { InvalidArgumentError } from 'commander';
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

/** The workload options `checkpoint` and `schedule create` share. */
export interface WorkloadOptions {
  cwd?: string;
  env?: Record<string, string>;
  hashEnv?: string[];
  readyTimeout?: number;
  exitTimeout?: number;
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
  };
}
