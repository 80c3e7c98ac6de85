/**
 * What Torpor asks of a shared store, whichever backend holds the objects: S3-compatible object
 * storage (client.ts) or a shared filesystem mounted at the same path on every node
 * (directory-store.ts). Keys are `/`-separated names built in keys.ts, never from input.
 */
/** One object as a listing shows it: its stored size (metadata included where the backend stores it in the file) and write time. */
export interface StoredObject {
  key: string;
  sizeBytes: number;
  modifiedMs: number;
}

export interface ObjectStore {
  /** Prepended to every key: several clusters can share one bucket or directory. */
  readonly prefix: string;
  /** Objects moved at once. */
  readonly parallel: number;
  /** Where it is, for messages: `bucket "x" at http://…`, `directory /mnt/torpor`. */
  readonly where: string;
  /** Size and metadata of `key`, or null when there is no such object. */
  head(key: string): Promise<{ sizeBytes: number; metadata: Record<string, string> } | null>;
  /** Writes `key` whole, body and metadata at once: a reader sees the old object, or none, or the new one. */
  put(key: string, body: Buffer | string, metadata: Record<string, string>): Promise<unknown>;
  /** The object's body as a stream and its metadata, or null when there is no such object. */
  get(key: string): Promise<{ body: AsyncIterable<Uint8Array>; metadata: Record<string, string> } | null>;
  /** Every key below `prefix` (which ends in `/`), at any depth. */
  list(prefix: string): Promise<string[]>;
  /** As `list`, with each object's size and when it was last written (what gc's grace ages are measured from). */
  listObjects(prefix: string): Promise<StoredObject[]>;
  /** The names one level below `prefix` that hold objects (`checkpoints/` → the hashes), without the slash. */
  listNames(prefix: string): Promise<string[]>;
  /** Deletes `keys`; one already gone is success. */
  delete(keys: readonly string[]): Promise<void>;
  /** Removes what writers killed mid-write left in the backend's own staging, written before `cutoffMs`; absent where there is none. */
  sweepLeftovers?(cutoffMs: number): Promise<{ removed: number; freedBytes: number }>;
}

/** The object's body as text, or null when there is no such object. */
export async function getText(store: ObjectStore, key: string): Promise<string | null> {
  const got = await store.get(key);
  if (got === null) return null;
  const parts: Uint8Array[] = [];
  for await (const part of got.body) parts.push(part);
  return Buffer.concat(parts).toString('utf8');
}
