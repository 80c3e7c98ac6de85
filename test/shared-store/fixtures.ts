import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { NodeAgentConfig } from '../../activities/node/agent-config.js';
import { digestChunks } from '../../activities/node/store/chunk-digests.js';
import { StoreLayout } from '../../activities/node/store/layout.js';
import { totalBytes } from '../../activities/node/store/manifest.js';
import { writeManifest } from '../../activities/node/store/manifest-mac.js';
import { sharedStoreActivities } from '../../activities/node/store/shared/index.js';
import type { CheckpointManifest } from '../../contract/types.js';
import { nodeAgentConfigFromEnv } from '../../workers/node-agent-config.js';
import { testAgentConfig } from '../support/agent-config.js';
import type { S3Server } from '../support/s3-server.js';

export const CHUNK = 1 << 20;

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
  const digested = await digestChunks(tmp, Object.keys(files), () => undefined, chunkBytes);
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
