import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { identify, isRunning, type ProcessIdentity } from '../../activities/node/proc/identity.js';

/** Host-side helpers of the GPU benchmark: the disk, the page cache, the app process. */

export interface DiskBandwidth {
  bytes: number;
  writeBytesPerS: number;
  readBytesPerS: number;
}

/** dd parses its own summary: "... bytes (...) copied, 3.2 s, 1.2 GB/s". */
function ddSeconds(stderr: string): number {
  const match = /copied, ([\d.]+) s/.exec(stderr);
  if (!match?.[1]) throw new Error(`unexpected dd output: ${stderr}`);
  return Number(match[1]);
}

/** Sequential write and read of `bytes` with direct I/O, so neither is served by the page cache. */
export async function measureDisk(dir: string, bytes: number): Promise<DiskBandwidth> {
  const file = path.join(dir, 'dd-probe.bin');
  const blocks = Math.max(1, Math.round(bytes / (16 << 20)));
  const write = await execa('dd', ['if=/dev/zero', `of=${file}`, 'bs=16M', `count=${blocks}`, 'oflag=direct', 'conv=fsync']);
  const read = await execa('dd', [`if=${file}`, 'of=/dev/null', 'bs=16M', 'iflag=direct']);
  await rm(file, { force: true });
  const total = blocks * (16 << 20);
  return { bytes: total, writeBytesPerS: total / ddSeconds(write.stderr), readBytesPerS: total / ddSeconds(read.stderr) };
}

export interface ImageRead {
  bytes: number;
  bytesPerS: number;
  files: number;
}

/**
 * A checkpoint's pages images read back from a cold page cache, one after another, in buffered
 * 64 MiB reads: the sequential read bandwidth of the very bytes a restore reads, where dd's probe
 * (a file it has just written) may be served faster than an image written minutes before.
 * Null where the checkpoint has no pages image or the page cache cannot be dropped.
 */
export async function readImageBack(checkpointDir: string, files: string[]): Promise<ImageRead | null> {
  const pages = files.filter((f) => /^pages-\d+\.img$/.test(path.basename(f)));
  if (pages.length === 0 || !(await dropPageCache())) return null;
  let bytes = 0;
  let seconds = 0;
  for (const file of pages) {
    const full = path.join(checkpointDir, file);
    const read = await execa('dd', [`if=${full}`, 'of=/dev/null', 'bs=64M']);
    bytes += (await stat(full)).size;
    seconds += ddSeconds(read.stderr);
  }
  return { bytes, bytesPerS: bytes / seconds, files: pages.length };
}

/** Empties the page cache so what follows reads from the disk; false where the kernel refuses. */
export async function dropPageCache(): Promise<boolean> {
  await execa('sync');
  return writeFile('/proc/sys/vm/drop_caches', '3\n').then(
    () => true,
    () => false,
  );
}

export interface AppFiles {
  readyFile: string;
  signalFile: string;
  restoreMarkerFile: string;
  logFile: string;
  outputDir: string;
}

export function appFiles(runDir: string): AppFiles {
  return {
    readyFile: path.join(runDir, 'ready'),
    signalFile: path.join(runDir, 'signal'),
    restoreMarkerFile: path.join(runDir, 'restored'),
    logFile: path.join(runDir, 'app.log'),
    outputDir: runDir,
  };
}

/**
 * Starts the app as the local runtime does: its own session (CRIU dumps the tree it leads), stdin
 * /dev/null, output to a log file, the ChReK variables in its environment.
 */
export async function startApp(command: string[], hash: string, files: AppFiles, env: Record<string, string>): Promise<ProcessIdentity> {
  await mkdir(files.outputDir, { recursive: true });
  for (const f of [files.readyFile, files.signalFile, files.restoreMarkerFile]) await rm(f, { force: true });
  const log = await open(files.logFile, 'a');
  const [program, ...args] = command;
  const child = spawn(program as string, args, {
    detached: true,
    stdio: ['ignore', log.fd, log.fd],
    env: {
      ...process.env,
      ...env,
      DYN_CHECKPOINT_SIGNAL_FILE: files.signalFile,
      DYN_CHECKPOINT_READY_FILE: files.readyFile,
      DYN_CHECKPOINT_HASH: hash,
      DYN_CHECKPOINT_LOCATION: files.outputDir,
      DYN_CHECKPOINT_STORAGE_TYPE: 'pvc',
      DYN_RESTORE_MARKER_FILE: files.restoreMarkerFile,
      BENCH_OUTPUT_DIR: files.outputDir,
    },
  });
  child.unref();
  await log.close();
  const id = child.pid === undefined ? null : await identify(child.pid);
  if (id === null) throw new Error(`${program} did not start: ${await logTail(files.logFile)}`);
  return id;
}

export async function logTail(file: string, lines = 30): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').slice(-lines).join('\n');
}

/** Polls for `file` while `id` runs; the benchmark is a program, not an activity, so it may poll. */
export async function waitForFile(file: string, id: ProcessIdentity, timeoutMs: number, logFile: string): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await stat(file).catch(() => null)) return performance.now() - started;
    if (!(await isRunning(id))) throw new Error(`pid ${id.pid} exited before writing ${file}. Log tail:\n${await logTail(logFile)}`);
    if (performance.now() - started > timeoutMs) throw new Error(`no ${file} within ${timeoutMs} ms. Log tail:\n${await logTail(logFile)}`);
    await sleep(50);
  }
}

export async function readJson<T>(file: string): Promise<T> {
  return JSON.parse(await readFile(file, 'utf8')) as T;
}
