import { randomUUID } from 'node:crypto';
import { mkdir, rename, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { HASH_PATTERN } from '../../../contract/spec.js';
import type { GarbageInput, GarbageReport } from '../../../contract/types.js';
import { isRunning } from '../proc/identity.js';
import { terminateGroup } from '../proc/terminate.js';
import type { StoreLayout } from './layout.js';
import { readRecord, type WorkloadRecord } from './run-records.js';
import { type CriuProcess, criuIn, criuProcesses, entries, liveUses, newestMtimeMs, removeTree, restoreUse } from './scan.js';

/**
 * Garbage collection on one node: what interrupted or abandoned steps left in the storage root.
 * - `.trash/*`: deletes that stopped half-way;
 * - `.tmp/*`: dumps never committed, untouched for `tmpMaxAgeMs` and with no CRIU working in them;
 * - `<hash>/` without its `checkpoint.done`, untouched for `tmpMaxAgeMs`: a commit never finished;
 * - `.restores/<hash>/<id>`: restores whose process is gone, untouched for `runMaxAgeMs`;
 * - `.runs/<hash>`: checkpoint workloads whose record is older than `runMaxAgeMs` (a workflow that
 *   old has ended, so a process still running is one a vanished agent left behind: it is stopped);
 * - signal files (`<signal dir>/<hash>.done`) of no running workload.
 * Anything a live process uses is left alone and reported as busy.
 */
export function garbageActivities(layout: StoreLayout) {
  const at = (...segments: string[]) => path.join(layout.root, ...segments);

  return {
    async collectGarbage({ tmpMaxAgeMs, runMaxAgeMs }: GarbageInput): Promise<GarbageReport> {
      const ctx = Context.current();
      const now = Date.now();
      const criu = await criuProcesses();
      const report: GarbageReport = { removed: [], stoppedWorkloads: [], busy: [], freedBytes: 0 };
      const quietFor = async (p: string) => now - (await newestMtimeMs(p));
      const remove = async (p: string) => {
        report.freedBytes += await removeTree(p);
        report.removed.push(path.relative(layout.root, p));
        ctx.heartbeat({ phase: 'collecting', removed: report.removed.length });
      };
      const sweep = async (p: string, maxAgeMs: number, busy?: CriuProcess) => {
        if (busy) report.busy.push(path.relative(layout.root, p));
        else if ((await quietFor(p)) >= maxAgeMs) await remove(p);
      };

      for (const entry of await entries(at('.trash'))) await remove(at('.trash', entry));
      for (const entry of await entries(at('.tmp'))) await sweep(at('.tmp', entry), tmpMaxAgeMs, criuIn(criu, at('.tmp', entry)));
      for (const hash of (await entries(layout.root)).filter((e) => HASH_PATTERN.test(e))) {
        if (await stat(layout.doneMarker(hash)).catch(() => null)) continue;
        if (criuIn(criu, layout.checkpointDir(hash)) || (await quietFor(layout.checkpointDir(hash))) < tmpMaxAgeMs) continue;
        // Out of place first, as a delete does: no reader may meet it half-removed.
        await mkdir(at('.trash'), { recursive: true });
        const trashed = at('.trash', `${hash}.${randomUUID().slice(0, 8)}`);
        await rename(layout.checkpointDir(hash), trashed);
        report.freedBytes += await removeTree(trashed);
        report.removed.push(hash);
      }
      for (const hash of await entries(at('.restores'))) {
        for (const restoreId of await entries(at('.restores', hash))) {
          const dir = at('.restores', hash, restoreId);
          if (await restoreUse(layout, hash, restoreId, criu)) report.busy.push(path.relative(layout.root, dir));
          else await sweep(dir, runMaxAgeMs);
        }
        await rmdir(at('.restores', hash)).catch(() => undefined);
      }
      for (const hash of (await entries(at('.runs'))).filter((e) => HASH_PATTERN.test(e))) {
        // A restored copy reads its restore marker from the run directory of its checkpoint.
        if ((await liveUses(layout, hash, criu)).length > 0) {
          report.busy.push(path.relative(layout.root, layout.runDir(hash)));
          continue;
        }
        const recordFile = path.join(layout.runDir(hash), 'workload.json');
        const record = await readRecord<WorkloadRecord>(recordFile).catch(() => null);
        const recordAge = now - ((await stat(recordFile).catch(() => null))?.mtimeMs ?? 0);
        if (record && (await isRunning(record))) {
          if (recordAge < runMaxAgeMs) {
            report.busy.push(path.relative(layout.root, layout.runDir(hash)));
            continue;
          }
          await terminateGroup(record);
          report.stoppedWorkloads.push(hash);
          await remove(layout.runDir(hash));
        } else {
          await sweep(layout.runDir(hash), runMaxAgeMs);
        }
      }
      for (const entry of await entries(layout.signalsDir())) {
        const hash = entry.replace(/\.done$/, '');
        const record = HASH_PATTERN.test(hash)
          ? await readRecord<WorkloadRecord>(path.join(layout.runDir(hash), 'workload.json')).catch(() => null)
          : null;
        if (record && (await isRunning(record))) continue;
        await sweep(path.join(layout.signalsDir(), entry), tmpMaxAgeMs);
      }
      return report;
    },
  };
}
