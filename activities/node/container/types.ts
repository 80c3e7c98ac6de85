import type { NetworkLockMethod } from '../../../contract/network.js';
import type { WorkloadSpec } from '../../../contract/spec.js';
import type { OciMount } from './placeholder-mounts.js';
import type { PodLookup } from './target-policy.js';

/** What the container side of a node agent is told at start-up. */
export interface ContainerAgentConfig {
  /** The runc executable (a wrapper on PATH by default). */
  runcPath: string;
  /** runc's state directory (`runc --root`): only containers under it count as "on this node". */
  runcRoot: string;
  /** The CRIU executable runc should use (`runc --criu`); its directory also goes first on PATH, for iptables-restore. */
  criuPath: string;
  /** How CRIU locks the container's network namespace while it dumps (the node agent's setting). */
  networkLock: NetworkLockMethod;
  /** Pod namespaces whose containers may be checkpointed. */
  allowedNamespaces: string[];
  /** The annotation a container must carry with the value "true" (default `torpor.dev/checkpoint-source`). */
  checkpointSourceLabel: string;
  /** Scratch space for runc's work directories (CRIU logs of restores). */
  workRoot: string;
  /** The agent's checkpoint store: checkpoints at `<storeRoot>/<hash>` (ChReK's layout: the smart entrypoint looks for `<hash>/checkpoint.done`). */
  storeRoot: string;
  /** This node's name; a request meant for another node is refused. */
  nodeName: string;
  /** The commit's chunk size (the node agent's digestChunkBytes), for the chunks hashed while CRIU writes. */
  digestChunkBytes: number;
  /** On a cluster node: reads a container's pod from the Kubernetes API (labels, node, container IDs). */
  pods?: PodLookup;
}

/** The labels Kubernetes (through containerd) writes into a container's bundle annotations. */
export interface ContainerLabels {
  podNamespace: string;
  podName: string;
  containerName: string;
}

/** A container as runc reports it, with the annotations of its bundle's config.json. */
export interface RuncContainer {
  id: string;
  initPid: number;
  status: string;
  bundle: string;
  rootfs: string;
  annotations: Record<string, string>;
  /** The command and environment (KEY=value) of its process, and its mounts, as the bundle sets them. */
  args: string[];
  env: string[];
  mounts: OciMount[];
}

/** A container that passed verification: it may be frozen. */
export interface ContainerTarget extends RuncContainer {
  labels: ContainerLabels;
}

/** Names the node the caller believes the container is on; the agent refuses a request meant for another node. */
export interface NodeBound {
  nodeName?: string;
}

export interface DumpContainerInput extends NodeBound {
  containerId: string;
  /** The checkpoint's name in the store (ChReK's checkpoint hash). */
  hash: string;
  /** Names the staging directory (`<hash>.<suffix>`); `commitCheckpoint` commits it. */
  dumpId: string;
  /** The workload as the request described it, recorded in the manifest; the container's command otherwise. */
  workload?: WorkloadSpec;
}

export interface DumpContainerResult {
  hash: string;
  dumpId: string;
  labels: ContainerLabels;
  initPid: number;
  dumpMs: number;
  rootfsDiffBytes: number;
  imageBytes: number;
  /** True when the hash was already committed (from this container): nothing was dumped. */
  alreadyCommitted: boolean;
}

export interface RestoreIntoPlaceholderInput extends NodeBound {
  hash: string;
  /** The running placeholder container (same image, a command that waits) the process tree is restored into. */
  placeholderContainerId: string;
  /**
   * Where to write ChReK's restore marker; by default where the checkpointed app looks for it (its
   * DYN_RESTORE_MARKER_FILE, recorded at the dump), else /tmp/dynamo-restored.
   */
  restoreMarkerFile?: string;
}

export interface RestoreIntoPlaceholderResult {
  placeholderContainerId: string;
  /** The restored root process, as the host sees it and as the placeholder's own PID namespace sees it. */
  hostPid: number;
  placeholderPid: number;
  restoreMs: number;
  /** True when an earlier attempt had already restored it (the activity ran again). */
  alreadyRestored: boolean;
  /** Bytes of the checkpoint hashed and matched before the tree resumed (0 when found already restored). */
  verifiedBytes: number;
  /** Hashing lanes beside CRIU: a few from a cold page cache, one per core when the images were cached. */
  verifyLanes?: number;
  /** Mapped files (libraries) read ahead before the verification lanes started (what CRIU reads of them), the bytes asked for, and how long it took. */
  mappedFilesWarmed?: number;
  warmedBytes?: number;
  warmMs?: number;
  /** Why nothing was read ahead, when the warming could not run (no files image, openat2 missing, ...). */
  warmSkipped?: string;
}

/** What a container checkpoint records about its source (in container.json, with the file digests). */
export interface ContainerCheckpointRecord {
  containerId: string;
  node: string;
  labels: ContainerLabels;
  /** The overlay lower layers of the rootfs: the image; a restore needs a placeholder with the same. */
  imageLayers: string;
  runcVersion: string;
  createdAt: string;
  dumpMs: number;
  rootfsDiffBytes: number;
  /** Where the checkpointed app looks for ChReK's restore marker (its DYN_RESTORE_MARKER_FILE), if it set one. */
  restoreMarkerFile?: string;
}
