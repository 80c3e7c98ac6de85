import { readFile, rm } from 'node:fs/promises';
import type { NetworkPolicy } from '../../../contract/network.js';
import type { Runtime, WorkloadSpec } from '../../../contract/spec.js';
import type { WorkloadContractFiles } from '../../../contract/types.js';
import type { ProcessIdentity } from '../proc/identity.js';
import { writeFileAtomic } from './file-digests.js';

/**
 * Small JSON records the agent keeps for itself, so that an activity retried after an agent crash
 * finds what the first attempt did instead of trusting PIDs from workflow input.
 */

/** `<runDir>/workload.json`: the checkpoint workload this agent started. */
export interface WorkloadRecord extends ProcessIdentity {
  hash: string;
  /** The workflow run that started it; a record of another run is stale. */
  runId: string;
  workload: WorkloadSpec;
  contract: WorkloadContractFiles;
}

/** `<root>/.tmp/<dumpId>.json`: written when CRIU finished, read by the commit. */
export interface DumpRecord {
  pid: number;
  workload: WorkloadSpec;
  contract: WorkloadContractFiles;
  criuVersion: string;
  criuArgs: string[];
  imageBytes: number;
  criuMs: number;
  /** How the process ran; local when absent (records written before containers existed). */
  runtime?: Runtime;
  network: NetworkPolicy;
}

/** `<restoreDir>/restored.json`: the process a restore brought back. */
export interface RestoredRecord extends ProcessIdentity {
  hash: string;
  restoreId: string;
  logFile: string;
  criuMs: number;
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
  await writeFileAtomic(file, `${JSON.stringify(record, null, 2)}\n`);
}

export async function removeRecord(file: string): Promise<void> {
  await rm(file, { force: true });
}
