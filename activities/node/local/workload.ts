import { randomUUID } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ChrekEnv } from '../../../contract/chrek.js';
import { torporFailure } from '../../../contract/failures.js';
import type { HashInput, StartedWorkload, StartWorkloadInput, WaitedFor, WaitInput, WorkloadExit } from '../../../contract/types.js';
import type { NodeAgentConfig } from '../agent-config.js';
import { pollUntil } from '../heartbeat.js';
import { findLeaderByEnv } from '../proc/find.js';
import { holdsOpen, identify, isRunning, type ProcessIdentity } from '../proc/identity.js';
import { logTail } from '../proc/log-tail.js';
import { terminateWorkload } from '../proc/terminate.js';
import { pathExists } from '../store/file-digests.js';
import type { StoreLayout } from '../store/layout.js';
import { readRecord, recordedWorkload, type WorkloadRecord, writeRecord } from '../store/run-records.js';
import { removeSignalFile, writeSignalFile } from '../store/signal-files.js';
import { freshRunDir } from './run-dir.js';
import { localRuntimeOwner } from './runtime-switch.js';
import { type ChildExits, type ExitCodes, START_ID_ENV, spawnWorkload } from './spawn.js';
import { createWorkloadCgroup, stopWorkloadCgroup, workloadCgroupName } from './workload-cgroup.js';

/** The `local` runtime's checkpoint workload: a process this agent starts on its own host. */
class LocalWorkloads {
  private readonly exitCodes: ExitCodes = new Map();
  private readonly exits: ChildExits = new Map();

  constructor(
    private readonly config: NodeAgentConfig,
    private readonly layout: StoreLayout,
  ) {}

  private async requireRecord(hash: string): Promise<WorkloadRecord> {
    const record = await readRecord<WorkloadRecord>(this.layout.workloadRecord(hash));
    if (record === null) throw torporFailure('TargetNotAllowed', `No workload for checkpoint ${hash} was started by this agent`);
    return record;
  }

  private async exitedFailure(record: WorkloadRecord, when: string) {
    const code = this.exitCodes.get(record.pid);
    const tail = await logTail(this.layout.workloadFiles(record.hash).logFile);
    return torporFailure(
      'WorkloadExited',
      `Workload ${record.hash} (pid ${record.pid}) exited ${when}${code === undefined ? '' : ` with code ${code}`}. Log tail:\n${tail}`,
      { exitCode: code ?? null, logTail: tail },
    );
  }

  /**
   * The process a record names: its PID, or, for an attempt that crashed between its intent and
   * the spawn's PID, the process that carries the attempt's start id (and the hash).
   */
  private async recordedProcess(record: WorkloadRecord): Promise<ProcessIdentity | null> {
    if (record.pid !== 0) return (await isRunning(record)) ? record : null;
    if (record.startId === undefined) return null;
    return findLeaderByEnv({ [ChrekEnv.hash]: record.hash, [START_ID_ENV]: record.startId });
  }

  /**
   * Starts the checkpoint workload with the ChReK environment, as the configured non-root user. An
   * intent record goes first, so a retry of the same run returns the same process, even one whose
   * PID the first attempt never wrote down, instead of spawning a second one.
   */
  async start(input: StartWorkloadInput): Promise<StartedWorkload> {
    const owner = localRuntimeOwner(this.config, 'startWorkload');
    const { layout } = this;
    const { hash } = input;
    const runId = Context.current().info.workflowExecution?.runId ?? '';
    const existing = await readRecord<WorkloadRecord>(layout.workloadRecord(hash));
    const previous = existing && (await this.recordedProcess(existing));
    if (existing?.runId === runId && previous) return this.adopt(existing, previous);
    if (existing?.runId === runId && existing.pid !== 0) throw await this.exitedFailure(existing, 'before it became ready');
    await this.terminate(hash, existing && previous);
    const files = layout.workloadFiles(hash);
    await freshRunDir(layout, hash, owner);
    await removeSignalFile(layout, hash);
    const intent: WorkloadRecord = {
      pid: 0,
      startTime: 0,
      hash,
      runId,
      startId: randomUUID(),
      workload: recordedWorkload(input.workload),
      contract: files,
    };
    await writeRecord(layout.workloadRecord(hash), intent);
    const pid = await spawnWorkload(input, files, this.exitCodes, {
      owner,
      startId: intent.startId as string,
      launcher: this.config.workloadLauncher,
      cgroup: await createWorkloadCgroup(workloadCgroupName(hash)),
      exits: this.exits,
    });
    const id = await identify(pid);
    if (id === null) throw await this.exitedFailure({ ...intent, pid }, 'immediately');
    await writeRecord(layout.workloadRecord(hash), { ...intent, ...id });
    return { pid, logFile: files.logFile };
  }

  /** Completes the record of a process an earlier attempt of this run started. */
  private async adopt(record: WorkloadRecord, id: ProcessIdentity): Promise<StartedWorkload> {
    if (record.pid === 0) await writeRecord(this.layout.workloadRecord(record.hash), { ...record, ...id });
    return { pid: id.pid, logFile: this.layout.workloadFiles(record.hash).logFile };
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
        const { readyFile } = this.layout.workloadFiles(hash);
        return (await pathExists(readyFile)) && !(await holdsOpen(record.pid, readyFile)) ? true : undefined;
      },
      async () => {
        throw torporFailure('WorkloadNotReady', `Workload ${hash} wrote no ready file within ${timeoutMs} ms`, {
          logTail: await logTail(this.layout.workloadFiles(hash).logFile),
        });
      },
    );
    return { waitedMs };
  }

  /** Writes the signal file the app waits for after its checkpoint (ChReK: checkpoint complete, exit). */
  async signal({ hash }: HashInput): Promise<void> {
    await this.requireRecord(hash);
    // The signal directory may be a host path pods write: never follow what they planted there.
    await writeSignalFile(this.layout, hash);
  }

  /** Waits for the exit: woken by it when this agent process started the workload, else by its poll. */
  async waitExit({ hash, timeoutMs }: WaitInput): Promise<WorkloadExit> {
    const record = await this.requireRecord(hash);
    const { value: exited, waitedMs } = await pollUntil(
      'waiting-exit',
      timeoutMs,
      async () => ((await isRunning(record)) ? undefined : true),
      async () => false,
      this.exits.get(record.pid),
    );
    return { exited, exitCode: exited ? (this.exitCodes.get(record.pid) ?? null) : null, waitedMs };
  }

  /**
   * Kills every process of the workload's cgroup and removes it; then the recorded process, should
   * it run outside (started by an agent without workload cgroups).
   */
  private async terminate(hash: string, running: ProcessIdentity | null | undefined): Promise<boolean> {
    const killed = await stopWorkloadCgroup(workloadCgroupName(hash));
    const leader = !!running && (await terminateWorkload(running, hash));
    return killed || leader;
  }

  /** Stops the checkpoint workload if it still runs. Already gone is success. */
  async stop({ hash }: HashInput): Promise<{ stopped: boolean }> {
    const record = await readRecord<WorkloadRecord>(this.layout.workloadRecord(hash));
    const running = record && (await this.recordedProcess(record));
    return { stopped: await this.terminate(hash, running) };
  }

  /** Stops the workload if it still runs and removes its run files and signal file; its log stays for reading. */
  async cleanup({ hash }: HashInput): Promise<void> {
    const record = await readRecord<WorkloadRecord>(this.layout.workloadRecord(hash));
    if (record === null) return;
    await this.terminate(hash, await this.recordedProcess(record));
    await removeSignalFile(this.layout, hash);
    const runDir = this.layout.runDir(hash);
    const keep = path.basename(this.layout.workloadFiles(hash).logFile);
    for (const entry of await readdir(runDir).catch(() => [])) {
      if (entry !== keep) await rm(path.join(runDir, entry), { recursive: true, force: true });
    }
  }
}

/** Activities of the `local` runtime: the workload is a process this agent starts on its own host. */
export function localWorkloadActivities(config: NodeAgentConfig, layout: StoreLayout) {
  const local = new LocalWorkloads(config, layout);
  return {
    startWorkload: (input: StartWorkloadInput) => local.start(input),
    waitWorkloadReady: (input: WaitInput) => local.waitReady(input),
    signalWorkload: (input: HashInput) => local.signal(input),
    waitWorkloadExit: (input: WaitInput) => local.waitExit(input),
    stopWorkload: (input: HashInput) => local.stop(input),
    cleanupWorkload: (input: HashInput) => local.cleanup(input),
  };
}
