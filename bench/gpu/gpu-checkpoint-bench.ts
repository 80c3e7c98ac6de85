/**
 * Checkpoint and restore of an LLM-like GPU server with the node agent's own code: freezeGroup /
 * thawGroup over the CUDA driver API (libcuda through koffi), criuDumpArgs / criuRestoreArgs /
 * runCriu for CRIU. Runs where the GPU is (no Temporal needed); prints the table issue 6 asks for
 * and writes results.json beside it. Settings (environment):
 *   BENCH_WORK_DIR (.torpor/gpu-bench), BENCH_MODEL_DIR (<work>/model, made by make_model.py),
 *   BENCH_APP (command, default "python3 bench/gpu/llm_server.py"), TORPOR_CRIU (criu),
 *   TORPOR_LIBCUDA (libcuda.so.1), BENCH_DD_BYTES (4 GiB), BENCH_LOCK_TIMEOUT_MS (60000),
 *   BENCH_READY_TIMEOUT_MS (900000), BENCH_SECOND_COLD_START (unset: skip).
 */
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { criuDumpArgs, criuRestoreArgs } from '../../activities/node/criu/args.js';
import { runCriu } from '../../activities/node/criu/runner.js';
import { verifiedResumeGate } from '../../activities/node/criu/verified-resume.js';
import { freezeGroup, thawGroup } from '../../activities/node/gpu/gpu-group.js';
import { queryGpus, queryProcessGpuMemory } from '../../activities/node/gpu/gpu-info.js';
import { readGpuState } from '../../activities/node/gpu/gpu-steps.js';
import { loadLibcudaDriver } from '../../activities/node/gpu/libcuda-driver.js';
import { identify, isRunning, type ProcessIdentity, readProcStat } from '../../activities/node/proc/identity.js';
import { terminateGroup } from '../../activities/node/proc/terminate.js';
import { CHUNK_BYTES, digestChunks, digestThreads, verifyThreads } from '../../activities/node/store/chunk-digests.js';
import { directoryBytes, listFiles } from '../../activities/node/store/file-digests.js';
import { verifyContents } from '../../activities/node/store/verify-contents.js';
import type { NetworkPolicy } from '../../contract/network.js';
import type { CheckpointManifest, ManifestFile } from '../../contract/types.js';
import { type AppFiles, appFiles, dropPageCache, logTail, measureDisk, readJson, startApp, waitForFile } from './bench-host.js';
import { type BenchResults, formatTable, type Generation } from './bench-table.js';

const env = process.env;
const workDir = path.resolve(env.BENCH_WORK_DIR ?? '.torpor/gpu-bench');
const modelDir = path.resolve(env.BENCH_MODEL_DIR ?? path.join(workDir, 'model'));
const app = (env.BENCH_APP ?? 'python3 bench/gpu/llm_server.py').split(' ');
const criu = env.TORPOR_CRIU ?? 'criu';
const ddBytes = Number(env.BENCH_DD_BYTES ?? 4 * 2 ** 30);
const lockTimeoutMs = Number(env.BENCH_LOCK_TIMEOUT_MS ?? 60_000);
const readyTimeoutMs = Number(env.BENCH_READY_TIMEOUT_MS ?? 900_000);
// Measured on the GPU machine (MEASURED.md): what a python+torch process needs beside the defaults.
const CRIU_EXTRA = ['--ext-unix-sk'];
/** As the agent does by default: listeners kept, established connections closed; no iptables on the GPU machine. */
const NETWORK: NetworkPolicy = { established: 'close', lock: 'nftables' };
const HASH = 'gpu-bench';

/** Processes this run started or restored, stopped if it fails half way (they were started in their own sessions). */
const live = new Set<ProcessIdentity>();

const step = (message: string) => console.log(`[bench +${(performance.now() / 1000).toFixed(1)}s] ${message}`);

async function coldStart(runDir: string) {
  const files = appFiles(runDir);
  const pageCacheDropped = await dropPageCache();
  const started = performance.now();
  const id = await startApp(app, HASH, files, { BENCH_MODEL_DIR: modelDir });
  live.add(id);
  step(`app started, pid ${id.pid}`);
  await waitForFile(files.readyFile, id, readyTimeoutMs, files.logFile);
  return { id, files, coldStartMs: performance.now() - started, pageCacheDropped };
}

/** What a format 2 manifest holds of the images: enough for the agent's own verification. */
function chunkManifest(files: ManifestFile[]): CheckpointManifest {
  return { formatVersion: 2, chunkBytes: CHUNK_BYTES, files } as CheckpointManifest;
}

/**
 * CRIU restore as the agent runs it: every chunk verified on all cores while CRIU reads the same
 * files, the tree held at post-restore until the verdict.
 */
async function verifiedRestore(imagesDir: string, manifest: CheckpointManifest, files: AppFiles, name: string) {
  const restoreDir = path.join(workDir, 'run', name);
  await mkdir(restoreDir, { recursive: true });
  await writeFile(files.restoreMarkerFile, 'restored\n');
  const pidFile = path.join(restoreDir, 'pid');
  const gate = await verifiedResumeGate(restoreDir);
  const started = performance.now();
  const verification = verifyContents(imagesDir, manifest, () => undefined, verifyThreads()).then(async (problems) => {
    await gate.decide(problems.length === 0);
    return { problems, ms: performance.now() - started };
  });
  const log = await open(path.join(restoreDir, 'app.log'), 'a');
  const restoreArgs = criuRestoreArgs({
    imagesDir,
    workDir: restoreDir,
    pidFile,
    inherit: [{ fd: 3, dumpedPath: files.logFile }],
    network: NETWORK,
    extra: [...gate.args, ...CRIU_EXTRA],
  });
  const restore = await runCriu(criu, restoreArgs, {
    logFile: path.join(restoreDir, 'restore.log'),
    extraFds: [log.fd],
    env: gate.env,
  }).finally(() => log.close());
  const verified = await verification;
  if (verified.problems.length > 0) throw new Error(`the image does not match its digests: ${verified.problems.join('; ')}`);
  if (!restore.ok) throw new Error(`CRIU restore failed:\n${restore.excerpt}`);
  return { restore, verifyMs: verified.ms, pidFile, restoreDir };
}

async function report(results: BenchResults): Promise<void> {
  await writeFile(path.join(workDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const table = formatTable(results);
  await writeFile(path.join(workDir, 'table.txt'), `${table}\n`);
  console.log(table);
}

async function main(): Promise<void> {
  const driver = loadLibcudaDriver();
  if (driver === null) throw new Error('no CUDA driver (libcuda.so.1) on this machine; set TORPOR_LIBCUDA');
  await rm(path.join(workDir, 'run'), { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  const gpus = await queryGpus();
  step(`GPUs: ${JSON.stringify(gpus)}`);
  const disk = await measureDisk(workDir, ddBytes);
  step(`disk: ${JSON.stringify(disk)}`);

  const cold = await coldStart(path.join(workDir, 'run'));
  const { id, files } = cold;
  step(`ready after ${(cold.coldStartMs / 1000).toFixed(1)} s`);
  const init = await readJson<Record<string, unknown>>(path.join(files.outputDir, 'init.json')).catch(() => ({}));
  const before = await readJson<Generation>(path.join(files.outputDir, 'generation-before.json'));
  const processGpuMemoryBytes = await queryProcessGpuMemory(id.pid);

  const frozen = await freezeGroup(driver, [id.pid], lockTimeoutMs);
  step(`GPU frozen: ${JSON.stringify(frozen)}; nvidia-smi now: ${await queryProcessGpuMemory(id.pid)} bytes`);
  const dumpDir = path.join(workDir, 'run', 'checkpoint');
  const imagesDir = path.join(dumpDir, 'images');
  await mkdir(imagesDir, { recursive: true });
  const dumpArgs = criuDumpArgs({ pid: id.pid, imagesDir, workDir: dumpDir, network: NETWORK, extra: CRIU_EXTRA });
  const dump = await runCriu(criu, dumpArgs, { logFile: path.join(dumpDir, 'dump.log') });
  if (!dump.ok) throw new Error(`CRIU dump failed:\n${dump.excerpt}`);
  const imageBytes = await directoryBytes(imagesDir);
  step(`CRIU dump ${dump.durationMs} ms, ${imageBytes} bytes`);

  // What the agent's commit does: per-chunk sha256 of every image file, on one worker per core.
  const commitStarted = performance.now();
  const manifest = chunkManifest(await digestChunks(imagesDir, await listFiles(imagesDir), () => undefined));
  const commitMs = performance.now() - commitStarted;
  step(`commit digests ${commitMs.toFixed(0)} ms on ${digestThreads()} threads`);

  // The checkpointed PID must be free again: a restore keeps it.
  await terminateGroup(id, 2000);
  const restorePageCacheDropped = await dropPageCache();
  const restoreStarted = performance.now();
  const { restore, verifyMs, pidFile, restoreDir } = await verifiedRestore(imagesDir, manifest, files, 'restore');
  const restored = (await identify(Number((await readFile(pidFile, 'utf8')).trim()))) as ProcessIdentity;
  live.add(restored);
  step(`CRIU restore ${restore.durationMs} ms, pid ${restored.pid}, GPU state ${await readGpuState(driver, restored.pid)}`);
  const thawed = await thawGroup(driver, [restored.pid]);
  const restoreTotalMs = performance.now() - restoreStarted;
  step(`GPU thawed: ${JSON.stringify(thawed)}`);
  const afterFile = path.join(files.outputDir, 'generation-after.json');
  await waitForFile(afterFile, restored, 300_000, path.join(restoreDir, 'app.log'));
  const restoreToGenerationMs = performance.now() - restoreStarted;
  const after = await readJson<Generation>(afterFile);
  const restoredAlive = await isRunning(restored);
  await terminateGroup(restored, 2000);
  // A second replica on the same node: the image is in the page cache now. Its PID must be free
  // first (the host's init reaps the orphaned tree only after a while).
  for (let i = 0; i < 600 && (await readProcStat(restored.pid)) !== null; i++) await new Promise((r) => setTimeout(r, 50));
  const warm = await verifiedRestore(imagesDir, manifest, files, 'restore-warm');
  const warmPid = (await identify(Number((await readFile(warm.pidFile, 'utf8')).trim()))) as ProcessIdentity;
  live.add(warmPid);
  step(`warm CRIU restore ${warm.restore.durationMs} ms (verify ${warm.verifyMs.toFixed(0)} ms)`);
  await thawGroup(driver, [warmPid.pid]);
  await terminateGroup(warmPid, 2000);

  const results: BenchResults = {
    gpus,
    disk,
    coldStartMs: cold.coldStartMs,
    coldStartPageCacheDropped: cold.pageCacheDropped,
    secondColdStartMs: null,
    init,
    processGpuMemoryBytes,
    frozen,
    criuDumpMs: dump.durationMs,
    commitMs,
    imageBytes,
    verifyMs,
    warmCriuRestoreMs: warm.restore.durationMs,
    restorePageCacheDropped,
    criuRestoreMs: restore.durationMs,
    thawed,
    restoreTotalMs,
    restoreToGenerationMs,
    samePid: restored.pid === id.pid,
    restoredAlive,
    before,
    after,
  };
  await report(results);
  console.log(`app log tail:\n${await logTail(path.join(restoreDir, 'app.log'), 5)}`);
  // Last, so a run cut short by its time limit has already reported the checkpoint and restore.
  if (env.BENCH_SECOND_COLD_START) {
    const second = await coldStart(path.join(workDir, 'run', 'second'));
    await terminateGroup(second.id, 2000);
    await report({ ...results, secondColdStartMs: second.coldStartMs });
  }
}

main().catch(async (err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  for (const id of live) await terminateGroup(id, 1000);
  process.exit(1);
});
