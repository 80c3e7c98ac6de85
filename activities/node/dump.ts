import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { ChrekEnv } from '../../contract/chrek.js';
import { torporFailure } from '../../contract/failures.js';
import type { DumpInput, DumpResult } from '../../contract/types.js';
import type { NodeAgentConfig } from './agent-config.js';
import { criuDumpArgs } from './criu-args.js';
import { criuVersion, runCriu } from './criu-runner.js';
import { directoryBytes } from './file-digests.js';
import { activityRunOptions } from './heartbeat.js';
import { isRunning, readEnviron } from './process-identity.js';
import { readRecord, type WorkloadRecord, writeRecord } from './run-records.js';
import type { StoreLayout } from './store-layout.js';
import { killStrayCriu } from './stray-criu.js';

export function dumpActivities(config: NodeAgentConfig, layout: StoreLayout) {
  /** The agent checks the target itself: its own record, the same process, the same hash in its environment. */
  async function verifiedTarget(hash: string): Promise<WorkloadRecord> {
    const record = await readRecord<WorkloadRecord>(path.join(layout.runDir(hash), 'workload.json'));
    if (record === null) throw torporFailure('TargetNotAllowed', `No workload for checkpoint ${hash} was started by this agent`);
    if (!(await isRunning(record))) {
      throw torporFailure('WorkloadExited', `Workload ${hash} (pid ${record.pid}) exited before it could be dumped`);
    }
    const env = await readEnviron(record.pid).catch(() => ({}) as Record<string, string>);
    if (env[ChrekEnv.hash] !== hash) {
      throw torporFailure('TargetNotAllowed', `Process ${record.pid} is not the workload of checkpoint ${hash}`);
    }
    return record;
  }

  return {
    /**
     * Dumps the workload with CRIU into `<root>/.tmp/<dumpId>`, heartbeating bytes written. Whatever an
     * earlier, interrupted attempt left there is discarded first: a half-written dump is never reused.
     */
    async dumpWorkload({ hash, dumpId }: DumpInput): Promise<DumpResult> {
      const target = await verifiedTarget(hash);
      const tmp = layout.tmpDir(hash, dumpId);
      await killStrayCriu(tmp);
      await rm(layout.dumpRecord(hash, dumpId), { force: true });
      await rm(tmp, { recursive: true, force: true });
      const imagesDir = path.join(tmp, 'images');
      const workDir = path.join(tmp, 'logs');
      await mkdir(imagesDir, { recursive: true });
      await mkdir(workDir, { recursive: true });
      const args = criuDumpArgs({ pid: target.pid, imagesDir, workDir, extra: config.extraDumpArgs });
      const run = await runCriu(config.criuPath, args, {
        logFile: path.join(workDir, 'dump.log'),
        ...activityRunOptions(async () => ({ phase: 'dumping', bytes: await directoryBytes(imagesDir) })),
      });
      if (!run.ok) {
        if (!(await isRunning(target))) {
          throw torporFailure('WorkloadExited', `Workload ${hash} exited while CRIU was dumping it:\n${run.excerpt}`);
        }
        throw torporFailure('DumpFailed', `CRIU could not dump workload ${hash} (pid ${target.pid}):\n${run.excerpt}`, {
          criuLog: run.excerpt,
        });
      }
      const imageBytes = await directoryBytes(imagesDir);
      await writeRecord(layout.dumpRecord(hash, dumpId), {
        pid: target.pid,
        workload: target.workload,
        contract: target.contract,
        criuVersion: await criuVersion(config.criuPath),
        criuArgs: args,
        imageBytes,
        criuMs: run.durationMs,
      });
      return { dumpId, imageBytes, criuMs: run.durationMs };
    },
  };
}
