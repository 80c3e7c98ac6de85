import { readFile, rm } from 'node:fs/promises';
import type { RecordedWorkload } from '../../../contract/manifest-types.js';
import type { NetworkPolicy } from '../../../contract/network.js';
import type { Runtime, WorkloadSpec } from '../../../contract/spec.js';
import type { WorkloadContractFiles } from '../../../contract/types.js';
import type { ProcessIdentity } from '../proc/identity.js';
import { writeFileAtomic } from './file-digests.js';
import type { Prehashed } from './hash-behind.js';

/**
 * Small JSON records the agent keeps for itself, so that an activity retried after an agent crash
 * finds what the first attempt did instead of trusting PIDs from workflow input.
 */

/** `<runDir>/workload.json`: the checkpoint workload this agent started. */
export interface WorkloadRecord extends ProcessIdentity {
  hash: string;
  /** The workflow run that started it; a record of another run is stale. */
  runId: string;
  /** In the workload's environment (TORPOR_START_ID): finds the process of an attempt that crashed before it wrote the PID. */
  startId?: string;
  workload: RecordedWorkload;
  contract: WorkloadContractFiles;
}

/** `<root>/.tmp/<dumpId>.json`: written when CRIU finished, read by the commit. */
export interface DumpRecord {
  pid: number;
  workload: RecordedWorkload;
  contract: WorkloadContractFiles;
  criuVersion: string;
  criuArgs: string[];
  imageBytes: number;
  criuMs: number;
  /** How the process ran; local when absent (records written before containers existed). */
  runtime?: Runtime;
  network: NetworkPolicy;
  /** Chunks hashed while CRIU wrote them (absent: the commit hashes everything). */
  prehashed?: Prehashed;
}

/** `<restoreDir>/restored.json`: the process a restore brought back. */
export interface RestoredRecord extends ProcessIdentity {
  hash: string;
  restoreId: string;
  logFile: string;
  criuMs: number;
  /** Set for a tree restored into this placeholder container (container/): not the local runtime's to wait for or stop. */
  placeholderContainerId?: string;
}

/** A workload spec as records and manifests keep it: environment names, no values. */
export function recordedWorkload({ command, cwd, env }: WorkloadSpec): RecordedWorkload {
  return { command, ...(cwd === undefined ? {} : { cwd }), envNames: Object.keys(env).sort() };
}

export async function readRecord<T>(file: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export async function writeRecord(file: string, record: object): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
}

export async function removeRecord(file: string): Promise<void> {
  await rm(file, { force: true });
}
