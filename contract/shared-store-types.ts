/** A node agent's shared-store steps: upload a committed checkpoint, fetch one into the node cache. */
export interface SharedStoreInput {
  hash: string;
}

export interface UploadResult {
  hash: string;
  /** Bytes of chunk objects sent by this attempt; chunks already in the store are skipped. */
  uploadedBytes: number;
  /** Bytes of chunk objects found in the store with the right size and digest. */
  skippedBytes: number;
  /** False when the store already held a complete checkpoint of this hash (its manifest), so nothing was sent. */
  uploaded: boolean;
}

export interface FetchResult {
  hash: string;
  /** `cache`: the node cache held it already; `shared-store`: it was downloaded (and verified) now. */
  source: 'cache' | 'shared-store';
  /** Bytes downloaded by this attempt. */
  fetchedBytes: number;
  /** Bytes an interrupted earlier attempt left that verified against their chunk digests, kept. */
  keptBytes: number;
  /** Checkpoints evicted from the node cache to make room (least recently used first). */
  evicted: string[];
}
