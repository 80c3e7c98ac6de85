import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ChrekEnv } from '../../../contract/chrek.js';
import { torporFailure } from '../../../contract/failures.js';
import type {
  HashInput,
  StartedWorkload,
  StartWorkloadInput,
  WaitedFor,
  WaitInput,
  WorkloadContractFiles,
  WorkloadExit,
} from '../../../contract/types.js';
import { pollUntil } from '../heartbeat.js';
import { holdsOpen, identify, isRunning } from '../proc/identity.js';
import { logTail } from '../proc/log-tail.js';
import { terminateGroup } from '../proc/terminate.js';
import { pathExists } from '../store/file-digests.js';
import type { StoreLayout } from '../store/layout.js';
import { readRecord, type WorkloadRecord, writeRecord } from '../store/run-records.js';
import { resolveProgram } from './spec-hash.js';

/** The agent's own variables a workload inherits; everything else comes from the spec. */
const INHERITED_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'USER', 'PYTHONPATH'];

function contractEnv(hash: string, files: WorkloadContractFiles): Record<string, string> {
  return {
    [ChrekEnv.signalFile]: files.signalFile,
    [ChrekEnv.readyFile]: files.readyFile,
    [ChrekEnv.hash]: hash,
    [ChrekEnv.location]: files.location,
    // A directory on the node, which is what ChReK's "pvc" type means to the app.
    [ChrekEnv.storageType]: 'pvc',
    [ChrekEnv.restoreMarkerFile]: files.restoreMarkerFile,
  };
}

/**
 * Activities of the `local` runtime: the workload is a process this agent starts on its own host,
 * through `launcher` when the agent has one (torpor-no-io-uring: the process keeps its PID, it execs).
 */
export function localWorkloadActivities(layout: StoreLayout, launcher?: string) {
  /** Exit codes of workloads this agent process started (lost on agent restart, then reported as null). */
  const exitCodes = new Map<number, number | null>();
  const recordFile = (hash: string) => layout.workloadRecord(hash);

  async function requireRecord(hash: string): Promise<WorkloadRecord> {
    const record = await readRecord<WorkloadRecord>(recordFile(hash));
    if (record === null) throw torporFailure('TargetNotAllowed', `No workload for checkpoint ${hash} was started by this agent`);
    return record;
  }

  async function exitedFailure(record: WorkloadRecord, when: string) {
    const code = exitCodes.get(record.pid);
    const tail = await logTail(record.contract.logFile);
    return torporFailure(
      'WorkloadExited',
      `Workload ${record.hash} (pid ${record.pid}) exited ${when}${code === undefined ? '' : ` with code ${code}`}. Log tail:\n${tail}`,
      { exitCode: code ?? null, logTail: tail },
    );
  }

  async function spawnWorkload(input: StartWorkloadInput, files: WorkloadContractFiles): Promise<number> {
    const [program, ...args] = input.workload.command;
    const cwd = input.workload.cwd ?? process.cwd();
    if (
      !(await stat(cwd).then(
        (s) => s.isDirectory(),
        () => false,
      ))
    ) {
      throw torporFailure('WorkloadStartFailed', `Working directory ${cwd} does not exist on this node`);
    }
    const inherited = Object.fromEntries(INHERITED_ENV.flatMap((k) => (process.env[k] === undefined ? [] : [[k, process.env[k]]])));
    const env = { ...inherited, ...input.workload.env, ...contractEnv(input.hash, files) };
    // Through a launcher, a missing program would only show as its exit code: look it up first.
    if (launcher && (await resolveProgram(program as string, cwd, env.PATH ?? '')) === null) {
      throw torporFailure('WorkloadStartFailed', `Cannot start ${program}: ENOENT (not an executable file on PATH or relative to ${cwd})`);
    }
    const [file, argv] = launcher ? [launcher, [program as string, ...args]] : [program as string, args];
    const log = await open(files.logFile, 'a');
    try {
      // A detached child leads its own session and process group, as CRIU wants its dump root to.
      const child = spawn(file, argv, { cwd, detached: true, stdio: ['ignore', log.fd, log.fd], env });
      const [outcome] = (await Promise.race([once(child, 'spawn').then(() => ['spawned']), once(child, 'error')])) as [
        'spawned' | NodeJS.ErrnoException,
      ];
      if (outcome !== 'spawned') {
        throw torporFailure('WorkloadStartFailed', `Cannot start ${program}: ${outcome.code ?? outcome.message}`);
      }
      const pid = child.pid as number;
      exitCodes.set(pid, null);
      child.on('exit', (code, signal) => exitCodes.set(pid, code ?? (signal ? 128 : null)));
      child.unref();
      return pid;
    } finally {
      await log.close();
    }
  }

  return {
    /** Starts the checkpoint workload with the ChReK environment. A retry of the same run returns the same process. */
    async startWorkload(input: StartWorkloadInput): Promise<StartedWorkload> {
      const runId = Context.current().info.workflowExecution?.runId ?? '';
      const existing = await readRecord<WorkloadRecord>(recordFile(input.hash));
      if (existing?.runId === runId) {
        if (await isRunning(existing)) return { pid: existing.pid, logFile: existing.contract.logFile };
        throw await exitedFailure(existing, 'before it became ready');
      }
      if (existing) await terminateGroup(existing);
      const files = layout.workloadFiles(input.hash);
      await rm(layout.runDir(input.hash), { recursive: true, force: true });
      await rm(files.signalFile, { force: true });
      await mkdir(layout.runDir(input.hash), { recursive: true });
      await mkdir(path.dirname(files.signalFile), { recursive: true });
      const pid = await spawnWorkload(input, files);
      const id = await identify(pid);
      if (id === null) throw await exitedFailure({ ...input, pid, startTime: 0, runId, contract: files }, 'immediately');
      await writeRecord(recordFile(input.hash), { ...id, hash: input.hash, runId, workload: input.workload, contract: files });
      return { pid, logFile: files.logFile };
    },

    /** Waits for the ready file, heartbeating; fails fast when the workload exits instead. */
    async waitWorkloadReady({ hash, timeoutMs }: WaitInput): Promise<WaitedFor> {
      const record = await requireRecord(hash);
      const { waitedMs } = await pollUntil(
        'waiting-ready',
        timeoutMs,
        async () => {
          if (!(await isRunning(record))) throw await exitedFailure(record, 'before it became ready');
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
    },

    /** Writes the signal file the app waits for after its checkpoint (ChReK: checkpoint complete, exit). */
    async signalWorkload({ hash }: HashInput): Promise<void> {
      const record = await requireRecord(hash);
      await mkdir(path.dirname(record.contract.signalFile), { recursive: true });
      const handle = await open(record.contract.signalFile, 'w');
      await handle.writeFile(`${hash}\n`);
      await handle.close();
    },

    async waitWorkloadExit({ hash, timeoutMs }: WaitInput): Promise<WorkloadExit> {
      const record = await requireRecord(hash);
      const { value: exited, waitedMs } = await pollUntil(
        'waiting-exit',
        timeoutMs,
        async () => ((await isRunning(record)) ? undefined : true),
        async () => false,
      );
      return { exited, exitCode: exited ? (exitCodes.get(record.pid) ?? null) : null, waitedMs };
    },

    /** Stops the checkpoint workload if it still runs. Already gone is success. */
    async stopWorkload({ hash }: HashInput): Promise<{ stopped: boolean }> {
      const record = await readRecord<WorkloadRecord>(recordFile(hash));
      return { stopped: record !== null && (await terminateGroup(record)) };
    },

    /** Stops the workload if it still runs and removes its run files and signal file; its log stays for reading. */
    async cleanupWorkload({ hash }: HashInput): Promise<void> {
      const record = await readRecord<WorkloadRecord>(recordFile(hash));
      if (record === null) return;
      await terminateGroup(record);
      await rm(record.contract.signalFile, { force: true });
      const runDir = layout.runDir(hash);
      const keep = path.basename(record.contract.logFile);
      for (const entry of await readdir(runDir).catch(() => [])) {
        if (entry !== keep) await rm(path.join(runDir, entry), { recursive: true, force: true });
      }
    },
  };
}
