import path from 'node:path';
import { CHECKPOINT_DONE_MARKER, IMAGES_DIR, MANIFEST_FILE } from '../../../contract/chrek.js';
import { torporFailure } from '../../../contract/failures.js';
import { HASH_PATTERN } from '../../../contract/spec.js';
import type { WorkloadContractFiles } from '../../../contract/types.js';

/** Beside manifest.json: its MAC. Not a file of the manifest's own list. */
export const MANIFEST_MAC_FILE = 'manifest.hmac';

const DUMP_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}\.[a-z0-9-]{1,40}$/;

/** The files a restore keeps in `.restores/<hash>/<restoreId>/`. */
export interface RestoreFiles {
  dir: string;
  /** `restored.json`: the process the restore brought back (a RestoredRecord). */
  record: string;
  /** CRIU's --pidfile: the restored process's PID, written before the record. */
  pidFile: string;
  /** The restored process's fresh stdout and stderr. */
  appLog: string;
  /** CRIU's restore log (its --log-file inside its --work-dir, `dir`). */
  criuLog: string;
  /** The GPU state the restore thawed (gpu/). */
  gpuRecord: string;
}

/** The files of a dump in `.tmp/<dumpId>/` while it is written, before the commit renames it into place. */
export interface DumpFiles {
  dir: string;
  imagesDir: string;
  /** CRIU's --work-dir, with its dump.log. */
  logsDir: string;
  criuLog: string;
  /** `.tmp/<dumpId>.json`: written when CRIU finished, read by the commit. */
  record: string;
}

/**
 * Where everything lives under the agent's storage root: every on-disk path of the agent comes from
 * here. Committed checkpoints sit at `<root>/<hash>` (ChReK's layout); Torpor's own files use
 * dot-directories, which no valid hash can name. Every path is built from validated names and
 * checked to stay inside the root.
 */
export class StoreLayout {
  constructor(
    readonly root: string,
    private readonly signalDir?: string,
    private readonly keyFile?: string,
  ) {}

  /**
   * The key the agent MACs every manifest with (TORPOR_MANIFEST_KEY_FILE). Absent, the agent makes
   * one at `<root>/.keys/manifest.key` on first use: no per-hash mount of a pod reaches it.
   */
  manifestKeyFile(): { file: string; generate: boolean } {
    return this.keyFile ? { file: this.keyFile, generate: false } : { file: this.inside('.keys', 'manifest.key'), generate: true };
  }

  checkpointDir(hash: string): string {
    return this.inside(checkHash(hash));
  }
  imagesDir(hash: string): string {
    return path.join(this.checkpointDir(hash), IMAGES_DIR);
  }
  manifestFile(hash: string): string {
    return path.join(this.checkpointDir(hash), MANIFEST_FILE);
  }
  /** `<hash>/manifest.hmac`: HMAC-SHA256 of the manifest with the agent's key (manifest-mac.ts). */
  manifestMacFile(hash: string): string {
    return path.join(this.checkpointDir(hash), MANIFEST_MAC_FILE);
  }
  doneMarker(hash: string): string {
    return path.join(this.checkpointDir(hash), CHECKPOINT_DONE_MARKER);
  }

  tmpDir(hash: string, dumpId: string): string {
    checkHash(hash);
    if (!DUMP_ID_PATTERN.test(dumpId) || !dumpId.startsWith(`${hash}.`)) {
      throw torporFailure('TargetNotAllowed', `Dump id "${dumpId}" does not belong to checkpoint ${hash}`);
    }
    return this.inside('.tmp', dumpId);
  }
  dumpRecord(hash: string, dumpId: string): string {
    return `${this.tmpDir(hash, dumpId)}.json`;
  }
  dumpFiles(hash: string, dumpId: string): DumpFiles {
    const dir = this.tmpDir(hash, dumpId);
    const logsDir = path.join(dir, 'logs');
    return {
      dir,
      imagesDir: path.join(dir, IMAGES_DIR),
      logsDir,
      criuLog: path.join(logsDir, 'dump.log'),
      record: this.dumpRecord(hash, dumpId),
    };
  }
  tmpRoot(): string {
    return this.inside('.tmp');
  }
  /** `.tmp/<hash>.fetch/`: a download from the shared store, renamed into place when whole (store/shared/). */
  fetchDir(hash: string): string {
    return this.tmpDir(hash, `${checkHash(hash)}.fetch`);
  }
  /**
   * `.shared/<hash>.json`: this node's copy of `hash` is also in the shared store (uploaded or
   * fetched), so the node cache may evict it; its mtime is the copy's last use (LRU).
   */
  sharedRecord(hash: string): string {
    return this.inside('.shared', `${checkHash(hash)}.json`);
  }
  sharedRecordsRoot(): string {
    return this.inside('.shared');
  }
  /** CRIU's work directories of restores into placeholders (`restore-<container>-<random>`). */
  containerWorkRoot(): string {
    return this.inside('.container-work');
  }
  /** Checkpoints being deleted: renamed here in one step, then removed. */
  trashDir(): string {
    return this.inside('.trash');
  }

  /** Files of the checkpoint workload: ready file, log, process record, restore marker. */
  runDir(hash: string): string {
    return this.inside('.runs', checkHash(hash));
  }
  runsRoot(): string {
    return this.inside('.runs');
  }
  /** The ChReK files of a local checkpoint workload: in its run directory, the signal file in the signal directory. */
  workloadFiles(hash: string): WorkloadContractFiles {
    const run = this.runDir(hash);
    return {
      // `app/` is the one directory the workload's (non-root) user owns; the rest of the run directory is the agent's.
      readyFile: path.join(run, 'app', 'ready'),
      signalFile: this.signalFile(hash),
      restoreMarkerFile: path.join(run, 'restored'),
      logFile: path.join(run, 'workload.log'),
      location: this.checkpointDir(hash),
    };
  }
  /** `.runs/<hash>/workload.json`: the checkpoint workload this agent started (a WorkloadRecord). */
  workloadRecord(hash: string): string {
    return path.join(this.runDir(hash), 'workload.json');
  }
  /** `.runs/<hash>/gpu.json`: the GPU state of the checkpoint workload (gpu/). */
  workloadGpuRecord(hash: string): string {
    return path.join(this.runDir(hash), 'gpu.json');
  }
  signalFile(hash: string): string {
    return path.join(this.signalsDir(), `${checkHash(hash)}.done`);
  }
  signalsDir(): string {
    return this.signalDir ?? this.inside('.signals');
  }
  restoreDir(hash: string, restoreId: string): string {
    return this.inside('.restores', checkHash(hash), checkHash(restoreId));
  }
  /** `.restores/<hash>`: one directory per restore of that checkpoint. */
  restoresOf(hash: string): string {
    return this.inside('.restores', checkHash(hash));
  }
  restoresRoot(): string {
    return this.inside('.restores');
  }
  restoreFiles(hash: string, restoreId: string): RestoreFiles {
    const dir = this.restoreDir(hash, restoreId);
    return {
      dir,
      record: path.join(dir, 'restored.json'),
      pidFile: path.join(dir, 'pid'),
      appLog: path.join(dir, 'app.log'),
      criuLog: path.join(dir, 'restore.log'),
      gpuRecord: path.join(dir, 'gpu.json'),
    };
  }

  private inside(...segments: string[]): string {
    const resolved = path.resolve(this.root, ...segments);
    const rel = path.relative(this.root, resolved);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
      throw torporFailure('TargetNotAllowed', `Path ${resolved} is outside the storage root ${this.root}`);
    }
    return resolved;
  }
}

/** The agent re-checks every name itself; a workflow's validation is not trusted. */
export function checkHash(hash: string): string {
  if (typeof hash !== 'string' || !HASH_PATTERN.test(hash)) {
    throw torporFailure('TargetNotAllowed', `"${String(hash)}" is not a valid checkpoint hash (^[a-z0-9][a-z0-9-]{0,62}$)`);
  }
  return hash;
}
