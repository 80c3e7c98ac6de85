import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { torporFailure } from '../../../contract/failures.js';
import { parseOrReject, readinessSchema } from '../../../contract/spec.js';
import type { CheckpointManifest, RestoredProcess, RestoredReadyInput, RestoreInput, WaitedFor } from '../../../contract/types.js';
import type { NodeAgentConfig } from '../agent-config.js';
import { criuRestoreArgs, restoreFailureHint } from '../criu/args.js';
import { runCriu } from '../criu/runner.js';
import { killStrayCriu } from '../criu/stray.js';
import { lanesBesideCriu, lanesOnceHeld, type VerifiedResumeGate, verifiedResumeGate } from '../criu/verified-resume.js';
import { type MappedFilesWarmth, warmthFigures } from '../criu/warm-mapped-files.js';
import { activityRunOptions, pollUntil } from '../heartbeat.js';
import { carriesHash, identify, isRunning, readComm, readProcStat } from '../proc/identity.js';
import { logTail } from '../proc/log-tail.js';
import { terminateWorkload } from '../proc/terminate.js';
import { writeFileAtomic } from '../store/file-digests.js';
import type { RestoreFiles, StoreLayout } from '../store/layout.js';
import { readCommitted, restoreNetworkPolicy } from '../store/manifest.js';
import { type RestoredRecord, readRecord, writeRecord } from '../store/run-records.js';
import { removeSignalFile } from '../store/signal-files.js';
import { verifyContents } from '../store/verify-contents.js';
import { probeOnce } from './readiness.js';
import { markerRunDir } from './run-dir.js';
import { localRuntimeOwner } from './runtime-switch.js';
import { assertInWorkloadCgroup, cgroupLauncher, createWorkloadCgroup, restoredCgroupName, stopWorkloadCgroup } from './workload-cgroup.js';

type RestoreRun = Required<Pick<RestoredProcess, 'criuMs' | 'verifiedBytes' | 'verifyLanes' | 'verifyDoneMs'>> &
  Pick<RestoredProcess, 'gateHeldMs' | 'mappedFilesWarmed' | 'warmedBytes' | 'warmMs' | 'warmSkipped'>;

/** What the verification beside CRIU has done so far. */
interface VerifyProgress {
  bytes: number;
  lanes: number;
  warmth?: MappedFilesWarmth;
}

/** A restore into a placeholder (container/) is recorded beside local ones: no local step acts on it. */
function refusePlaceholderRecord(record: RestoredRecord | null): void {
  if (record?.placeholderContainerId === undefined) return;
  throw torporFailure(
    'TargetNotAllowed',
    `Restore ${record.restoreId} of ${record.hash} is the restore into placeholder container ${record.placeholderContainerId}, not a local restore`,
  );
}

/** Local restores: CRIU brings the process back on this host, with its PID. */
class LocalRestores {
  constructor(
    private readonly config: NodeAgentConfig,
    private readonly layout: StoreLayout,
  ) {}

  private async requireRecord({ hash, restoreId }: RestoreInput): Promise<RestoredRecord> {
    const record = await readRecord<RestoredRecord>(this.layout.restoreFiles(hash, restoreId).record);
    if (record === null) throw torporFailure('TargetNotAllowed', `Restore ${restoreId} of ${hash} was not made by this agent`);
    refusePlaceholderRecord(record);
    return record;
  }

  /** CRIU wrote its pidfile, so the process it names is ours once its environment shows the hash. */
  private async adoptRestored(input: RestoreInput, logFile: string, criuMs: number): Promise<RestoredRecord> {
    const files = this.layout.restoreFiles(input.hash, input.restoreId);
    const pid = Number((await readFile(files.pidFile, 'utf8')).trim());
    const id = await identify(pid);
    if (id === null || !(await carriesHash(pid, input.hash))) {
      throw torporFailure('RestoreFailed', `CRIU reported pid ${pid} for ${input.hash}, but no such restored process runs`);
    }
    const record: RestoredRecord = { ...id, hash: input.hash, restoreId: input.restoreId, logFile, criuMs };
    await writeRecord(files.record, record);
    return record;
  }

  /** The committed checkpoint, once its PID is free: a local restore keeps the checkpointed PID. */
  private async restorable(hash: string): Promise<CheckpointManifest> {
    const manifest = await readCommitted(this.layout, hash);
    if (manifest === null) throw torporFailure('CheckpointNotFound', `No committed checkpoint ${hash} on node ${this.config.nodeName}`);
    if (manifest.runtime !== 'local') {
      throw torporFailure(
        'TargetNotAllowed',
        `Checkpoint ${hash} was taken with the ${manifest.runtime} runtime; a local restore brings back only local checkpoints (restore it with its own runtime)`,
      );
    }
    const { pid } = manifest.process;
    const holder = await readProcStat(pid);
    if (holder?.state === 'Z') {
      throw torporFailure('PidBusy', `PID ${pid} is still held by an exited process its parent has not reaped yet`);
    }
    if (holder) {
      throw torporFailure(
        'RestoreFailed',
        `PID ${pid} is in use (by ${await readComm(pid)}): a local restore keeps the checkpointed PID, so only one restored copy of ${hash} can run on a node at a time`,
      );
    }
    return manifest;
  }

  /**
   * Every byte of the checkpoint, hashed in parallel while CRIU reads the same files (one read from
   * storage, the other from the page cache); the verdict releases or kills the tree CRIU holds.
   */
  private async verifyWhileRestoring(manifest: CheckpointManifest, gate: VerifiedResumeGate, progress: VerifyProgress) {
    const dir = this.layout.checkpointDir(manifest.hash);
    const onBytes = (n: number) => {
      progress.bytes += n;
    };
    // Called before the first await: CRIU starts reading the same files right after this call.
    const lanes = await lanesBesideCriu(
      dir,
      manifest,
      manifest.files.map((f) => f.path),
      '/',
      progress,
    );
    const problems = await verifyContents(dir, manifest, onBytes, lanes, lanesOnceHeld(gate)).catch((err: unknown) => [
      `the files could not be read: ${(err as Error).message}`,
    ]);
    await gate.decide(problems.length === 0);
    return problems;
  }

  /**
   * Runs CRIU restore, detached, with a fresh log for the process, and holds the tree before it
   * resumes until the checkpoint's bytes are verified; undoes the marker and pidfile on failure.
   */
  private async runRestore(
    manifest: CheckpointManifest,
    files: RestoreFiles,
    marker: string,
    cgroup: { name: string; dirs: string[] },
  ): Promise<RestoreRun> {
    const gate = await verifiedResumeGate(files.dir);
    const progress: VerifyProgress = { bytes: 0, lanes: 0 };
    const started = Date.now();
    let verifyDoneMs = 0;
    const verification = this.verifyWhileRestoring(manifest, gate, progress).finally(() => {
      verifyDoneMs = Date.now() - started;
    });
    const log = await open(files.appLog, 'a', 0o600);
    const args = criuRestoreArgs({
      imagesDir: this.layout.imagesDir(manifest.hash),
      workDir: files.dir,
      pidFile: files.pidFile,
      // The path the process had its log open at: where this agent puts every local workload's log.
      inherit: [{ fd: 3, dumpedPath: this.layout.workloadFiles(manifest.hash).logFile }],
      network: restoreNetworkPolicy(manifest, this.config),
      extra: [...gate.args, ...this.config.extraRestoreArgs],
    });
    const run = await runCriu(this.config.criuPath, args, {
      logFile: files.criuLog,
      extraFds: [log.fd],
      orphanRestoredTree: true,
      // CRIU enters the restore's cgroup first, so the tree it forks is born there.
      launcher: cgroupLauncher(cgroup.dirs),
      env: gate.env,
      ...activityRunOptions(async () => ({ phase: 'restoring', verifiedBytes: progress.bytes })),
    }).finally(() => log.close());
    const problems = await verification;
    if (run.ok && problems.length === 0) {
      const held = await gate.heldAt();
      const gateHeldMs = held === undefined ? undefined : Math.max(0, Math.round(held - started));
      return {
        criuMs: run.durationMs,
        verifiedBytes: progress.bytes,
        verifyLanes: progress.lanes,
        verifyDoneMs,
        ...(gateHeldMs === undefined ? {} : { gateHeldMs }),
        ...warmthFigures(progress.warmth),
      };
    }
    await rm(marker, { force: true });
    await rm(files.pidFile, { force: true });
    await stopWorkloadCgroup(cgroup.name);
    if (problems.length > 0) {
      // CRIU killed the tree at the gate: nothing of it ran. Its restore directory goes too.
      await rm(files.dir, { recursive: true, force: true });
      throw torporFailure(
        'CheckpointCorrupt',
        `Checkpoint ${manifest.hash} does not match its manifest: ${problems.slice(0, 5).join('; ')}`,
        {
          problems,
        },
      );
    }
    const hint = restoreFailureHint(run.excerpt);
    throw torporFailure('RestoreFailed', `CRIU could not restore checkpoint ${manifest.hash}:\n${run.excerpt}${hint ? `\n${hint}` : ''}`, {
      criuLog: run.excerpt,
    });
  }

  /**
   * Restores a committed checkpoint with CRIU, detached: writes the restore marker where the app
   * looks for it first (ChReK's restore-entrypoint order), and gives the process a fresh log.
   * A retry after CRIU succeeded adopts the restored process instead of restoring twice.
   */
  async restore(input: RestoreInput): Promise<RestoredProcess> {
    localRuntimeOwner(this.config, 'restoreCheckpoint');
    const { hash, restoreId } = input;
    const files = this.layout.restoreFiles(hash, restoreId);
    const logFile = files.appLog;
    const previous = await readRecord<RestoredRecord>(files.record);
    refusePlaceholderRecord(previous);
    if (previous && (await isRunning(previous))) return { pid: previous.pid, logFile, criuMs: previous.criuMs };
    if (await stat(files.pidFile).catch(() => null)) return this.adoptRestored(input, logFile, 0);
    await killStrayCriu(files.dir);

    const manifest = await this.restorable(hash);
    await mkdir(files.dir, { recursive: true, mode: 0o700 });
    // Every path comes from the layout, never from manifest.json: the workload, or a container, chose those.
    const marker = this.layout.workloadFiles(hash).restoreMarkerFile;
    await markerRunDir(this.layout, hash);
    await removeSignalFile(this.layout, hash);
    await writeFileAtomic(marker, `${restoreId}\n`);
    const name = restoredCgroupName(hash, restoreId);
    const cgroup = { name, dirs: await createWorkloadCgroup(name) };
    const run = await this.runRestore(manifest, files, marker, cgroup);
    const record = await this.adoptRestored(input, logFile, run.criuMs);
    await assertInWorkloadCgroup(cgroup.dirs, record.pid, 'RestoreFailed');
    return { pid: record.pid, logFile, ...run };
  }

  /** Waits until the restored process passes its readiness probe, heartbeating; fails if it exits. */
  async waitReady(input: RestoredReadyInput): Promise<WaitedFor> {
    // The agent checks the probe itself: an http probe must stay on its own loopback.
    const owner = localRuntimeOwner(this.config, 'waitRestoredReady');
    const readiness = parseOrReject(readinessSchema, input.readiness, 'readiness probe');
    const record = await this.requireRecord(input);
    const { waitedMs } = await pollUntil(
      'waiting-restored-ready',
      input.timeoutMs,
      async () => {
        if (!(await isRunning(record))) {
          const tail = await logTail(record.logFile);
          throw torporFailure('WorkloadExited', `Restored ${input.hash} (pid ${record.pid}) exited. Log tail:\n${tail}`);
        }
        return (await probeOnce(readiness, owner)) ? true : undefined;
      },
      async () => {
        throw torporFailure('WorkloadNotReady', `Restored ${input.hash} did not pass its readiness probe within ${input.timeoutMs} ms`);
      },
    );
    return { waitedMs };
  }

  /** Stops a restored process (compensation, or a caller's stop). Already gone is success. */
  async stop(input: RestoreInput): Promise<{ stopped: boolean }> {
    // CRIU may have restored before the record was written: then its pidfile names the process.
    const record =
      (await readRecord<RestoredRecord>(this.layout.restoreFiles(input.hash, input.restoreId).record)) ??
      (await this.adoptRestored(input, '', 0).catch(() => null));
    // A tree restored into a placeholder is stopped by deleting its pod, never by a local step.
    if (record?.placeholderContainerId !== undefined) return { stopped: false };
    const killed = await stopWorkloadCgroup(restoredCgroupName(input.hash, input.restoreId));
    // A copy restored by an agent without workload cgroups runs outside one.
    const leader = record !== null && (await terminateWorkload(record, input.hash));
    const stopped = killed || leader;
    // The marker told that copy it was restored; a later copy gets a fresh one from its own restore.
    await rm(this.layout.workloadFiles(input.hash).restoreMarkerFile, { force: true });
    return { stopped };
  }
}

export function restoreActivities(config: NodeAgentConfig, layout: StoreLayout) {
  const restores = new LocalRestores(config, layout);
  return {
    restoreCheckpoint: (input: RestoreInput) => restores.restore(input),
    waitRestoredReady: (input: RestoredReadyInput) => restores.waitReady(input),
    stopRestored: (input: RestoreInput) => restores.stop(input),
  };
}
