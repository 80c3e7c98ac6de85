import { torporFailure } from '../../../../contract/failures.js';
import type { FetchResult, SharedStoreInput, UploadResult } from '../../../../contract/types.js';
import type { NodeAgentConfig } from '../../agent-config.js';
import { reportProgress } from '../../heartbeat.js';
import type { StoreLayout } from '../layout.js';
import { readCommitted } from '../manifest.js';
import { manifestChunks } from './chunks.js';
import { fetchChunks, prepareFiles, publishFetched, readRemoteManifest, verifiedChunks } from './download.js';
import { makeRoom, type NodeCacheLimits, recordShared, touchCached } from './node-cache.js';
import type { ObjectStore } from './object-store.js';
import { openSharedStore } from './open-store.js';
import { markCached } from './shared-catalog.js';
import { uploadCheckpoint } from './upload.js';
import { underUploadClaim } from './upload-claims.js';

/** How long a copy just fetched or found is held against eviction: the restore that asked for it comes next. */
export const NODE_CACHE_HOLD_MS = 10 * 60 * 1000;

/**
 * The node agent's shared-store steps. Both are idempotent: an upload skips the chunks the store
 * holds, a fetch keeps the verified chunks an interrupted attempt left, and either one of a
 * committed (or cached) checkpoint returns at once.
 */
export function sharedStoreActivities(config: NodeAgentConfig, layout: StoreLayout) {
  const shared = openSharedStore(config, layout);
  const limits: NodeCacheLimits = {
    ...(config.nodeCacheBytes === undefined ? {} : { maxBytes: config.nodeCacheBytes }),
    holdMs: config.nodeCacheHoldMs ?? NODE_CACHE_HOLD_MS,
  };
  const requireStore = (step: string) => {
    if (!shared) {
      throw torporFailure(
        'SharedStoreMisconfigured',
        `${step}: the node agent on ${config.nodeName} has no shared store (set TORPOR_S3_BUCKET and its endpoint and credentials, or TORPOR_SHARED_DIR)`,
      );
    }
    return shared;
  };
  const forget = async (store: ObjectStore, evicted: string[]) => {
    for (const hash of evicted) await markCached(store, hash, config.nodeName, false);
  };

  return {
    async uploadCheckpoint({ hash }: SharedStoreInput): Promise<UploadResult> {
      const { store } = requireStore('uploadCheckpoint');
      const result = await underUploadClaim(store, hash, config.nodeName, () => uploadCheckpoint(layout, store, hash));
      await recordShared(layout, hash, 'uploaded');
      await markCached(store, hash, config.nodeName, true);
      return result;
    },

    async fetchCheckpoint({ hash }: SharedStoreInput): Promise<FetchResult> {
      if (await readCommitted(layout, hash)) {
        await touchCached(layout, hash);
        shared?.leases.found(hash);
        return { hash, source: 'cache', fetchedBytes: 0, keptBytes: 0, evicted: [] };
      }
      const { store, leases } = requireStore('fetchCheckpoint');
      // The lease first: a delete that looks after this sees the checkpoint in use.
      return leases.forFetch(hash, async () => {
        const remote = await readRemoteManifest(layout, store, hash);
        if (remote === null) {
          throw torporFailure(
            'CheckpointNotFound',
            `No checkpoint ${hash} in node ${config.nodeName}'s cache nor in the shared store (${store.where})`,
          );
        }
        const chunks = manifestChunks(remote.manifest);
        const dir = layout.fetchDir(hash);
        const evicted = await makeRoom(layout, limits, remote.manifest.totalBytes, dir);
        await forget(store, evicted);
        reportProgress({ phase: 'checking what an earlier attempt left' });
        const kept = await verifiedChunks(dir, remote.manifest, remote.manifest.chunkBytes as number);
        await prepareFiles(dir, remote.manifest);
        const totals = await fetchChunks(store, dir, remote, chunks, kept);
        await publishFetched(layout, dir, remote);
        await recordShared(layout, hash, 'fetched');
        await markCached(store, hash, config.nodeName, true);
        return { hash, source: 'shared-store' as const, ...totals, evicted };
      });
    },
  };
}
