/**
 * The real checkpoint and restore workflows on the GPU machine, through the typed client, against
 * a Temporal dev server, the control worker and the node agent that bench/gpu/device-workflows.sh
 * starts there. Phases (BENCH_PHASES, default "local,container"): `local`, the local runtime with
 * the LLM-shaped server (flow-local.ts); `container`, a runc container holding the GPU, restored
 * into a placeholder container (flow-container.ts); `tp2`, a TP=2 NCCL job (launcher + 2 ranks,
 * bench/gpu/tp2/) restored onto the same and onto swapped GPUs (flow-tp2.ts). Prints the per-step table and writes
 * flow-results.json and flow-table.txt to BENCH_OUT. Settings: TEMPORAL_ADDRESS, NODE_NAME,
 * TORPOR_PAYLOAD_KEY_FILE, the app's (flow-app.ts) and the container phase's (flow-container.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { queryGpus } from '../../activities/node/gpu/gpu-info.js';
import { TorporClient, torporDataConverter } from '../../client/index.js';
import { normalizeNodeName } from '../../workers/node-agent-config.js';
import { measureDisk } from './bench-host.js';
import { appSetupFromEnv, step } from './flow-app.js';
import { runContainerPhase } from './flow-container.js';
import { containerSetupFromEnv } from './flow-container-setup.js';
import { runLocalPhase } from './flow-local.js';
import { type FlowResults, formatFlowTable } from './flow-table.js';
import { runTp2Phase } from './flow-tp2.js';
import { formatTp2Table, tp2Succeeded } from './flow-tp2-table.js';

const env = process.env;
const outDir = path.resolve(env.BENCH_OUT ?? '.');

async function cgroupVersion(): Promise<string> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  return /\s\/sys\/fs\/cgroup\s+cgroup2\s/.test(mounts) ? 'cgroup v2' : 'cgroup v1';
}

const failure = (err: unknown) => ({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) });

async function report(results: FlowResults): Promise<void> {
  await writeFile(path.join(outDir, 'flow-results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const table = results.tp2 ? `${formatFlowTable(results)}\n${formatTp2Table(results.tp2)}` : formatFlowTable(results);
  await writeFile(path.join(outDir, 'flow-table.txt'), `${table}\n`);
  console.log(table);
}

async function main(): Promise<number> {
  const phases = (env.BENCH_PHASES ?? 'local,container').split(',').map((p) => p.trim());
  const node = normalizeNodeName(env.NODE_NAME ?? os.hostname());
  const connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS ?? 'localhost:7233' });
  const client = new Client({ connection, namespace: env.TEMPORAL_NAMESPACE ?? 'default', dataConverter: torporDataConverter() });
  const torpor = new TorporClient(client);
  const results: FlowResults = {
    machine: { gpus: await queryGpus(), cgroup: await cgroupVersion(), kernel: os.release(), dryRun: Boolean(env.DRY_RUN) },
  };
  step(`node ${node}; ${results.machine.cgroup}; GPUs ${JSON.stringify(results.machine.gpus.gpus.map((g) => g.uuid))}`);
  // The storage bounds of issue 16 use the disk's bandwidth measured in the same run, where the store is.
  const diskDir = env.BENCH_DISK_DIR ?? env.TORPOR_STORAGE_ROOT ?? os.tmpdir();
  results.machine.disk = await measureDisk(diskDir, Number(env.BENCH_DISK_BYTES ?? 4e9));
  step(
    `disk (dd, direct I/O) in ${diskDir}: write ${(results.machine.disk.writeBytesPerS / 1e9).toFixed(2)} GB/s, read ${(results.machine.disk.readBytesPerS / 1e9).toFixed(2)} GB/s`,
  );
  const app = appSetupFromEnv();
  if (phases.includes('local')) {
    results.local = await runLocalPhase(torpor, node, app).catch(failure);
    await report(results);
  }
  if (phases.includes('container')) {
    results.container = await runContainerPhase(torpor, node, app, containerSetupFromEnv(results.machine.gpus)).catch(failure);
    await report(results);
  }
  if (phases.includes('tp2')) {
    results.tp2 = await runTp2Phase(torpor, node, app, (partial) => report({ ...results, tp2: partial })).catch(failure);
    await report(results);
  }
  await connection.close();
  const failed =
    [results.local, results.container].some((r) => r !== undefined && ('error' in r || !r.identical)) ||
    (results.tp2 !== undefined && !tp2Succeeded(results.tp2));
  for (const [name, r] of Object.entries({ local: results.local, container: results.container, tp2: results.tp2 })) {
    if (r && 'error' in r) console.error(`${name} phase failed:\n${r.error}`);
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
