import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterActivities } from '../../activities/cluster/index.js';
import { controlSharedStoreFromEnv } from '../../workers/control-config.js';
import { testClusterPolicy } from '../support/cluster-policy.js';
import { commitFake, fakeImages, sharedKeyFile, type TestNode, testNode } from './fixtures.js';

// The control worker configured as the agents are, with TORPOR_SHARED_DIR (a shared filesystem)
// instead of S3: it reads what a real agent uploaded there. No Kubernetes API is called by these
// two activities, so the kubeconfig points nowhere.
let keyFile: string;
let sharedDir: string;
let node: TestNode;

const kubeConfig = () => {
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: 'none', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'none' }],
    contexts: [{ name: 'none', cluster: 'none', user: 'none' }],
    currentContext: 'none',
  });
  return config;
};

beforeAll(async () => {
  keyFile = await sharedKeyFile();
  sharedDir = await mkdtemp(path.join(os.tmpdir(), 'torpor-rwx-'));
  node = await testNode('node-a', keyFile, { TORPOR_SHARED_DIR: sharedDir });
});

afterAll(async () => {
  for (const dir of [node?.root, sharedDir, keyFile && path.dirname(keyFile)]) if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the control worker reads a shared directory (TORPOR_SHARED_DIR) as the agents do', () => {
  it('describes and finds a checkpoint an agent uploaded there; one never uploaded is not found', async () => {
    const hash = `dir-${randomBytes(5).toString('hex')}`;
    const manifest = await commitFake(node, hash, fakeImages());
    await node.steps.uploadCheckpoint({ hash });
    const control = clusterActivities({
      kubeConfig: kubeConfig(),
      ...testClusterPolicy(['ml']),
      ...controlSharedStoreFromEnv({ TORPOR_SHARED_DIR: sharedDir }),
    });

    expect(await control.describeSharedCheckpoint({ hash })).toEqual({ hash, gpuProduct: null, gpuCount: 0 });
    expect(await control.findSharedCheckpoint({ hash })).toEqual(manifest);
    expect(await control.findSharedCheckpoint({ hash: 'never-uploaded' })).toBeNull();
    await expect(control.describeSharedCheckpoint({ hash: 'never-uploaded' })).rejects.toMatchObject({
      type: 'CheckpointNotFound',
      nonRetryable: true,
    });
  });

  it('refuses to start with both a bucket and a shared directory', () => {
    expect(() => controlSharedStoreFromEnv({ TORPOR_SHARED_DIR: sharedDir, TORPOR_S3_BUCKET: 'b' })).toThrow(/set one/);
  });
});
