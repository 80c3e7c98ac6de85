import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, GetObjectCommand, ListBucketsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from './free-port.js';

/** SeaweedFS's `weed`, built from its Go module by scripts/setup.sh (tools/s3). */
export const WEED = fileURLToPath(new URL('../../.torpor/bin/weed', import.meta.url));

export interface S3Server {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The node agent's environment for this store (TORPOR_S3_*). */
  agentEnv(overrides?: Record<string, string>): Record<string, string>;
  /** An S3 client with the server's credentials (to plant, flip or delete objects). */
  client(): S3Client;
  /** Stops the server, keeping its data; `start` brings it back on the same ports. */
  pause(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

async function waitUntilServing(client: S3Client, child: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`weed exited (${child.exitCode}) before serving S3:\n${log().slice(-3000)}`);
    try {
      await client.send(new ListBucketsCommand({}));
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`weed did not serve S3 within 60 s:\n${log().slice(-3000)}`);
}

async function waitUntilStoring(client: S3Client, bucket: string, log: () => string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'probe/ready', Body: 'ready' }));
      const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: 'probe/ready' }));
      if ((await got.Body?.transformToString()) === 'ready') return;
    } catch {
      // not yet
    }
    await sleep(100);
  }
  throw new Error(`weed did not store and return an object within 60 s:\n${log().slice(-3000)}`);
}

/**
 * A real S3-compatible server for tests: SeaweedFS (`weed server -s3`: master, volume, filer and
 * S3 gateway in one process) on free loopback ports over a temporary directory, with one identity
 * (so wrong credentials are refused) and one bucket; buckets are never created on upload.
 */
export async function startS3Server(): Promise<S3Server> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'torpor-s3-'));
  const [master, masterGrpc, volume, volumeGrpc, filer, filerGrpc, s3, s3Grpc] = await Promise.all(Array.from({ length: 8 }, freePort));
  const accessKeyId = `torpor${randomBytes(4).toString('hex')}`;
  const secretAccessKey = randomBytes(20).toString('hex');
  const identity = {
    name: 'torpor',
    credentials: [{ accessKey: accessKeyId, secretKey: secretAccessKey }],
    actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'],
  };
  await writeFile(path.join(dir, 's3.json'), JSON.stringify({ identities: [identity] }));
  const args = [
    'server',
    '-ip=127.0.0.1',
    '-ip.bind=127.0.0.1',
    `-dir=${dir}`,
    '-volume.max=4',
    '-master.volumeSizeLimitMB=256',
    `-master.port=${master}`,
    `-master.port.grpc=${masterGrpc}`,
    `-volume.port=${volume}`,
    `-volume.port.grpc=${volumeGrpc}`,
    `-filer.port=${filer}`,
    `-filer.port.grpc=${filerGrpc}`,
    '-s3',
    `-s3.port=${s3}`,
    `-s3.port.grpc=${s3Grpc}`,
    '-s3.port.iceberg=0',
    '-s3.port.lance=0',
    `-s3.config=${path.join(dir, 's3.json')}`,
    '-s3.autoCreateBucket=false',
  ];
  const endpoint = `http://127.0.0.1:${s3}`;
  const bucket = `torpor-${randomBytes(3).toString('hex')}`;
  const client = () =>
    new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1 });
  let child: ChildProcess | undefined;
  let output = '';
  let bucketMade = false;
  const start = async () => {
    output = '';
    const started = spawn(WEED, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    started.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    started.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child = started;
    await waitUntilServing(client(), started, () => output);
    // After a restart the filer answers before the volume server has registered again (500s): wait until objects go in and out.
    if (bucketMade) await waitUntilStoring(client(), bucket, () => output);
  };
  const pause = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = once(running, 'exit');
    running.kill('SIGKILL');
    await exited;
  };
  await start();
  await client().send(new CreateBucketCommand({ Bucket: bucket }));
  bucketMade = true;
  await waitUntilStoring(client(), bucket, () => output);
  return {
    endpoint,
    bucket,
    accessKeyId,
    secretAccessKey,
    agentEnv: (overrides = {}) => ({
      TORPOR_S3_ENDPOINT: endpoint,
      TORPOR_S3_BUCKET: bucket,
      TORPOR_S3_ACCESS_KEY_ID: accessKeyId,
      TORPOR_S3_SECRET_ACCESS_KEY: secretAccessKey,
      ...overrides,
    }),
    client,
    pause,
    start,
    async stop() {
      await pause();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
