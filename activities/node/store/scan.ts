import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import type { CheckpointUse } from '../../../contract/types.js';
import { carriesHash, identify, isRunning } from '../proc/identity.js';
import type { RestoreFiles, StoreLayout } from './layout.js';
import { type RestoredRecord, readRecord } from './run-records.js';
import { removeTreeNoFollow } from './safe-files.js';

/** A CRIU process and the paths it names: its arguments, and for `criu swrk` (runc's RPC mode) its cwd and open files. */
export interface CriuProcess {
  pid: number;
  argv: string[];
}

/** runc drives CRIU over RPC (`criu swrk <fd>`): the directories come as open descriptors, not arguments. */
async function swrkPaths(pid: string): Promise<string[]> {
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => []);
  const targets = await Promise.all(
    [`/proc/${pid}/cwd`, ...fds.map((fd) => `/proc/${pid}/fd/${fd}`)].map((p) => readlink(p).catch(() => '')),
  );
  return targets.filter((t) => t.startsWith('/'));
}

/** Every CRIU process on the node, read once per activity from /proc. */
export async function criuProcesses(): Promise<CriuProcess[]> {
  const found: CriuProcess[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv: string[] = await readFile(`/proc/${entry}/cmdline`, 'utf8').then(
      (raw) => raw.split('\0').filter((a) => a !== ''),
      () => [],
    );
    if (!argv.some((a) => a === 'criu' || a.endsWith('/criu'))) continue;
    found.push({ pid: Number(entry), argv: argv.includes('swrk') ? [...argv, ...(await swrkPaths(entry))] : argv });
  }
  return found;
}

/** The CRIU process working in or on `dir`, if any. */
export function criuIn(criu: readonly CriuProcess[], dir: string): CriuProcess | undefined {
  return criu.find((c) => c.argv.some((a) => a === dir || a.startsWith(`${dir}/`)));
}

/** Directory entries, or none when the directory does not exist. */
export async function entries(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

/**
 * The restored copies of `hash` that still run (or that CRIU is restoring right now): a checkpoint
 * they use may not be deleted. Reads the agent's own records, and CRIU's pidfile where the agent
 * crashed before writing the record.
 */
export async function liveUses(layout: StoreLayout, hash: string, criu: readonly CriuProcess[]): Promise<CheckpointUse[]> {
  const uses: CheckpointUse[] = [];
  for (const restoreId of await entries(layout.restoresOf(hash))) {
    const use = await restoreUse(layout, hash, restoreId, criu);
    if (use) uses.push(use);
  }
  const restoring = criuIn(criu, layout.checkpointDir(hash));
  if (restoring && !uses.some((u) => u.pid === restoring.pid)) uses.push({ restoreId: '?', pid: restoring.pid, state: 'restoring' });
  return uses;
}

/** The live process of one restore directory, or null when nothing of it runs. */
export async function restoreUse(layout: StoreLayout, hash: string, restoreId: string, criu: readonly CriuProcess[]) {
  let files: RestoreFiles;
  try {
    files = layout.restoreFiles(hash, restoreId);
  } catch {
    return null;
  }
  const record = await readRecord<RestoredRecord>(files.record).catch(() => null);
  if (record && (await isRunning(record))) return { restoreId, pid: record.pid, state: 'running' } satisfies CheckpointUse;
  const busy = criuIn(criu, files.dir);
  if (busy) return { restoreId, pid: busy.pid, state: 'restoring' } satisfies CheckpointUse;
  if (record) return null;
  const pid = Number((await readFile(files.pidFile, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 0 || (await identify(pid)) === null) return null;
  return (await carriesHash(pid, hash)) ? ({ restoreId, pid, state: 'running' } satisfies CheckpointUse) : null;
}

/** The newest modification time below `p` (itself included), in ms; 0 when it is gone. Never walks through a link. */
export async function newestMtimeMs(p: string): Promise<number> {
  const own = await lstat(p).catch(() => null);
  if (own === null) return 0;
  let newest = own.mtimeMs;
  if (own.isDirectory()) {
    for (const child of await entries(p)) newest = Math.max(newest, await newestMtimeMs(path.join(p, child)));
  }
  return newest;
}

/** Bytes of the regular files below `p`, links not followed. */
export async function treeBytes(p: string): Promise<number> {
  const own = await lstat(p).catch(() => null);
  if (own === null) return 0;
  if (!own.isDirectory()) return own.isFile() ? own.size : 0;
  let total = 0;
  for (const child of await entries(p)) total += await treeBytes(path.join(p, child));
  return total;
}

/**
 * Removes `p` and everything below it; returns the bytes freed. Already gone is success. A link
 * (planted by a pod in the signal directory or the store) is removed as a link, never followed.
 */
export async function removeTree(p: string, onBytes: (n: number) => void = () => undefined): Promise<number> {
  return removeTreeNoFollow(p, onBytes);
}
