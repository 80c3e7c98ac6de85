import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { ReadinessProbe, WorkloadSpec } from '../contract/spec.js';

export const SAMPLE_APP = fileURLToPath(new URL('./app.py', import.meta.url));
const PROBE = fileURLToPath(new URL('./probe.py', import.meta.url));

export interface SampleOptions {
  tableMb: number;
  initSeconds: number;
  statusFile: string;
  env?: Record<string, string>;
}

/** The sample app as a Torpor workload. */
export function sampleWorkload(options: SampleOptions): WorkloadSpec {
  return {
    command: ['python3', '-u', SAMPLE_APP],
    cwd: fileURLToPath(new URL('.', import.meta.url)),
    env: {
      SAMPLE_TABLE_MB: String(options.tableMb),
      SAMPLE_INIT_SECONDS: String(options.initSeconds),
      SAMPLE_STATUS_FILE: options.statusFile,
      ...options.env,
    },
  };
}

/** Ready once the restored app reports that it runs restored. */
export function sampleRestoredProbe(statusFile: string): ReadinessProbe {
  return { kind: 'exec', command: ['python3', PROBE, statusFile] };
}

/** Ready once the app's /health answers 200 (it serves, running or restored), as a model server's probe asks. */
export function sampleHealthProbe(port: number): ReadinessProbe {
  return { kind: 'http', port, path: '/health', host: '127.0.0.1' };
}

/** What the app answers on GET /state: the same fields as its status file, from the process itself. */
export async function fetchSampleState(port: number, host = '127.0.0.1'): Promise<SampleStatus> {
  const response = await fetch(`http://${host}:${port}/state`, { signal: AbortSignal.timeout(5000) });
  if (!response.ok) throw new Error(`GET /state answered ${response.status}`);
  return (await response.json()) as SampleStatus;
}

/** A content hash of the app and its parameters, so a changed app never reuses an old checkpoint. */
export function sampleHash(prefix: string, options: SampleOptions): string {
  const digest = createHash('sha256')
    .update(readFileSync(SAMPLE_APP))
    .update(JSON.stringify([options.tableMb, options.initSeconds, options.env ?? {}]))
    .digest('hex');
  return `${prefix}-${digest.slice(0, 16)}`;
}

export interface SampleStatus {
  pid: number;
  instance: string;
  time?: number;
  /** The HTTP port it listens on. */
  port: number;
  phase: 'loading' | 'initialized' | 'waiting-for-checkpoint' | 'restored' | 'running';
  counter: number;
  checksum: string;
  init_seconds?: number;
}

export async function readSampleStatus(statusFile: string): Promise<SampleStatus> {
  return JSON.parse(await readFile(statusFile, 'utf8')) as SampleStatus;
}
