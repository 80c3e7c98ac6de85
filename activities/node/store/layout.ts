import path from 'node:path';
import { CHECKPOINT_DONE_MARKER, IMAGES_DIR, MANIFEST_FILE } from '../../../contract/chrek.js';
import { torporFailure } from '../../../contract/failures.js';
import { HASH_PATTERN } from '../../../contract/spec.js';

const DUMP_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}\.[a-z0-9-]{1,40}$/;

/**
 * Where everything lives under the agent's storage root. Committed checkpoints sit at `<root>/<hash>`
 * (ChReK's layout); Torpor's own files use dot-directories, which no valid hash can name.
 * Every path is built from validated names and checked to stay inside the root.
 */
export class StoreLayout {
  constructor(
    readonly root: string,
    private readonly signalDir?: string,
  ) {}

  checkpointDir(hash: string): string {
    return this.inside(checkHash(hash));
  }
  imagesDir(hash: string): string {
    return path.join(this.checkpointDir(hash), IMAGES_DIR);
  }
  manifestFile(hash: string): string {
    return path.join(this.checkpointDir(hash), MANIFEST_FILE);
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
  tmpRoot(): string {
    return this.inside('.tmp');
  }

  /** Files of the checkpoint workload: ready file, log, process record, restore marker. */
  runDir(hash: string): string {
    return this.inside('.runs', checkHash(hash));
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
