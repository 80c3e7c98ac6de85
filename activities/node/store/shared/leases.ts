import { HASH_PATTERN } from '../../../../contract/spec.js';
import type { StoreLayout } from '../layout.js';
import { criuProcesses, entries, liveUses } from '../scan.js';
import { leaseKey, leasesPrefix } from './keys.js';
import { getText, type ObjectStore } from './object-store.js';

/** TORPOR_SHARED_LEASE_MS: how long a lease lives without renewal; renewed four times within it. */
export const LEASE_TTL_MS = 60_000;

/** A node's claim on a checkpoint in the shared store: while it is live, no node deletes the checkpoint. */
export interface Lease {
  hash: string;
  node: string;
  /** ISO time; past it (a node that stopped renewing: crashed, cut off) the lease counts for nothing. */
  expiresAt: string;
  /** What the node uses it for: `fetching`, `restore <id> (pid N, running)`, `just fetched`. */
  uses: string[];
}

export async function writeLease(store: ObjectStore, lease: Lease): Promise<void> {
  await store.put(leaseKey(store.prefix, lease.hash, lease.node), JSON.stringify(lease), {});
}

export async function releaseLease(store: ObjectStore, hash: string, node: string): Promise<void> {
  await store.delete([leaseKey(store.prefix, hash, node)]);
}

function parseLease(text: string | null): Lease | null {
  try {
    const lease = JSON.parse(text ?? '') as Lease;
    return typeof lease.expiresAt === 'string' && Array.isArray(lease.uses) ? lease : null;
  } catch {
    return null;
  }
}

/**
 * The leases on `hash`: the live ones, and the keys of those past their expiry (or unreadable: an
 * agent writes a lease whole, so only a hand could break one), which a delete may remove.
 */
export async function readLeases(store: ObjectStore, hash: string, nowMs = Date.now()): Promise<{ live: Lease[]; expired: string[] }> {
  const found = { live: [] as Lease[], expired: [] as string[] };
  for (const key of await store.list(leasesPrefix(store.prefix, hash))) {
    const lease = parseLease(await getText(store, key));
    if (lease && Date.parse(lease.expiresAt) > nowMs) found.live.push(lease);
    else if (!lease || Date.parse(lease.expiresAt) <= nowMs) found.expired.push(key);
  }
  return found;
}

/**
 * Holds this node's leases: one for every checkpoint of the shared store it uses. A fetch takes its
 * lease before it reads the manifest; a timer (a quarter of the lease's life) then renews the lease
 * of every checkpoint this node fetches, restores or runs a restored copy of (its own records and
 * /proc, as a local delete judges), or fetched within the lease's life (the restore that fetched it
 * comes next), and removes the others. A crashed agent renews nothing: its leases expire. After a
 * restart the first tick takes leases again for what still runs.
 */
export class LeaseKeeper {
  private readonly held = new Set<string>();
  private readonly fetching = new Map<string, number>();
  private readonly fetchedAtMs = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;

  constructor(
    private readonly store: ObjectStore,
    private readonly layout: StoreLayout,
    private readonly node: string,
    readonly ttlMs: number,
  ) {}

  private lease(hash: string, uses: string[]): Lease {
    return { hash, node: this.node, expiresAt: new Date(Date.now() + this.ttlMs).toISOString(), uses };
  }

  /** Takes the lease of `hash` for a fetch (written before the fetch reads anything); `done` lets it go to the timer. */
  async forFetch<T>(hash: string, work: () => Promise<T>): Promise<T> {
    this.fetching.set(hash, (this.fetching.get(hash) ?? 0) + 1);
    try {
      await writeLease(this.store, this.lease(hash, ['fetching']));
      this.held.add(hash);
      this.start();
      return await work();
    } finally {
      this.fetching.set(hash, (this.fetching.get(hash) ?? 1) - 1);
      this.fetchedAtMs.set(hash, Date.now());
    }
  }

  /** A fetch found `hash` in the node cache: the restore that asked comes next, so it counts as a use for a while. */
  found(hash: string): void {
    this.fetchedAtMs.set(hash, Date.now());
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), Math.max(250, Math.floor(this.ttlMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One renewal round; a round still running is joined, not doubled. */
  tick(): Promise<void> {
    this.ticking ??= this.renew()
      .catch(() => undefined)
      .finally(() => {
        this.ticking = undefined;
      });
    return this.ticking;
  }

  private async usesOf(hash: string, criu: Awaited<ReturnType<typeof criuProcesses>>): Promise<string[]> {
    const uses = (await liveUses(this.layout, hash, criu)).map((u) => `restore ${u.restoreId} (pid ${u.pid}, ${u.state})`);
    if ((this.fetching.get(hash) ?? 0) > 0) uses.push('fetching');
    const fetchedAt = this.fetchedAtMs.get(hash);
    if (uses.length === 0 && fetchedAt !== undefined && Date.now() - fetchedAt < this.ttlMs) uses.push('just fetched');
    return uses;
  }

  private async renew(): Promise<void> {
    const recorded = (await entries(this.layout.sharedRecordsRoot()))
      .map((e) => e.replace(/\.json$/, ''))
      .filter((h) => HASH_PATTERN.test(h));
    const hashes = new Set([...this.held, ...this.fetching.keys(), ...recorded]);
    if (hashes.size === 0) return;
    const criu = await criuProcesses();
    for (const hash of hashes) {
      const uses = await this.usesOf(hash, criu);
      if (uses.length > 0) {
        await writeLease(this.store, this.lease(hash, uses));
        this.held.add(hash);
      } else if (this.held.has(hash)) {
        await releaseLease(this.store, hash, this.node);
        this.held.delete(hash);
        this.fetchedAtMs.delete(hash);
      }
    }
  }
}
