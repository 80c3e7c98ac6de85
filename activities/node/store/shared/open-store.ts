import type { NodeAgentConfig } from '../../agent-config.js';
import type { StoreLayout } from '../layout.js';
import { SharedStoreClient } from './client.js';
import { DirectoryStore } from './directory-store.js';
import { LEASE_TTL_MS, LeaseKeeper } from './leases.js';
import type { ObjectStore } from './object-store.js';

/** The agent's shared store and the keeper of its leases: one per agent, whichever activities ask. */
export interface SharedStore {
  store: ObjectStore;
  leases: LeaseKeeper;
}

const opened = new WeakMap<NodeAgentConfig, SharedStore | null>();

/** The shared store the agent is configured with (TORPOR_S3_* or TORPOR_SHARED_DIR), or undefined. */
export function openSharedStore(config: NodeAgentConfig, layout: StoreLayout): SharedStore | undefined {
  let shared = opened.get(config);
  if (shared === undefined) {
    const store = config.sharedStore
      ? new SharedStoreClient(config.sharedStore)
      : config.sharedDir
        ? new DirectoryStore(config.sharedDir)
        : undefined;
    shared = store ? { store, leases: new LeaseKeeper(store, layout, config.nodeName, config.sharedLeaseMs ?? LEASE_TTL_MS) } : null;
    // From the start, so that after a restart the leases of restored copies still running are taken again.
    shared?.leases.start();
    opened.set(config, shared);
  }
  return shared ?? undefined;
}
