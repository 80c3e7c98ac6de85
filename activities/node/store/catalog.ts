import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { torporFailure } from '../../../contract/failures.js';
import { workloadNameOf } from '../../../contract/retention.js';
import { HASH_PATTERN } from '../../../contract/spec.js';
import type {
  CheckpointInfo,
  CheckpointManifest,
  CheckpointSummary,
  CheckpointUse,
  HashInput,
  RemovedCheckpoint,
} from '../../../contract/types.js';
import type { NodeAgentConfig } from '../agent-config.js';
import { byteHeartbeat } from '../heartbeat.js';
import { isRunning } from '../proc/identity.js';
import { fsyncPath } from './file-digests.js';
import type { StoreLayout } from './layout.js';
import { readCommitted } from './manifest.js';
import { readRecord, type WorkloadRecord } from './run-records.js';
import { type CriuProcess, criuProcesses, entries, liveUses, removeTree, restoreUse } from './scan.js';
import { openSharedStore, type SharedStore } from './shared/open-store.js';
import { deleteShared, describeShared, leaseUses, listShared, markCached, type SharedEntry } from './shared/shared-catalog.js';
import { removeSignalFile } from './signal-files.js';

export function summarize(manifest: CheckpointManifest, usedBy: CheckpointUse[]): CheckpointSummary {
  const gpu = manifest.gpu;
  return {
    hash: manifest.hash,
    node: manifest.node,
    name: workloadNameOf(manifest.hash),
    createdAt: manifest.createdAt,
    totalBytes: manifest.totalBytes,
    fileCount: manifest.files.length,
    command: manifest.workload.command,
    gpu: gpu ? `${gpu.gpus.map((g) => g.name).join(', ')} (driver ${gpu.driverVersion})` : null,
    usedBy,
  };
}

/**
 * Retention's node side: list the committed checkpoints with what uses them, describe one, and
 * delete one. A delete renames the checkpoint out of place first (one atomic step, so no reader ever
 * sees a half-deleted checkpoint with its marker) and then removes it; one a running restore uses
 * is refused with CheckpointInUse.
 */
/**
 * Moves checkpoint directory `hash` out of place into the trash in one rename, so no reader ever
 * sees a half-deleted checkpoint with its marker; returns where it went, or null when it was gone.
 */
export async function trashCheckpoint(layout: StoreLayout, hash: string): Promise<string | null> {
  await mkdir(layout.trashDir(), { recursive: true, mode: 0o700 });
  const trashed = path.join(layout.trashDir(), `${hash}.${randomUUID().slice(0, 8)}`);
  try {
    await rename(layout.checkpointDir(hash), trashed);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  await fsyncPath(layout.root);
  return trashed;
}

/**
 * A checkpoint as this node sees it: its own copy (`local`, with the restores that use it here)
 * and, with a shared store, the store's entry (other nodes' leases, the caches that hold it).
 */
function merged(node: string, local: CheckpointInfo | null, shared: SharedEntry | null | undefined): CheckpointInfo | null {
  const manifest = local?.manifest ?? shared?.manifest;
  if (!manifest) return null;
  const usedBy = [...(local?.summary.usedBy ?? []), ...leaseUses(shared?.leases ?? [], node)];
  const summary = summarize(manifest, usedBy);
  if (shared === undefined) return { summary, manifest };
  const nodeCaches = new Set([...(shared?.nodeCaches ?? []), ...(local ? [node] : [])]);
  return { summary: { ...summary, location: { shared: shared !== null, nodeCaches: [...nodeCaches].sort() } }, manifest };
}

export function retentionActivities(config: NodeAgentConfig, layout: StoreLayout) {
  const shared: SharedStore | undefined = openSharedStore(config, layout);

  async function localInfo(hash: string, criu: readonly CriuProcess[]): Promise<CheckpointInfo | null> {
    // An unreadable manifest is listed as nothing here; verify and restore report it as corrupt.
    const manifest = await readCommitted(layout, hash).catch(() => null);
    return manifest && { summary: summarize(manifest, await liveUses(layout, hash, criu)), manifest };
  }

  async function info(hash: string, criu: readonly CriuProcess[]): Promise<CheckpointInfo | null> {
    const entry = shared && (await describeShared(layout, shared.store, hash));
    return merged(config.nodeName, await localInfo(hash, criu), entry);
  }

  /** The shared side of a delete, after this node's own uses were looked at: refused while another node's lease lives. */
  async function removeShared(hash: string): Promise<Pick<RemovedCheckpoint, 'shared'>> {
    if (!shared) return {};
    const removal = await deleteShared(shared.store, hash);
    await markCached(shared.store, hash, config.nodeName, false);
    return { shared: removal };
  }

  /** After the checkpoint is gone: the files of restores that no longer run, and of a workload that no longer runs. */
  async function removeLeftovers(hash: string, criu: readonly CriuProcess[]): Promise<void> {
    const restores = layout.restoresOf(hash);
    for (const restoreId of await entries(restores)) {
      if ((await restoreUse(layout, hash, restoreId, criu)) === null) await removeTree(path.join(restores, restoreId));
    }
    // Only once empty: a restore still running keeps its directory.
    await rmdir(restores).catch(() => undefined);
    await rm(layout.sharedRecord(hash), { force: true });
    const workload = await readRecord<WorkloadRecord>(layout.workloadRecord(hash)).catch(() => null);
    if (workload === null || !(await isRunning(workload))) {
      await removeTree(layout.runDir(hash));
      await removeSignalFile(layout, hash);
    }
  }

  return {
    /** Every committed checkpoint on this node and in the shared store (newest first) with the restores and leases that use it. */
    async listCommitted(_: Record<string, never> = {}): Promise<CheckpointSummary[]> {
      const criu = await criuProcesses();
      const inShared = new Map((shared ? await listShared(layout, shared.store) : []).map((e) => [e.manifest.hash, e]));
      const hashes = new Set([...(await entries(layout.root)).filter((e) => HASH_PATTERN.test(e)), ...inShared.keys()]);
      const found: CheckpointSummary[] = [];
      for (const hash of hashes) {
        const described = merged(config.nodeName, await localInfo(hash, criu), shared ? (inShared.get(hash) ?? null) : undefined);
        if (described) found.push(described.summary);
      }
      return found.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
    },

    /** The committed checkpoint `hash` with its manifest and users, or null. */
    async describeCheckpoint({ hash }: HashInput): Promise<CheckpointInfo | null> {
      layout.checkpointDir(hash);
      return info(hash, await criuProcesses());
    },

    /**
     * Deletes checkpoint `hash` (committed or left incomplete) here and, with a shared store, there
     * (never while another node's lease lives). Already gone is success (`removed: false`).
     */
    async removeCheckpoint({ hash }: HashInput): Promise<RemovedCheckpoint> {
      layout.checkpointDir(hash);
      const criu = await criuProcesses();
      const uses = await liveUses(layout, hash, criu);
      if (uses.length > 0) {
        const by = uses.map((u) => `restore ${u.restoreId} (pid ${u.pid}, ${u.state})`).join(', ');
        throw torporFailure('CheckpointInUse', `Checkpoint ${hash} on node ${config.nodeName} is used by ${by}`, { usedBy: uses });
      }
      // The shared copy first: refused there, the local copy stays too.
      const removedShared = await removeShared(hash);
      const trashed = await trashCheckpoint(layout, hash);
      const beat = byteHeartbeat('deleting');
      const freedBytes = trashed ? await removeTree(trashed, beat.add) : 0;
      await removeLeftovers(hash, criu);
      const removed = trashed !== null || removedShared.shared?.manifestRemoved === true;
      return { hash, node: config.nodeName, removed, freedBytes, ...removedShared };
    },
  };
}
