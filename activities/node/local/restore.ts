import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { execa } from 'execa';
import { ChrekEnv } from '../../../contract/chrek.js';
import { torporFailure } from '../../../contract/failures.js';
import { parseOrReject, type ReadinessProbe, readinessSchema } from '../../../contract/spec.js';
import type { RestoredProcess, RestoredReadyInput, RestoreInput, WaitedFor } from '../../../contract/types.js';
import type { NodeAgentConfig } from '../agent-config.js';
import { criuRestoreArgs } from '../criu/args.js';
import { runCriu } from '../criu/runner.js';
import { killStrayCriu } from '../criu/stray.js';
import { activityRunOptions } from '../heartbeat.js';
import { identify, isRunning, readComm, readEnviron, readProcStat } from '../proc/identity.js';
import { logTail } from '../proc/log-tail.js';
import { terminateGroup } from '../proc/terminate.js';
import { writeFileAtomic } from '../store/file-digests.js';
import type { StoreLayout } from '../store/layout.js';
import { parseManifest, restoreNetworkPolicy } from '../store/manifest.js';
import { type RestoredRecord, readRecord, writeRecord } from '../store/run-records.js';

const POLL_MS = 200;
const PROBE_TIMEOUT_MS = 10_000;

/** One GET against the agent's own loopback (the schema allows no other host); 2xx is ready. */
export async function httpProbe(probe: Extract<ReadinessProbe, { kind: 'http' }>): Promise<boolean> {
  const host = probe.host.includes(':') ? `[${probe.host}]` : probe.host;
  try {
    const response = await fetch(`http://${host}:${probe.port}${probe.path}`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

export function restoreActivities(config: NodeAgentConfig, layout: StoreLayout) {
  const recordFile = (hash: string, restoreId: string) => path.join(layout.restoreDir(hash, restoreId), 'restored.json');

  async function requireRecord({ hash, restoreId }: RestoreInput): Promise<RestoredRecord> {
    const record = await readRecord<RestoredRecord>(recordFile(hash, restoreId));
    if (record === null) throw torporFailure('TargetNotAllowed', `Restore ${restoreId} of ${hash} was not made by this agent`);
    return record;
  }

  /** CRIU wrote its pidfile, so the process it names is ours once its environment shows the hash. */
  async function adoptRestored(input: RestoreInput, pidFile: string, logFile: string, criuMs: number): Promise<RestoredRecord> {
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    const id = await identify(pid);
    const env = id ? await readEnviron(pid).catch(() => ({}) as Record<string, string>) : {};
    if (id === null || env[ChrekEnv.hash] !== input.hash) {
      throw torporFailure('RestoreFailed', `CRIU reported pid ${pid} for ${input.hash}, but no such restored process runs`);
    }
    const record: RestoredRecord = { ...id, hash: input.hash, restoreId: input.restoreId, logFile, criuMs };
    await writeRecord(recordFile(input.hash, input.restoreId), record);
    return record;
  }

  async function probeOnce(probe: ReadinessProbe): Promise<boolean> {
    if (probe.kind === 'process-alive') return true;
    if (probe.kind === 'http') return httpProbe(probe);
    const [program, ...args] = probe.command;
    const result = await execa(program as string, args, { reject: false, timeout: PROBE_TIMEOUT_MS, stdin: 'ignore' });
    return result.exitCode === 0;
  }

  return {
    /**
     * Restores a committed checkpoint with CRIU, detached: writes the restore marker where the app
     * looks for it first (ChReK's restore-entrypoint order), and gives the process a fresh log.
     * A retry after CRIU succeeded adopts the restored process instead of restoring twice.
     */
    async restoreCheckpoint(input: RestoreInput): Promise<RestoredProcess> {
      const { hash, restoreId } = input;
      const dir = layout.restoreDir(hash, restoreId);
      const pidFile = path.join(dir, 'pid');
      const logFile = path.join(dir, 'app.log');
      const previous = await readRecord<RestoredRecord>(recordFile(hash, restoreId));
      if (previous && (await isRunning(previous))) return { pid: previous.pid, logFile, criuMs: previous.criuMs };
      if (await stat(pidFile).catch(() => null)) return adoptRestored(input, pidFile, logFile, 0);
      await killStrayCriu(dir);

      const manifestText = await readFile(layout.manifestFile(hash), 'utf8').catch(() => null);
      if (manifestText === null || !(await stat(layout.doneMarker(hash)).catch(() => null))) {
        throw torporFailure('CheckpointNotFound', `No committed checkpoint ${hash} on node ${config.nodeName}`);
      }
      const manifest = parseManifest(manifestText);
      const network = restoreNetworkPolicy(manifest, config);
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
      await mkdir(dir, { recursive: true });
      const marker = manifest.contract.restoreMarkerFile;
      await mkdir(path.dirname(marker), { recursive: true });
      await rm(manifest.contract.signalFile, { force: true });
      await writeFileAtomic(marker, `${restoreId}\n`);

      const log = await open(logFile, 'a');
      const args = criuRestoreArgs({
        imagesDir: layout.imagesDir(hash),
        workDir: dir,
        pidFile,
        inherit: [{ fd: 3, dumpedPath: manifest.contract.logFile }],
        network,
        extra: config.extraRestoreArgs,
      });
      const run = await runCriu(config.criuPath, args, {
        logFile: path.join(dir, 'restore.log'),
        extraFds: [log.fd],
        orphanRestoredTree: true,
        ...activityRunOptions(async () => ({ phase: 'restoring' })),
      }).finally(() => log.close());
      if (!run.ok) {
        await rm(marker, { force: true });
        await rm(pidFile, { force: true });
        throw torporFailure('RestoreFailed', `CRIU could not restore checkpoint ${hash}:\n${run.excerpt}`, { criuLog: run.excerpt });
      }
      const record = await adoptRestored(input, pidFile, logFile, run.durationMs);
      return { pid: record.pid, logFile, criuMs: run.durationMs };
    },

    /** Waits until the restored process passes its readiness probe, heartbeating; fails if it exits. */
    async waitRestoredReady(input: RestoredReadyInput): Promise<WaitedFor> {
      // The agent checks the probe itself: an http probe must stay on its own loopback.
      const readiness = parseOrReject(readinessSchema, input.readiness, 'readiness probe');
      const record = await requireRecord(input);
      const ctx = Context.current();
      const started = Date.now();
      for (;;) {
        if (!(await isRunning(record))) {
          throw torporFailure(
            'WorkloadExited',
            `Restored ${input.hash} (pid ${record.pid}) exited. Log tail:\n${await logTail(record.logFile)}`,
          );
        }
        if (await probeOnce(readiness)) return { waitedMs: Date.now() - started };
        const waitedMs = Date.now() - started;
        if (waitedMs > input.timeoutMs) {
          throw torporFailure('WorkloadNotReady', `Restored ${input.hash} did not pass its readiness probe within ${input.timeoutMs} ms`);
        }
        ctx.heartbeat({ phase: 'waiting-restored-ready', waitedMs });
        await ctx.sleep(POLL_MS);
      }
    },

    /** Stops a restored process (compensation, or a caller's stop). Already gone is success. */
    async stopRestored(input: RestoreInput): Promise<{ stopped: boolean }> {
      const pidFile = path.join(layout.restoreDir(input.hash, input.restoreId), 'pid');
      // CRIU may have restored before the record was written: then its pidfile names the process.
      const record =
        (await readRecord<RestoredRecord>(recordFile(input.hash, input.restoreId))) ??
        (await adoptRestored(input, pidFile, '', 0).catch(() => null));
      const stopped = record !== null && (await terminateGroup(record));
      // The marker told that copy it was restored; a later copy gets a fresh one from its own restore.
      const manifest = await readFile(layout.manifestFile(input.hash), 'utf8').then(parseManifest, () => null);
      if (manifest) await rm(manifest.contract.restoreMarkerFile, { force: true });
      return { stopped };
    },
  };
}
