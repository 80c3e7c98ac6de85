import { realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import type { DirectoryStoreConfig } from './directory-store.js';

/**
 * Where the agent's shared store is: S3-compatible object storage. Read from the agent's own
 * environment (a DaemonSet's Secret), never from workflow input: a caller chooses what to
 * checkpoint, not where the node's bytes go or with which credentials.
 */
export interface SharedStoreConfig {
  /** The S3 endpoint (`http://seaweedfs:8333`); absent: AWS's endpoint for the region. */
  endpoint?: string;
  bucket: string;
  region: string;
  /** Absent: the AWS SDK's default chain (AWS_* variables, the web identity of a ServiceAccount, ...). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Path-style URLs (`endpoint/bucket/key`), as most self-hosted servers need. */
  forcePathStyle: boolean;
  /** Prepended to every object key: several clusters can share one bucket. */
  prefix: string;
  /** Chunk objects moved at once. */
  parallel: number;
  /** A chunk of this many bytes or more is uploaded in parts (multipart upload). */
  multipartBytes: number;
}

function onOff(value: string | undefined, name: string, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback;
  if (value === 'on' || value === 'true') return true;
  if (value === 'off' || value === 'false') return false;
  throw new Error(`${name} must be on or off, not "${value}"`);
}

function positive(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive whole number, not "${value}"`);
  return n;
}

const MIN_PART_BYTES = 5 * 2 ** 20;

function multipartBytes(value: string | undefined): number {
  const n = positive(value, 'TORPOR_S3_MULTIPART_BYTES', 100 * 2 ** 20);
  if (n < MIN_PART_BYTES)
    throw new Error(`TORPOR_S3_MULTIPART_BYTES must be at least 5 MiB (${MIN_PART_BYTES}), S3's least part, not ${n}`);
  return n;
}

/**
 * TORPOR_S3_BUCKET turns the shared store on; TORPOR_S3_ENDPOINT, TORPOR_S3_REGION (us-east-1),
 * TORPOR_S3_ACCESS_KEY_ID + TORPOR_S3_SECRET_ACCESS_KEY (else the SDK's chain), TORPOR_S3_PATH_STYLE
 * (on when an endpoint is set), TORPOR_S3_PREFIX (none), TORPOR_S3_PARALLEL (8),
 * TORPOR_S3_MULTIPART_BYTES (100 MiB, at least 5 MiB: chunks this large go as multipart uploads).
 */
export function sharedStoreConfigFromEnv(env: NodeJS.ProcessEnv): SharedStoreConfig | undefined {
  const bucket = env.TORPOR_S3_BUCKET;
  if (!bucket) return undefined;
  const accessKeyId = env.TORPOR_S3_ACCESS_KEY_ID;
  const secretAccessKey = env.TORPOR_S3_SECRET_ACCESS_KEY;
  if (Boolean(accessKeyId) !== Boolean(secretAccessKey)) {
    throw new Error('TORPOR_S3_ACCESS_KEY_ID and TORPOR_S3_SECRET_ACCESS_KEY go together: set both or neither');
  }
  const prefix = env.TORPOR_S3_PREFIX ?? '';
  if (prefix !== '' && !/^[A-Za-z0-9_][A-Za-z0-9._-]*(\/[A-Za-z0-9_][A-Za-z0-9._-]*)*\/$/.test(prefix)) {
    throw new Error(`TORPOR_S3_PREFIX must be path segments (each starting with a letter, digit or _) ending in "/", not "${prefix}"`);
  }
  return {
    ...(env.TORPOR_S3_ENDPOINT ? { endpoint: env.TORPOR_S3_ENDPOINT } : {}),
    bucket,
    region: env.TORPOR_S3_REGION || 'us-east-1',
    ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey } } : {}),
    forcePathStyle: onOff(env.TORPOR_S3_PATH_STYLE, 'TORPOR_S3_PATH_STYLE', Boolean(env.TORPOR_S3_ENDPOINT)),
    prefix,
    parallel: positive(env.TORPOR_S3_PARALLEL, 'TORPOR_S3_PARALLEL', 8),
    multipartBytes: multipartBytes(env.TORPOR_S3_MULTIPART_BYTES),
  };
}

/** TORPOR_NODE_CACHE_BYTES: the node cache's size limit; unset, unlimited. */
export function nodeCacheBytesFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env.TORPOR_NODE_CACHE_BYTES;
  return raw === undefined || raw === '' ? undefined : positive(raw, 'TORPOR_NODE_CACHE_BYTES', 0);
}

/**
 * TORPOR_SHARED_DIR: the shared store as a directory on a shared filesystem (an RWX volume mounted at
 * the same path on every node), instead of S3; TORPOR_SHARED_PARALLEL (8) files moved at once.
 */
export function sharedDirConfigFromEnv(env: NodeJS.ProcessEnv): DirectoryStoreConfig | undefined {
  const dir = env.TORPOR_SHARED_DIR;
  if (!dir) return undefined;
  if (env.TORPOR_S3_BUCKET) throw new Error('TORPOR_SHARED_DIR and TORPOR_S3_BUCKET each name a shared store: set one');
  if (!path.isAbsolute(dir)) throw new Error(`TORPOR_SHARED_DIR must be an absolute path, not "${dir}"`);
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`TORPOR_SHARED_DIR ${dir} is not a directory (mount the shared volume there first)`);
  }
  return { dir: realpathSync(dir), prefix: '', parallel: positive(env.TORPOR_SHARED_PARALLEL, 'TORPOR_SHARED_PARALLEL', 8) };
}

/** TORPOR_SHARED_LEASE_MS: a lease's life without renewal; unset, 60 s. */
export function sharedLeaseMsFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env.TORPOR_SHARED_LEASE_MS;
  return raw === undefined || raw === '' ? undefined : positive(raw, 'TORPOR_SHARED_LEASE_MS', 0);
}
