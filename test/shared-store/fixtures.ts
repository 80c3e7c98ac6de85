import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, inject } from 'vitest';
import type { NodeAgentConfig } from '../../activities/node/agent-config.js';
import { digestChunks } from '../../activities/node/store/chunk-digests.js';
import { StoreLayout } from '../../activities/node/store/layout.js';
import { totalBytes } from '../../activities/node/store/manifest.js';
import { writeManifest } from '../../activities/node/store/manifest-mac.js';
import { sharedStoreActivities } from '../../activities/node/store/shared/index.js';
import { openSharedStore } from '../../activities/node/store/shared/open-store.js';
import type { CheckpointManifest, CheckpointResult } from '../../contract/types.js';
import { readSampleStatus, type SampleStatus, sampleRestoredProbe } from '../../sample-app/workload.js';
import { nodeAgentConfigFromEnv } from '../../workers/node-agent-config.js';
import { testAgentConfig } from '../support/agent-config.js';
import { killCheckpointProcesses, processesOfCheckpoint } from '../support/leftovers.js';
import { type S3Server, startS3Server } from '../support/s3-server.js';
import { testSample } from '../support/sample.js';
import { startTorpor, type TorporHarness } from '../support/torpor-harness.js';
import { type OtherNodeAgent, startOtherNodeAgent } from './other-node-agent.js';

export const CHUNK = 1 << 20;

/** Node A (the harness: Temporal workers and its agent) and node B (a second agent with its own NODE_NAME and store). */
export interface TwoNodes {
  a: TorporHarness;
  b: OtherNodeAgent;
  nodeB: string;
  /** Node B's own local store. */
  bStore: string;
  keyFile: string;
  /** The agents' common environment: the shared store's, the manifest key, 1 MiB digest chunks. */
  env: Record<string, string>;
  /** The sample app checkpointed on node A and uploaded; its processes are killed by `stop`. */
  checkpointSample(): Promise<SharedSample>;
  /** Stops both agents and removes node B's store and the key; the shared store is the caller's. */
  stop(): Promise<void>;
}

export interface SharedSample {
  sample: ReturnType<typeof testSample>;
  checkpointed: CheckpointResult;
  /** The sample's status when it was checkpointed: a restore must show the same memory. */
  atCheckpoint: SampleStatus;
}

/** Restores the sample on node B, whose cache lacks it, from the shared store: the same memory, fetched, running. */
export async function restoreSampleOnB({ a, nodeB, bStore }: TwoNodes, { sample, atCheckpoint }: SharedSample) {
  expect(await readdir(bStore)).not.toContain(sample.hash);
  const restored = await a.torpor.restore({
    hash: sample.hash,
    node: nodeB,
    runtime: 'local',
    sharedStore: true,
    readiness: sampleRestoredProbe(sample.options.statusFile),
  });
  const status = await readSampleStatus(sample.options.statusFile);
  expect(status).toMatchObject({ phase: 'restored', checksum: atCheckpoint.checksum, instance: atCheckpoint.instance });
  expect(restored.stepMs).toHaveProperty('fetching');
  expect(await processesOfCheckpoint(sample.hash)).toEqual([restored.pid]);
  return restored;
}

async function checkpointSample(a: TorporHarness, cleanup: Array<() => Promise<unknown>>): Promise<SharedSample> {
  const sample = testSample(a.storage);
  cleanup.push(() => killCheckpointProcesses(sample.hash));
  const { hash, workload } = sample;
  const checkpointed = await a.torpor.checkpoint({ hash, node: a.node, runtime: 'local', workload, sharedStore: true });
  return { sample, checkpointed, atCheckpoint: await readSampleStatus(sample.options.statusFile) };
}

/**
 * Two node agents on this machine sharing only the shared store named by `storeEnv` (S3's or
 * TORPOR_SHARED_DIR), the manifest key and Temporal: each has its own NODE_NAME and local store.
 * `extra` goes to both agents' environment. What started is stopped again if a later step fails.
 */
export async function startTwoNodes(storeEnv: Record<string, string>, extra: Record<string, string> = {}): Promise<TwoNodes> {
  const cleanup: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  };
  try {
    const keyFile = await sharedKeyFile();
    cleanup.push(() => rm(path.dirname(keyFile), { recursive: true, force: true }));
    const env = { ...storeEnv, TORPOR_MANIFEST_KEY_FILE: keyFile, TORPOR_DIGEST_CHUNK_BYTES: String(CHUNK), ...extra };
    const a = await startTorpor({ env });
    cleanup.push(() => a.stop());
    const bStore = await mkdtemp(path.join(os.tmpdir(), 'torpor-node-b-'));
    cleanup.push(() => rm(bStore, { recursive: true, force: true }));
    const nodeB = `test-b-${randomBytes(4).toString('hex')}`;
    const b = await startOtherNodeAgent(bStore, a.storage, { ...env, NODE_NAME: nodeB, TEMPORAL_ADDRESS: inject('temporalAddress') });
    cleanup.push(() => b.kill());
    return { a, b, nodeB, bStore, keyFile, env, stop, checkpointSample: () => checkpointSample(a, cleanup) };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A key file every test node shares, as nodes that restore each other's checkpoints do (a Secret). */
export async function sharedKeyFile(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'torpor-key-'));
  const file = path.join(dir, 'manifest.key');
  await writeFile(file, randomBytes(32), { mode: 0o600 });
  return file;
}

/** One node: its own store root, the shared key, and the agent's shared-store configuration from `env` (as read at start-up). */
export async function testNode(name: string, keyFile: string, env: Record<string, string>, overrides: Partial<NodeAgentConfig> = {}) {
  const root = await mkdtemp(path.join(os.tmpdir(), `torpor-${name}-`));
  const fromEnv = nodeAgentConfigFromEnv({ ...env, TORPOR_STORAGE_ROOT: root, NODE_NAME: name });
  const config = testAgentConfig(root, {
    nodeName: name,
    manifestKeyFile: keyFile,
    digestChunkBytes: CHUNK,
    ...(fromEnv.sharedStore ? { sharedStore: fromEnv.sharedStore } : {}),
    ...(fromEnv.sharedDir ? { sharedDir: fromEnv.sharedDir } : {}),
    ...(fromEnv.nodeCacheBytes === undefined ? {} : { nodeCacheBytes: fromEnv.nodeCacheBytes }),
    nodeCacheHoldMs: 0,
    ...overrides,
  });
  const layout = new StoreLayout(root, undefined, keyFile);
  return { root, config, layout, steps: sharedStoreActivities(config, layout) };
}

export type TestNode = Awaited<ReturnType<typeof testNode>>;
export type SharedStores = Awaited<ReturnType<typeof startSharedStores>>;

/**
 * For activity-level tests: a real S3 server (SeaweedFS), a shared directory and the shared key;
 * `node` makes a test node on either backend. `stop` removes every node, the directory and the key.
 */
export async function startSharedStores() {
  const s3 = await startS3Server();
  const keyFile = await sharedKeyFile();
  const sharedDir = await mkdtemp(path.join(os.tmpdir(), 'torpor-shared-dir-'));
  const nodes: TestNode[] = [];
  return {
    s3,
    keyFile,
    sharedDir,
    async node(name: string, backend: 's3' | 'directory', overrides: Partial<NodeAgentConfig> = {}): Promise<TestNode> {
      const env = backend === 's3' ? nodeEnv(s3) : { TORPOR_SHARED_DIR: sharedDir };
      const n = await testNode(`${name}-${randomBytes(3).toString('hex')}`, keyFile, env, overrides);
      nodes.push(n);
      return n;
    },
    async stop(): Promise<void> {
      for (const n of nodes) {
        openSharedStore(n.config, n.layout)?.leases.stop();
        await rm(n.root, { recursive: true, force: true });
      }
      await rm(path.dirname(keyFile), { recursive: true, force: true });
      await rm(sharedDir, { recursive: true, force: true });
      await s3.stop();
    },
  };
}

export function nodeEnv(s3: S3Server, extra: Record<string, string> = {}): Record<string, string> {
  return s3.agentEnv({ TORPOR_S3_PARALLEL: '4', ...extra });
}

/** A committed checkpoint made as a commit makes one (files, per-chunk digests, MAC'd manifest, rename, marker), without CRIU. */
export async function commitFake(
  node: TestNode,
  hash: string,
  files: Record<string, Buffer>,
  chunkBytes = CHUNK,
): Promise<CheckpointManifest> {
  const { layout } = node;
  const tmp = layout.tmpDir(hash, `${hash}.fake`);
  for (const [rel, bytes] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(tmp, rel)), { recursive: true });
    await writeFile(path.join(tmp, rel), bytes);
  }
  const digested = await digestChunks(tmp, Object.keys(files), () => undefined, { chunkBytes });
  const manifest: CheckpointManifest = {
    formatVersion: 2,
    chunkBytes,
    hash,
    node: node.config.nodeName,
    runtime: 'local',
    createdAt: new Date().toISOString(),
    workload: { command: ['true'], envNames: [] },
    contract: { readyFile: '/r', signalFile: '/s', restoreMarkerFile: '/m', logFile: '/l', location: '/c' },
    process: { pid: 1 },
    files: digested,
    totalBytes: totalBytes(digested),
    tools: { criu: '4.2', kernel: 'test', node: process.version, torpor: 'test' },
    timings: { startToReadyMs: 0, dumpMs: 0, commitMs: 0 },
    criu: { dumpArgs: [] },
    gpu: null,
  };
  await writeManifest(layout, tmp, manifest);
  await rename(tmp, layout.checkpointDir(hash));
  await writeFile(layout.doneMarker(hash), `${manifest.createdAt}\n`);
  return manifest;
}

/** Image-like files: one of several chunks (the last one short), one empty, one small. */
export function fakeImages(): Record<string, Buffer> {
  return {
    'images/pages-1.img': randomBytes(3 * CHUNK + 12345),
    'images/core-1.img': randomBytes(700),
    'images/empty.img': Buffer.alloc(0),
    'logs/dump.log': Buffer.from('dump log\n'),
  };
}
