import { constants, open, rename, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { CHECKPOINT_DONE_MARKER } from '../../../contract/chrek.js';
import { torporFailure } from '../../../contract/failures.js';
import type { CheckpointManifest, CommitInput, HashInput, ManifestFile, VerifiedCheckpoint, VerifyInput } from '../../../contract/types.js';
import type { NodeAgentConfig } from '../agent-config.js';
import { byteHeartbeat } from '../heartbeat.js';
import { digestChunks } from './chunk-digests.js';
import { fsyncPath, pathExists, writeFileAtomic } from './file-digests.js';
import { trustedPrehashed } from './hash-behind.js';
import type { StoreLayout } from './layout.js';
import { readCommitted, totalBytes } from './manifest.js';
import { readAuthenticManifest, writeManifest } from './manifest-mac.js';
import { type DumpRecord, readRecord, removeRecord } from './run-records.js';
import { removeTree } from './scan.js';
import { checkpointFiles, fileMismatches, verifyContents } from './verify-contents.js';

/** Every image file reaches the disk before the manifest and marker say the checkpoint is whole. */
async function syncFiles(dir: string, rels: string[]): Promise<void> {
  const dirs = new Set([dir, ...rels.map((rel) => path.dirname(path.join(dir, rel)))]);
  for (const p of [...rels.map((rel) => path.join(dir, rel)), ...dirs]) {
    const handle = await open(p, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

/** A bounded list for failure details: a payload must stay small however many files differ. */
export function boundedProblems(problems: string[]): { problems: string[]; problemCount: number } {
  return {
    problems: problems.slice(0, MAX_PROBLEMS).map((p) => (p.length > 300 ? `${p.slice(0, 300)}...` : p)),
    problemCount: problems.length,
  };
}
const MAX_PROBLEMS = 20;

/** Hashes every file below `dir` (except the manifest and marker) and compares with `manifest`. */
async function mismatchesOnDisk(dir: string, manifest: CheckpointManifest, phase: string): Promise<{ problems: string[]; bytes: number }> {
  const beat = byteHeartbeat(phase);
  return { problems: await verifyContents(dir, manifest, beat.add), bytes: beat.bytes };
}

/** The cheap half of a verification: the same files with the same sizes (a restore hashes the bytes). */
async function sizeMismatches(dir: string, manifest: CheckpointManifest): Promise<string[]> {
  const rels = await checkpointFiles(dir);
  const onDisk = await Promise.all(rels.map(async (rel) => ({ path: rel, sizeBytes: (await stat(path.join(dir, rel))).size })));
  return fileMismatches(manifest.files, onDisk);
}

/** The manifest of a finished dump: what it is, every file's size and sha256, tools and timings. */
export function buildManifest(
  input: CommitInput,
  dump: DumpRecord,
  files: ManifestFile[],
  node: {
    nodeName: string;
    torporVersion: string;
    kernel: string;
    nodeVersion: string;
    createdAt: string;
    commitMs: number;
    chunkBytes: number;
    hashedWhileDumpingBytes: number;
  },
): CheckpointManifest {
  return {
    formatVersion: 2,
    chunkBytes: node.chunkBytes,
    hash: input.hash,
    node: node.nodeName,
    runtime: dump.runtime ?? 'local',
    createdAt: node.createdAt,
    workload: dump.workload,
    contract: dump.contract,
    process: { pid: dump.pid },
    files,
    totalBytes: totalBytes(files),
    tools: { criu: dump.criuVersion, kernel: node.kernel, node: node.nodeVersion, torpor: node.torporVersion },
    timings: {
      startToReadyMs: input.startToReadyMs,
      dumpMs: input.dumpMs,
      commitMs: node.commitMs,
      hashedWhileDumpingBytes: node.hashedWhileDumpingBytes,
    },
    criu: { dumpArgs: dump.criuArgs },
    gpu: input.gpu,
    network: dump.network,
  };
}

/** Commit, find and verify: the steps that make a dump a checkpoint and check one before use. */
class CheckpointStore {
  constructor(
    private readonly config: NodeAgentConfig,
    private readonly layout: StoreLayout,
  ) {}

  /** The marker last; its temporary file goes to `.tmp`, so a crash leaves nothing in the checkpoint directory. */
  private async writeMarker(hash: string, manifest: CheckpointManifest): Promise<void> {
    await writeFileAtomic(this.layout.doneMarker(hash), `${manifest.createdAt}\n`, { tmpDir: this.layout.tmpRoot(), mode: 0o644 });
  }

  /** A rename that crashed before its marker: finish it if the files are intact, else remove it. */
  private async finishInterruptedCommit(hash: string): Promise<CheckpointManifest | null> {
    const dir = this.layout.checkpointDir(hash);
    if (!(await pathExists(dir))) return null;
    try {
      const manifest = await readAuthenticManifest(this.layout, hash);
      if ((await mismatchesOnDisk(dir, manifest, 'rechecking')).problems.length === 0) {
        await this.writeMarker(hash, manifest);
        return manifest;
      }
    } catch {
      // unreadable or unauthentic manifest: fall through and discard the directory
    }
    await removeTree(dir);
    return null;
  }

  /**
   * Turns a finished dump into a committed checkpoint: digests, manifest, atomic rename, marker last.
   * Idempotent: a second call for a committed hash returns the committed manifest.
   */
  async commit(input: CommitInput): Promise<CheckpointManifest> {
    const { config, layout } = this;
    const started = Date.now();
    const committed = (await readCommitted(layout, input.hash)) ?? (await this.finishInterruptedCommit(input.hash));
    if (committed) return committed;
    const tmp = layout.tmpDir(input.hash, input.dumpId);
    const dump = await readRecord<DumpRecord>(layout.dumpRecord(input.hash, input.dumpId));
    if (dump === null) {
      throw torporFailure('DumpFailed', `No finished dump ${input.dumpId} to commit for ${input.hash}; the dump must run again`);
    }
    const beat = byteHeartbeat('committing');
    const rels = await checkpointFiles(tmp);
    const known = await trustedPrehashed(tmp, dump.prehashed, config.digestChunkBytes);
    // Hashing reads the page cache CRIU just filled while the flush goes to the disk: both at once.
    const [files] = await Promise.all([
      digestChunks(tmp, rels, beat.add, { chunkBytes: config.digestChunkBytes, known }),
      syncFiles(tmp, rels),
    ]);
    const manifest = buildManifest(input, dump, files, {
      nodeName: config.nodeName,
      torporVersion: config.torporVersion,
      kernel: os.release(),
      nodeVersion: process.version,
      createdAt: new Date().toISOString(),
      commitMs: Date.now() - started,
      chunkBytes: config.digestChunkBytes,
      hashedWhileDumpingBytes: files.reduce(
        (sum, f) => sum + Math.min(f.sizeBytes, (known.get(f.path)?.length ?? 0) * config.digestChunkBytes),
        0,
      ),
    });
    await writeManifest(layout, tmp, manifest);
    await rename(tmp, layout.checkpointDir(input.hash));
    await fsyncPath(config.storageRoot);
    await this.writeMarker(input.hash, manifest);
    await removeRecord(layout.dumpRecord(input.hash, input.dumpId));
    return manifest;
  }

  /** Removes a dump that was never committed. Already gone is success. */
  async discard(input: { hash: string; dumpId: string }): Promise<void> {
    await removeTree(this.layout.tmpDir(input.hash, input.dumpId));
    await removeRecord(this.layout.dumpRecord(input.hash, input.dumpId));
  }

  /** Checks the marker and every file's size and sha256 (or, `at-restore`, its size) before anything is restored from it. */
  async verify({ hash, contents = 'now' }: VerifyInput): Promise<VerifiedCheckpoint> {
    const started = Date.now();
    const dir = this.layout.checkpointDir(hash);
    if (!(await pathExists(dir))) {
      throw torporFailure('CheckpointNotFound', `No checkpoint ${hash} on node ${this.config.nodeName}`);
    }
    if (!(await pathExists(this.layout.doneMarker(hash)))) {
      throw torporFailure('CheckpointCorrupt', `Checkpoint ${hash} has no ${CHECKPOINT_DONE_MARKER} marker: it was never completed`);
    }
    const manifest = await readAuthenticManifest(this.layout, hash).catch((err: Error) => {
      if (err instanceof ApplicationFailure) throw err;
      throw torporFailure('CheckpointCorrupt', `Checkpoint ${hash} has an unreadable manifest: ${err.message}`);
    });
    const { problems, bytes } =
      contents === 'at-restore'
        ? { problems: await sizeMismatches(dir, manifest), bytes: 0 }
        : await mismatchesOnDisk(dir, manifest, 'verifying');
    if (problems.length > 0) {
      throw torporFailure(
        'CheckpointCorrupt',
        `Checkpoint ${hash} does not match its manifest: ${problems.slice(0, 5).join('; ')}`,
        boundedProblems(problems),
      );
    }
    return { manifest, verifiedBytes: bytes, verifyMs: Date.now() - started };
  }
}

export function checkpointStoreActivities(config: NodeAgentConfig, layout: StoreLayout) {
  const store = new CheckpointStore(config, layout);
  return {
    /** The committed checkpoint for `hash`, or null. Never returns one without its marker. */
    findCheckpoint: ({ hash }: HashInput) => readCommitted(layout, hash),
    commitCheckpoint: (input: CommitInput) => store.commit(input),
    discardDump: (input: { hash: string; dumpId: string }) => store.discard(input),
    verifyCheckpoint: (input: VerifyInput) => store.verify(input),
  };
}
