import { mkdir, open, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { torporFailure } from '../../../contract/failures.js';
import type { HashInput, StartedWorkload, StartWorkloadInput, WaitedFor, WaitInput, WorkloadExit } from '../../../contract/types.js';
import { pollUntil } from '../heartbeat.js';
import { holdsOpen, identify, isRunning } from '../proc/identity.js';
import { logTail } from '../proc/log-tail.js';
import { terminateGroup } from '../proc/terminate.js';
import { pathExists } from '../store/file-digests.js';
import type { StoreLayout } from '../store/layout.js';
import { readRecord, type WorkloadRecord, writeRecord } from '../store/run-records.js';
import { type ExitCodes, spawnWorkload } from './spawn.js';

/** The `local` runtime's checkpoint workload: a process this agent starts on its own host. */
class LocalWorkloads {
  private readonly exitCodes: ExitCodes = new Map();

  constructor(
    private readonly layout: StoreLayout,
    private readonly launcher?: string,
  ) {}

  private async requireRecord(hash: string): Promise<WorkloadRecord> {
    const record = await readRecord<WorkloadRecord>(this.layout.workloadRecord(hash));
    if (record === null) throw torporFailure('TargetNotAllowed', `No workload for checkpoint ${hash} was started by this agent`);
    return record;
  }

  private async exitedFailure(record: WorkloadRecord, when: string) {
    const code = this.exitCodes.get(record.pid);
    const tail = await logTail(record.contract.logFile);
    return torporFailure(
      'WorkloadExited',
      `Workload ${record.hash} (pid ${record.pid}) exited ${when}${code === undefined ? '' : ` with code ${code}`}. Log tail:\n${tail}`,
      { exitCode: code ?? null, logTail: tail },
    );
  }

  /** Starts the checkpoint workload with the ChReK environment. A retry of the same run returns the same process. */
  async start(input: StartWorkloadInput): Promise<StartedWorkload> {
    const { layout } = this;
    const runId = Context.current().info.workflowExecution?.runId ?? '';
    const existing = await readRecord<WorkloadRecord>(layout.workloadRecord(input.hash));
    if (existing?.runId === runId) {
      if (await isRunning(existing)) return { pid: existing.pid, logFile: existing.contract.logFile };
      throw await this.exitedFailure(existing, 'before it became ready');
    }
    if (existing) await terminateGroup(existing);
    const files = layout.workloadFiles(input.hash);
    await rm(layout.runDir(input.hash), { recursive: true, force: true });
    await rm(files.signalFile, { force: true });
    await mkdir(layout.runDir(input.hash), { recursive: true });
    await mkdir(path.dirname(files.signalFile), { recursive: true });
    const pid = await spawnWorkload(input, files, this.exitCodes, this.launcher);
    const id = await identify(pid);
    if (id === null) throw await this.exitedFailure({ ...input, pid, startTime: 0, runId, contract: files }, 'immediately');
    await writeRecord(layout.workloadRecord(input.hash), { ...id, hash: input.hash, runId, workload: input.workload, contract: files });
    return { pid, logFile: files.logFile };
  }

  /** Waits for the ready file, heartbeating; fails fast when the workload exits instead. */
  async waitReady({ hash, timeoutMs }: WaitInput): Promise<WaitedFor> {
    const record = await this.requireRecord(hash);
    const { waitedMs } = await pollUntil(
      'waiting-ready',
      timeoutMs,
      async () => {
        if (!(await isRunning(record))) throw await this.exitedFailure(record, 'before it became ready');
        // Ready once the file exists and is closed: CRIU would otherwise dump an fd to a file that
        // the clean-up removes, and the restore could not reopen it.
        const { readyFile } = record.contract;
        return (await pathExists(readyFile)) && !(await holdsOpen(record.pid, readyFile)) ? true : undefined;
      },
      async () => {
        throw torporFailure('WorkloadNotReady', `Workload ${hash} wrote no ready file within ${timeoutMs} ms`, {
          logTail: await logTail(record.contract.logFile),
        });
      },
    );
    return { waitedMs };
  }

  /** Writes the signal file the app waits for after its checkpoint (ChReK: checkpoint complete, exit). */
  async signal({ hash }: HashInput): Promise<void> {
    const record = await this.requireRecord(hash);
    await mkdir(path.dirname(record.contract.signalFile), { recursive: true });
    const handle = await open(record.contract.signalFile, 'w');
    await handle.writeFile(`${hash}\n`);
    await handle.close();
  }

  async waitExit({ hash, timeoutMs }: WaitInput): Promise<WorkloadExit> {
    const record = await this.requireRecord(hash);
    const { value: exited, waitedMs } = await pollUntil(
      'waiting-exit',
      timeoutMs,
      async () => ((await isRunning(record)) ? undefined : true),
      async () => false,
    );
    return { exited, exitCode: exited ? (this.exitCodes.get(record.pid) ?? null) : null, waitedMs };
  }

  /** Stops the checkpoint workload if it still runs. Already gone is success. */
  async stop({ hash }: HashInput): Promise<{ stopped: boolean }> {
    const record = await readRecord<WorkloadRecord>(this.layout.workloadRecord(hash));
    return { stopped: record !== null && (await terminateGroup(record)) };
  }

  /** Stops the workload if it still runs and removes its run files and signal file; its log stays for reading. */
  async cleanup({ hash }: HashInput): Promise<void> {
    const record = await readRecord<WorkloadRecord>(this.layout.workloadRecord(hash));
    if (record === null) return;
    await terminateGroup(record);
    await rm(record.contract.signalFile, { force: true });
    const runDir = this.layout.runDir(hash);
    const keep = path.basename(record.contract.logFile);
    for (const entry of await readdir(runDir).catch(() => [])) {
      if (entry !== keep) await rm(path.join(runDir, entry), { recursive: true, force: true });
    }
  }
}

/** Activities of the `local` runtime: the workload is a process this agent starts on its own host. */
export function localWorkloadActivities(layout: StoreLayout, launcher?: string) {
  const local = new LocalWorkloads(layout, launcher);
  return {
    startWorkload: (input: StartWorkloadInput) => local.start(input),
    waitWorkloadReady: (input: WaitInput) => local.waitReady(input),
    signalWorkload: (input: HashInput) => local.signal(input),
    waitWorkloadExit: (input: WaitInput) => local.waitExit(input),
    stopWorkload: (input: HashInput) => local.stop(input),
    cleanupWorkload: (input: HashInput) => local.cleanup(input),
  };
}
