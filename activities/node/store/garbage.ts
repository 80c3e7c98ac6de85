import { lstat, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { HASH_PATTERN } from '../../../contract/spec.js';
import type { GarbageInput, GarbageReport } from '../../../contract/types.js';
import type { NodeAgentConfig } from '../agent-config.js';
import { stopWorkloadCgroup, workloadCgroupName } from '../local/workload-cgroup.js';
import { isRunning } from '../proc/identity.js';
import { terminateWorkload } from '../proc/terminate.js';
import { trashCheckpoint } from './catalog.js';
import type { StoreLayout } from './layout.js';
import { readRecord, type WorkloadRecord } from './run-records.js';
import { inVerifiedDir } from './safe-files.js';
import { type CriuProcess, criuIn, criuProcesses, entries, liveUses, newestMtimeMs, removeTree, restoreUse } from './scan.js';
import { openSharedStore } from './shared/open-store.js';
import { sweepOrphanChunks } from './shared/orphan-sweep.js';

/**
 * The least age, whatever the request says, before a dump, an uncommitted directory or a signal
 * file counts as abandoned: the schema allows 0, but a dump between CRIU and its commit, or a
 * checkpoint between its rename and its marker, is untouched for seconds and must not be trashed.
 */
export const GC_MIN_AGE_MS = 15 * 60 * 1000;

/** One collection: what it found, and the removals it makes, reported as it goes. */
class Sweep {
  readonly report: GarbageReport = { removed: [], stoppedWorkloads: [], busy: [], freedBytes: 0 };
  private readonly now = Date.now();

  readonly input: GarbageInput;

  constructor(
    private readonly layout: StoreLayout,
    input: GarbageInput,
    readonly criu: readonly CriuProcess[],
    minAgeMs: number,
  ) {
    this.input = { tmpMaxAgeMs: Math.max(input.tmpMaxAgeMs, minAgeMs), runMaxAgeMs: Math.max(input.runMaxAgeMs, minAgeMs) };
  }

  quietForMs = async (p: string) => this.now - (await newestMtimeMs(p));
  busy = (p: string) => this.report.busy.push(path.relative(this.layout.root, p));

  async remove(p: string, name = path.relative(this.layout.root, p)): Promise<void> {
    this.report.freedBytes += await removeTree(p);
    this.report.removed.push(name);
    Context.current().heartbeat({ phase: 'collecting', removed: this.report.removed.length });
  }

  /** Removes `p` once it has been untouched for `maxAgeMs`; a path CRIU works in is busy. */
  async removeWhenQuiet(p: string, maxAgeMs: number, criuInside?: CriuProcess): Promise<void> {
    if (criuInside) this.busy(p);
    else if ((await this.quietForMs(p)) >= maxAgeMs) await this.remove(p);
  }
}

/** Deletes that stopped half-way, and dumps never committed. */
async function sweepTrashAndTmp(layout: StoreLayout, sweep: Sweep): Promise<void> {
  for (const entry of await entries(layout.trashDir())) await sweep.remove(path.join(layout.trashDir(), entry));
  for (const entry of await entries(layout.tmpRoot())) {
    const p = path.join(layout.tmpRoot(), entry);
    await sweep.removeWhenQuiet(p, sweep.input.tmpMaxAgeMs, criuIn(sweep.criu, p));
  }
}

/** CRIU's work directories of restores into placeholders (`.container-work/restore-*`), once no CRIU works in them. */
async function sweepContainerWork(layout: StoreLayout, sweep: Sweep): Promise<void> {
  const root = layout.containerWorkRoot();
  for (const entry of (await entries(root)).filter((e) => e.startsWith('restore-'))) {
    const p = path.join(root, entry);
    await sweep.removeWhenQuiet(p, sweep.input.runMaxAgeMs, criuIn(sweep.criu, p));
  }
}

/** Checkpoint directories without their marker: a commit that never finished. */
async function sweepUncommitted(layout: StoreLayout, sweep: Sweep): Promise<void> {
  for (const hash of (await entries(layout.root)).filter((e) => HASH_PATTERN.test(e))) {
    const dir = layout.checkpointDir(hash);
    if (await lstat(layout.doneMarker(hash)).catch(() => null)) continue;
    if (criuIn(sweep.criu, dir) || (await sweep.quietForMs(dir)) < sweep.input.tmpMaxAgeMs) continue;
    // Out of place first, as a delete does: no reader may meet it half-removed.
    const trashed = await trashCheckpoint(layout, hash);
    if (trashed) await sweep.remove(trashed, hash);
  }
}

/** Restore directories whose process is gone. */
async function sweepRestores(layout: StoreLayout, sweep: Sweep): Promise<void> {
  for (const hash of await entries(layout.restoresRoot())) {
    const restores = path.join(layout.restoresRoot(), hash);
    for (const restoreId of await entries(restores)) {
      const dir = path.join(restores, restoreId);
      if (await restoreUse(layout, hash, restoreId, sweep.criu)) sweep.busy(dir);
      else await sweep.removeWhenQuiet(dir, sweep.input.runMaxAgeMs);
    }
    await rmdir(restores).catch(() => undefined);
  }
}

/** Run directories of checkpoint workloads; one still running past `runMaxAgeMs` was left by a vanished agent. */
async function sweepRuns(layout: StoreLayout, sweep: Sweep): Promise<void> {
  for (const hash of (await entries(layout.runsRoot())).filter((e) => HASH_PATTERN.test(e))) {
    const runDir = layout.runDir(hash);
    // A restored copy reads its restore marker from the run directory of its checkpoint.
    if ((await liveUses(layout, hash, sweep.criu)).length > 0) {
      sweep.busy(runDir);
      continue;
    }
    const recordFile = layout.workloadRecord(hash);
    const record = await readRecord<WorkloadRecord>(recordFile).catch(() => null);
    if (!record || !(await isRunning(record))) {
      await sweep.removeWhenQuiet(runDir, sweep.input.runMaxAgeMs);
    } else if ((await sweep.quietForMs(recordFile)) < sweep.input.runMaxAgeMs) {
      sweep.busy(runDir);
    } else {
      // Only while its environment still carries the hash: a record never makes the agent signal a stranger.
      await stopWorkloadCgroup(workloadCgroupName(hash));
      await terminateWorkload(record, hash);
      sweep.report.stoppedWorkloads.push(hash);
      await sweep.remove(runDir);
    }
  }
}

/** Signal files of workloads that no longer run. */
async function sweepSignals(layout: StoreLayout, sweep: Sweep): Promise<void> {
  // Listed through the verified directory: a signal directory that is a link is refused, not swept.
  const names = await inVerifiedDir(layout.signalsDir(), (d) => d.list()).catch((err) =>
    (err as NodeJS.ErrnoException).code === 'ENOENT' ? [] : Promise.reject(err),
  );
  for (const entry of names) {
    const hash = entry.replace(/\.done$/, '');
    const record = HASH_PATTERN.test(hash) ? await readRecord<WorkloadRecord>(layout.workloadRecord(hash)).catch(() => null) : null;
    if (record && (await isRunning(record))) continue;
    await sweep.removeWhenQuiet(path.join(layout.signalsDir(), entry), sweep.input.tmpMaxAgeMs);
  }
}

/**
 * Garbage collection on one node: what interrupted or abandoned steps left in the storage root.
 * - `.trash/*`: deletes that stopped half-way;
 * - `.tmp/*`: dumps never committed, untouched for `tmpMaxAgeMs` and with no CRIU working in them;
 * - `<hash>/` without its `checkpoint.done`, untouched for `tmpMaxAgeMs`: a commit never finished;
 * - `.restores/<hash>/<id>`: restores whose process is gone, untouched for `runMaxAgeMs`;
 * - `.runs/<hash>`: checkpoint workloads whose record is older than `runMaxAgeMs` (a workflow that
 *   old has ended, so a process still running is one a vanished agent left behind: it is stopped);
 * - `.container-work/restore-*`: CRIU's work directories of restores into placeholders, after `runMaxAgeMs`;
 * - signal files (`<signal dir>/<hash>.done`) of no running workload.
 * - with a shared store (`config`'s): its chunk objects no manifest names, written more than
 *   `tmpMaxAgeMs` ago and of no upload in progress (shared/orphan-sweep.ts), as `sharedOrphans`.
 * Anything a live process uses is left alone and reported as busy; no age is below `minAgeMs`.
 * Every walk and removal is lstat-based: a link a pod planted is removed as a link, never followed.
 */
export function garbageActivities(layout: StoreLayout, options: { minAgeMs?: number; config?: NodeAgentConfig } = {}) {
  const { minAgeMs = GC_MIN_AGE_MS, config } = options;
  return {
    async collectGarbage(input: GarbageInput): Promise<GarbageReport> {
      const sweep = new Sweep(layout, input, await criuProcesses(), minAgeMs);
      await sweepTrashAndTmp(layout, sweep);
      await sweepUncommitted(layout, sweep);
      await sweepRestores(layout, sweep);
      await sweepRuns(layout, sweep);
      await sweepContainerWork(layout, sweep);
      await sweepSignals(layout, sweep);
      const shared = config && openSharedStore(config, layout);
      if (config && shared) {
        const beat = () => Context.current().heartbeat({ phase: 'sweeping the shared store' });
        sweep.report.sharedOrphans = await sweepOrphanChunks(layout, shared.store, config.nodeName, sweep.input.tmpMaxAgeMs, beat);
      }
      return sweep.report;
    },
  };
}
