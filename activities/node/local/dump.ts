import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { torporFailure } from '../../../contract/failures.js';
import { ESTABLISHED_POLICIES, type EstablishedPolicy, type NetworkPolicy } from '../../../contract/network.js';
import type { DumpResult, DumpWorkloadInput } from '../../../contract/types.js';
import type { NodeAgentConfig } from '../agent-config.js';
import { criuDumpArgs } from '../criu/args.js';
import { criuVersion, runCriu } from '../criu/runner.js';
import { killStrayCriu } from '../criu/stray.js';
import { activityRunOptions } from '../heartbeat.js';
import { carriesHash, ioUringHolders, isRunning } from '../proc/identity.js';
import { hashWhileDumping } from '../store/criu-page-digests.js';
import { directoryBytes, pathExists } from '../store/file-digests.js';
import type { StoreLayout } from '../store/layout.js';
import { type DumpRecord, readRecord, type WorkloadRecord, writeRecord } from '../store/run-records.js';
import { withWriteBehind } from '../store/write-behind.js';

const RLIMIT_HINT =
  'CRIU needs CAP_SYS_RESOURCE to read the resource limits of a process of another user (TORPOR_LOCAL_UID): ' +
  'run the node agent with that capability (a privileged DaemonSet has it).';

/** The dump's network policy; the agent checks the value itself rather than trusting the workflow's validation. */
export function dumpNetworkPolicy(established: unknown, config: Pick<NodeAgentConfig, 'networkLock'>): NetworkPolicy {
  const value = established ?? 'close';
  if (!(ESTABLISHED_POLICIES as readonly unknown[]).includes(value)) {
    throw torporFailure('InvalidSpec', `network.established must be "close" or "keep", not ${JSON.stringify(value)}`);
  }
  return { established: value as EstablishedPolicy, lock: config.networkLock };
}

/** The agent checks the target itself: its own record, the same process, the same hash in its environment. */
async function verifiedTarget(layout: StoreLayout, hash: string): Promise<WorkloadRecord> {
  const record = await readRecord<WorkloadRecord>(layout.workloadRecord(hash));
  if (record === null) throw torporFailure('TargetNotAllowed', `No workload for checkpoint ${hash} was started by this agent`);
  if (!(await isRunning(record))) {
    throw torporFailure('WorkloadExited', `Workload ${hash} (pid ${record.pid}) exited before it could be dumped`);
  }
  if (!(await carriesHash(record.pid, hash))) {
    throw torporFailure('TargetNotAllowed', `Process ${record.pid} is not the workload of checkpoint ${hash}`);
  }
  const uring = await ioUringHolders(record.pid);
  if (uring.length > 0) {
    throw torporFailure(
      'DumpFailed',
      `Workload ${hash} cannot be checkpointed: process ${uring.join(', ')} holds an io_uring instance, which CRIU cannot save. ` +
        'libuv (Node.js, uvloop) opens one on every event loop: start the node agent with torpor-no-io-uring on PATH ' +
        '(or TORPOR_WORKLOAD_LAUNCHER pointing at it) so that workloads run with io_uring refused and use epoll.',
    );
  }
  return record;
}

/**
 * Dumps the workload with CRIU into `<root>/.tmp/<dumpId>`, heartbeating bytes written. Whatever an
 * earlier, interrupted attempt left there is discarded first: a half-written dump is never reused.
 * A finished one (its record is written last) is returned as it is: with `keep`, the dump ended the
 * original, so a retry could not dump it again.
 */
async function dumpWorkload(
  config: NodeAgentConfig,
  layout: StoreLayout,
  { hash, dumpId, established }: DumpWorkloadInput,
): Promise<DumpResult> {
  const network = dumpNetworkPolicy(established, config);
  const files = layout.dumpFiles(hash, dumpId);
  const finished = await readRecord<DumpRecord>(files.record);
  if (finished) return { dumpId, imageBytes: finished.imageBytes, criuMs: finished.criuMs };
  const target = await verifiedTarget(layout, hash);
  // A CRIU left by an earlier attempt works in a directory that exists; a first attempt skips the /proc scan.
  if (await pathExists(files.dir)) await killStrayCriu(files.dir);
  await rm(files.dir, { recursive: true, force: true });
  await mkdir(files.imagesDir, { recursive: true });
  await mkdir(files.logsDir, { recursive: true });
  const args = criuDumpArgs({
    pid: target.pid,
    imagesDir: files.imagesDir,
    workDir: files.logsDir,
    network,
    extra: config.extraDumpArgs,
  });
  const hashing = {
    criuPath: config.criuPath,
    stagingDir: files.dir,
    imagesDir: files.imagesDir,
    digestsDir: path.join(files.logsDir, 'page-digests'),
    chunkBytes: config.digestChunkBytes,
  };
  const { value: run, prehashed } = await hashWhileDumping(hashing, (env) =>
    withWriteBehind(files.imagesDir, () =>
      runCriu(config.criuPath, args, {
        logFile: files.criuLog,
        env,
        ...activityRunOptions(async () => ({ phase: 'dumping', bytes: await directoryBytes(files.imagesDir) })),
      }),
    ),
  );
  if (!run.ok) {
    if (!(await isRunning(target))) {
      throw torporFailure('WorkloadExited', `Workload ${hash} exited while CRIU was dumping it:\n${run.excerpt}`);
    }
    const why = run.excerpt.includes("Can't get rlimit") ? `\n${RLIMIT_HINT}` : '';
    throw torporFailure('DumpFailed', `CRIU could not dump workload ${hash} (pid ${target.pid}):\n${run.excerpt}${why}`, {
      criuLog: run.excerpt,
    });
  }
  const imageBytes = await directoryBytes(files.imagesDir);
  const record: DumpRecord = {
    pid: target.pid,
    workload: target.workload,
    contract: target.contract,
    criuVersion: await criuVersion(config.criuPath),
    criuArgs: args,
    imageBytes,
    criuMs: run.durationMs,
    network,
    ...(prehashed ? { prehashed } : {}),
  };
  await writeRecord(files.record, record);
  return { dumpId, imageBytes, criuMs: run.durationMs };
}

export function dumpActivities(config: NodeAgentConfig, layout: StoreLayout) {
  return { dumpWorkload: (input: DumpWorkloadInput) => dumpWorkload(config, layout, input) };
}
