import { realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { manifestChunks } from '../../activities/node/store/shared/chunks.js';
import {
  nodeCacheBytesFromEnv,
  sharedDirConfigFromEnv,
  sharedLeaseMsFromEnv,
  sharedStoreConfigFromEnv,
} from '../../activities/node/store/shared/config.js';
import { checkFilePath, chunkKey, manifestKey } from '../../activities/node/store/shared/keys.js';
import type { CheckpointManifest } from '../../contract/types.js';

const sha = (c: string) => c.repeat(64);

describe('shared store configuration (pure): from the agent environment only', () => {
  it('is off without a bucket, and reads endpoint, region, credentials, path style, prefix and parallelism', () => {
    expect(sharedStoreConfigFromEnv({})).toBeUndefined();
    expect(
      sharedStoreConfigFromEnv({
        TORPOR_S3_BUCKET: 'b',
        TORPOR_S3_ENDPOINT: 'http://s3:8333',
        TORPOR_S3_ACCESS_KEY_ID: 'k',
        TORPOR_S3_SECRET_ACCESS_KEY: 's',
        TORPOR_S3_PREFIX: 'cluster-1/',
      }),
    ).toEqual({
      endpoint: 'http://s3:8333',
      bucket: 'b',
      region: 'us-east-1',
      credentials: { accessKeyId: 'k', secretAccessKey: 's' },
      forcePathStyle: true,
      prefix: 'cluster-1/',
      parallel: 8,
      multipartBytes: 100 * 2 ** 20,
    });
    expect(sharedStoreConfigFromEnv({ TORPOR_S3_BUCKET: 'b' })).toMatchObject({ forcePathStyle: false });
  });

  it('refuses half a credential pair, a prefix that could climb, and bad numbers', () => {
    expect(() => sharedStoreConfigFromEnv({ TORPOR_S3_BUCKET: 'b', TORPOR_S3_ACCESS_KEY_ID: 'k' })).toThrow(/go together/);
    expect(() => sharedStoreConfigFromEnv({ TORPOR_S3_BUCKET: 'b', TORPOR_S3_PREFIX: '../x/' })).toThrow(/TORPOR_S3_PREFIX/);
    expect(() => sharedStoreConfigFromEnv({ TORPOR_S3_BUCKET: 'b', TORPOR_S3_PARALLEL: '0' })).toThrow(/TORPOR_S3_PARALLEL/);
    expect(() => sharedStoreConfigFromEnv({ TORPOR_S3_BUCKET: 'b', TORPOR_S3_MULTIPART_BYTES: '1048576' })).toThrow(/at least 5 MiB/);
    expect(nodeCacheBytesFromEnv({})).toBeUndefined();
    expect(nodeCacheBytesFromEnv({ TORPOR_NODE_CACHE_BYTES: '1073741824' })).toBe(2 ** 30);
    expect(() => nodeCacheBytesFromEnv({ TORPOR_NODE_CACHE_BYTES: '-1' })).toThrow(/TORPOR_NODE_CACHE_BYTES/);
  });

  it('reads a shared directory instead (TORPOR_SHARED_DIR), never beside a bucket, and the lease life', () => {
    const dir = realpathSync(os.tmpdir());
    expect(sharedDirConfigFromEnv({})).toBeUndefined();
    expect(sharedDirConfigFromEnv({ TORPOR_SHARED_DIR: dir })).toEqual({ dir, prefix: '', parallel: 8 });
    expect(() => sharedDirConfigFromEnv({ TORPOR_SHARED_DIR: dir, TORPOR_S3_BUCKET: 'b' })).toThrow(/set one/);
    expect(() => sharedDirConfigFromEnv({ TORPOR_SHARED_DIR: 'relative/dir' })).toThrow(/absolute/);
    expect(() => sharedDirConfigFromEnv({ TORPOR_SHARED_DIR: path.join(dir, 'no-such-volume-here') })).toThrow(/not a directory/);
    expect(sharedLeaseMsFromEnv({})).toBeUndefined();
    expect(sharedLeaseMsFromEnv({ TORPOR_SHARED_LEASE_MS: '30000' })).toBe(30_000);
    expect(() => sharedLeaseMsFromEnv({ TORPOR_SHARED_LEASE_MS: 'soon' })).toThrow(/TORPOR_SHARED_LEASE_MS/);
  });
});

describe('object keys and manifest paths (pure)', () => {
  it('names chunks by digest under the checkpoint, and refuses a bad hash or digest', () => {
    expect(manifestKey('p/', 'llama-1')).toBe('p/checkpoints/llama-1/manifest.json');
    expect(chunkKey('', 'llama-1', sha('a'))).toBe(`checkpoints/llama-1/chunks/${sha('a')}`);
    expect(() => chunkKey('', '../x', sha('a'))).toThrow();
    expect(() => chunkKey('', 'llama-1', 'not-a-digest')).toThrow(/sha256/);
  });

  it('refuses manifest file paths that leave the checkpoint directory', () => {
    expect(checkFilePath('images/pages-1.img')).toBe('images/pages-1.img');
    for (const bad of ['../x', 'images/../../x', '/etc/passwd', 'images//x', '.', 'images/.hidden', '']) {
      expect(() => checkFilePath(bad), bad).toThrow(/outside the checkpoint directory/);
    }
  });

  it('lists every chunk with its digest, and refuses format 1 and a digest count that does not fit the size', () => {
    const manifest = {
      formatVersion: 2,
      chunkBytes: 10,
      hash: 'h',
      files: [
        { path: 'images/a.img', sizeBytes: 25, chunkSha256: [sha('a'), sha('b'), sha('c')] },
        { path: 'images/e.img', sizeBytes: 0, chunkSha256: [sha('d')] },
      ],
    } as CheckpointManifest;
    expect(manifestChunks(manifest).map((c) => [c.path, c.index, c.offset, c.length])).toEqual([
      ['images/a.img', 0, 0, 10],
      ['images/a.img', 1, 10, 10],
      ['images/a.img', 2, 20, 5],
      ['images/e.img', 0, 0, 0],
    ]);
    expect(() => manifestChunks({ ...manifest, formatVersion: 1 })).toThrow(/format 1/);
    const short = { ...manifest, files: [{ path: 'images/a.img', sizeBytes: 25, chunkSha256: [sha('a')] }] };
    expect(() => manifestChunks(short)).toThrow(/1 chunk digests for 3 chunks/);
  });
});
