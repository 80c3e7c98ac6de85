import { chmod, chown, lstat, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { LocalRuntimeConfig } from '../agent-config.js';
import type { StoreLayout } from '../store/layout.js';

/** Lets others pass through `dir` (o+x) without listing it: the workload's user must reach its own files. */
async function letPass(dir: string): Promise<void> {
  const { mode } = await lstat(dir);
  if ((mode & 0o011) !== 0o011) await chmod(dir, (mode & 0o7777) | 0o011);
}

/**
 * A fresh run directory for checkpoint `hash`: the agent's (0711: its records stay 0600, the
 * restore marker is read by name), holding the one directory the workload's user owns and writes
 * (0700), where its ready file goes.
 */
export async function freshRunDir(layout: StoreLayout, hash: string, owner: LocalRuntimeConfig): Promise<void> {
  const runDir = layout.runDir(hash);
  await rm(runDir, { recursive: true, force: true });
  await mkdir(runDir, { recursive: true, mode: 0o711 });
  for (const dir of [layout.root, layout.runsRoot(), runDir]) await letPass(dir);
  const appDir = path.dirname(layout.workloadFiles(hash).readyFile);
  await mkdir(appDir, { mode: 0o700 });
  await chown(appDir, owner.uid, owner.gid);
}

/** The run directory a restore writes its marker into, passable for the restored process's user. */
export async function markerRunDir(layout: StoreLayout, hash: string): Promise<void> {
  const runDir = layout.runDir(hash);
  await mkdir(runDir, { recursive: true, mode: 0o711 });
  for (const dir of [layout.root, layout.runsRoot(), runDir]) await letPass(dir);
}
