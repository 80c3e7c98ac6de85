/**
 * The shared store against the disk: upload and download GB/s of a real checkpoint to the local S3
 * server (SeaweedFS, as the tests run it) beside the disk's own sequential bandwidth (dd, direct
 * I/O, same run), and the restore workflow's wall time from object storage (node cache empty, page
 * cache dropped) versus from the node cache (page cache dropped).
 *   BENCH_TABLE_MB (256), BENCH_INIT_SECONDS (2); writes bench/results/object-store.md
 *   BENCH_SHARED=dir: the shared-filesystem backend instead (TORPOR_SHARED_DIR, a directory on the
 *   same disk here), written to bench/results/object-store-dir.md
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { readProcStat } from '../activities/node/proc/identity.js';
import { startLocalStack } from '../dev/local-stack.js';
import { sampleRestoredProbe, sampleWorkload } from '../sample-app/workload.js';
import { killCheckpointProcesses } from '../test/support/leftovers.js';
import { startS3Server } from '../test/support/s3-server.js';
import { dropPageCache, measureDisk } from './gpu/bench-host.js';

const DIR = fileURLToPath(new URL('../.torpor/bench/object-store/', import.meta.url));
const onDir = process.env.BENCH_SHARED === 'dir';
const RESULTS = fileURLToPath(new URL(onDir ? './results/object-store-dir.md' : './results/object-store.md', import.meta.url));
const tableMb = Number(process.env.BENCH_TABLE_MB ?? 256);
const initSeconds = Number(process.env.BENCH_INIT_SECONDS ?? 2);
const gbps = (bytes: number, ms: number) => (ms > 0 ? (bytes / 1e9 / (ms / 1000)).toFixed(2) : '-');
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Each activity of the workflows that took more than one attempt, with the failure before its last. */
async function retriedSteps(client: Client, workflowIds: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const id of workflowIds) {
    const history = await client.workflow.getHandle(id).fetchHistory();
    const names = new Map<string, string>();
    for (const e of history.events ?? []) {
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled) names.set(String(e.eventId), scheduled.activityType?.name ?? '?');
      const started = e.activityTaskStartedEventAttributes;
      if (started && (started.attempt ?? 1) > 1) {
        const step = names.get(String(started.scheduledEventId)) ?? '?';
        found.push(`${id} ${step}: attempt ${started.attempt} after "${started.lastFailure?.message ?? '?'}"`);
      }
    }
  }
  return found;
}

async function main(): Promise<void> {
  await rm(DIR, { recursive: true, force: true });
  await mkdir(DIR, { recursive: true });
  const s3 = onDir ? undefined : await startS3Server();
  Object.assign(process.env, s3 ? s3.agentEnv() : { TORPOR_SHARED_DIR: path.join(DIR, 'shared') });
  if (!s3) await mkdir(path.join(DIR, 'shared'));
  const stack = await startLocalStack({ storageRoot: path.join(DIR, 'store') });
  const statusFile = path.join(os.tmpdir(), `torpor-bench-object-store-${process.pid}.json`);
  const hash = `bench-s3-${Date.now().toString(36)}`;
  try {
    const disk = await measureDisk(DIR, 1 << 30);
    const workload = sampleWorkload({ tableMb, initSeconds, statusFile, env: {} });
    const checkpoint = await stack.torpor.checkpoint({ hash, node: stack.node, runtime: 'local', workload, sharedStore: true });
    const bytes = checkpoint.manifest.totalBytes;
    const restore = async (restoreId: string) => {
      const dropped = await dropPageCache();
      const started = Date.now();
      const result = await stack.torpor.restore({
        hash,
        node: stack.node,
        runtime: 'local',
        restoreId,
        sharedStore: true,
        readiness: sampleRestoredProbe(statusFile),
      });
      const wallMs = Date.now() - started;
      await killCheckpointProcesses(hash);
      // The next restore needs the PID free (reaped), or its first attempt is a PidBusy retry.
      for (let i = 0; i < 200 && (await readProcStat(result.pid)) !== null; i++) await sleep(50);
      return { wallMs, fetchMs: result.stepMs.fetching ?? 0, dropped };
    };
    // The node cache loses its copy: the next restore fetches it from the store.
    await rm(path.join(DIR, 'store', hash), { recursive: true, force: true });
    await rm(path.join(DIR, 'store', '.shared', `${hash}.json`), { force: true });
    const cold = await restore('cold');
    const cached = await restore('cached');
    const retries = await retriedSteps(stack.client, [`checkpoint/${hash}`, `restore/${hash}/cold`, `restore/${hash}/cached`]);
    const lines = [
      onDir
        ? '# Shared store (a shared directory, TORPOR_SHARED_DIR, on the same disk) against the disk'
        : '# Shared store (S3, SeaweedFS on loopback) against the disk',
      '',
      `Measured ${new Date().toISOString()} on ${os.cpus().length} cores; checkpoint ${(bytes / 2 ** 20).toFixed(1)} MiB (sample app, ${tableMb} MiB table); page cache dropped before each restore: ${cold.dropped}.`,
      '',
      '| what | time | GB/s |',
      '|---|---|---|',
      `| disk write (dd, direct, ${disk.bytes >> 20} MiB) | | ${(disk.writeBytesPerS / 1e9).toFixed(2)} |`,
      `| disk read (dd, direct) | | ${(disk.readBytesPerS / 1e9).toFixed(2)} |`,
      `| upload (uploadCheckpoint step) | ${s(checkpoint.stepMs.uploading ?? 0)} | ${gbps(bytes, checkpoint.stepMs.uploading ?? 0)} |`,
      `| download into the node cache (fetchCheckpoint step, cold) | ${s(cold.fetchMs)} | ${gbps(bytes, cold.fetchMs)} |`,
      `| restore workflow wall, from ${onDir ? 'the shared directory' : 'object storage'} (cold cache) | ${s(cold.wallMs)} | |`,
      `| restore workflow wall, from the node cache | ${s(cached.wallMs)} | |`,
      '',
      onDir
        ? 'The directory is on the same machine and disk as the node cache (no network filesystem): upload and download share that disk.'
        : 'The S3 server runs on the same machine and disk as the agent: upload and download share its cores and its disk.',
      `Steps that needed more than one attempt: ${retries.length === 0 ? 'none' : retries.join('; ')}.`,
    ];
    console.log(lines.join('\n'));
    await writeFile(RESULTS, `${lines.join('\n')}\n`);
  } finally {
    await killCheckpointProcesses(hash);
    await stack.stop();
    await s3?.stop();
    await rm(statusFile, { force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
