import { torporFailure } from '../../../../contract/failures.js';
import type { FetchResult, SharedStoreInput, UploadResult } from '../../../../contract/types.js';
import type { NodeAgentConfig } from '../../agent-config.js';
import { reportProgress } from '../../heartbeat.js';
import type { StoreLayout } from '../layout.js';
import { readCommitted } from '../manifest.js';
import { manifestChunks } from './chunks.js';
import { SharedStoreClient } from './client.js';
import { fetchChunks, prepareFiles, publishFetched, readRemoteManifest, verifiedChunks } from './download.js';
import { makeRoom, type NodeCacheLimits, recordShared, touchCached } from './node-cache.js';
import { uploadCheckpoint } from './upload.js';

/** How long a copy just fetched or found is held against eviction: the restore that asked for it comes next. */
export const NODE_CACHE_HOLD_MS = 10 * 60 * 1000;

/**
 * The node agent's shared-store steps. Both are idempotent: an upload skips the chunks the store
 * holds, a fetch keeps the verified chunks an interrupted attempt left, and either one of a
 * committed (or cached) checkpoint returns at once.
 */
export function sharedStoreActivities(config: NodeAgentConfig, layout: StoreLayout) {
  const store = config.sharedStore && new SharedStoreClient(config.sharedStore);
  const limits: NodeCacheLimits = {
    ...(config.nodeCacheBytes === undefined ? {} : { maxBytes: config.nodeCacheBytes }),
    holdMs: config.nodeCacheHoldMs ?? NODE_CACHE_HOLD_MS,
  };
  const requireStore = (step: string) => {
    if (!store) {
      throw torporFailure(
        'SharedStoreMisconfigured',
        `${step}: the node agent on ${config.nodeName} has no shared store (set TORPOR_S3_BUCKET and its endpoint and credentials)`,
      );
    }
    return store;
  };

  return {
    async uploadCheckpoint({ hash }: SharedStoreInput): Promise<UploadResult> {
      const result = await uploadCheckpoint(layout, requireStore('uploadCheckpoint'), hash);
      await recordShared(layout, hash, 'uploaded');
      return result;
    },

    async fetchCheckpoint({ hash }: SharedStoreInput): Promise<FetchResult> {
      if (await readCommitted(layout, hash)) {
        await touchCached(layout, hash);
        return { hash, source: 'cache', fetchedBytes: 0, keptBytes: 0, evicted: [] };
      }
      const shared = requireStore('fetchCheckpoint');
      const remote = await readRemoteManifest(layout, shared, hash);
      if (remote === null) {
        throw torporFailure(
          'CheckpointNotFound',
          `No checkpoint ${hash} in node ${config.nodeName}'s cache nor in the shared store (bucket "${shared.config.bucket}")`,
        );
      }
      const chunks = manifestChunks(remote.manifest);
      const evicted = await makeRoom(layout, limits, remote.manifest.totalBytes);
      const dir = layout.fetchDir(hash);
      reportProgress({ phase: 'checking what an earlier attempt left' });
      const kept = await verifiedChunks(dir, remote.manifest, remote.manifest.chunkBytes as number);
      await prepareFiles(dir, remote.manifest);
      const totals = await fetchChunks(shared, dir, remote, chunks, kept);
      await publishFetched(layout, dir, remote);
      await recordShared(layout, hash, 'fetched');
      return { hash, source: 'shared-store', ...totals, evicted };
    },
  };
}
