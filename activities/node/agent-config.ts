import type { NetworkLockMethod } from '../../contract/network.js';
import type { PodLookup } from './container/target-policy.js';
import type { SharedStoreConfig } from './store/shared/config.js';
import type { DirectoryStoreConfig } from './store/shared/directory-store.js';

/** What a node agent is told at start-up; activities close over it. */
export interface NodeAgentConfig {
  /** This node's name: the agent polls `torpor-node-<nodeName>`. */
  nodeName: string;
  /** Absolute, resolved directory that holds every checkpoint, temporary dump and run file. */
  storageRoot: string;
  /** Where signal files go (ChReK: the host path /var/lib/chrek/signals); `<storageRoot>/.signals` when absent. */
  signalDir?: string;
  /**
   * The HMAC key file manifests are authenticated with (TORPOR_MANIFEST_KEY_FILE; give every node
   * the same one, from a Secret, when nodes restore each other's checkpoints). Absent: the agent
   * makes `<storageRoot>/.keys/manifest.key` (0600) on first use.
   */
  manifestKeyFile?: string;
  /** The CRIU executable (a wrapper on PATH by default). */
  criuPath: string;
  /** Extra CRIU flags for this node's dumps and restores (for example --tcp-established). */
  extraDumpArgs: string[];
  extraRestoreArgs: string[];
  /** The chunk size of the per-chunk digests a commit records (64 MiB; smaller in tests). */
  digestChunkBytes: number;
  /** How CRIU locks the connections it saves (and a container's network namespace while it dumps). */
  networkLock: NetworkLockMethod;
  /**
   * A launcher local workloads start through (`torpor-no-io-uring`): it refuses io_uring, which CRIU
   * cannot checkpoint, so libuv-based servers (Node.js, uvloop) use epoll. Absent: none.
   */
  workloadLauncher?: string;
  torporVersion: string;
  /**
   * How many heavy steps (dump, restore, commit hashing, verification, tar) this agent runs at once;
   * more wait in its queue (TORPOR_HEAVY_STEPS). Absent: derived from the node (heavy-steps.ts).
   */
  heavyStepLimit?: number;
  /**
   * The local runtime (processes the agent starts and restores on its own host, from a caller's
   * command): absent when off, the default, since whoever can start a workflow chooses the command.
   */
  localRuntime?: LocalRuntimeConfig;
  /** Present when the node runs containers the agent may checkpoint and restore into (runc state under `runcRoot`). */
  containers?: NodeContainerConfig;
  /** The shared store checkpoints are uploaded to and fetched from (TORPOR_S3_*); absent: this node's store only. */
  sharedStore?: SharedStoreConfig;
  /** The shared store as a shared filesystem mounted at the same path on every node (TORPOR_SHARED_DIR); never with `sharedStore`. */
  sharedDir?: DirectoryStoreConfig;
  /** How long a lease on a shared checkpoint lives unrenewed (TORPOR_SHARED_LEASE_MS, 60 s). */
  sharedLeaseMs?: number;
  /** The node cache's size limit in bytes (TORPOR_NODE_CACHE_BYTES); absent: unlimited. */
  nodeCacheBytes?: number;
  /** How long a cached copy just fetched or found is held against eviction (10 minutes; tests shorten it). */
  nodeCacheHoldMs?: number;
}

/** Who local workloads, restored copies' readiness probes and their files belong to: never root. */
export interface LocalRuntimeConfig {
  uid: number;
  gid: number;
}

export interface NodeContainerConfig {
  runcPath: string;
  runcRoot: string;
  allowedNamespaces: string[];
  checkpointSourceLabel: string;
  /** On a cluster node: the Kubernetes API's view of a container's pod, checked before anything is frozen. */
  pods?: PodLookup;
}
