/** What the container side of a node agent is told at start-up. */
export interface ContainerAgentConfig {
  /** The runc executable (a wrapper on PATH by default). */
  runcPath: string;
  /** runc's state directory (`runc --root`): only containers under it count as "on this node". */
  runcRoot: string;
  /** The CRIU executable runc should use (`runc --criu`); its directory also goes first on PATH, for iptables-restore. */
  criuPath: string;
  /** Pod namespaces whose containers may be checkpointed. */
  allowedNamespaces: string[];
  /** The annotation a container must carry with the value "true" (default `torpor.dev/checkpoint-source`). */
  checkpointSourceLabel: string;
  /** Scratch space for runc's work directories (CRIU logs of restores). */
  workRoot: string;
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
}

/** A container that passed verification: it may be frozen. */
export interface ContainerTarget extends RuncContainer {
  labels: ContainerLabels;
}

export interface DumpContainerInput {
  containerId: string;
  /** An empty or absent directory the checkpoint is written to (images/, rootfs-diff.tar, container.json). */
  checkpointDir: string;
}

export interface DumpContainerResult {
  checkpointDir: string;
  labels: ContainerLabels;
  initPid: number;
  dumpMs: number;
  rootfsDiffBytes: number;
}

export interface RestoreContainerInput {
  checkpointDir: string;
  /** The placeholder's bundle: same image (overlay lower layers) as the checkpointed container, not yet started. */
  placeholderBundle: string;
  /** The ID of the restored container. */
  containerId: string;
}

export interface RestoreContainerResult {
  containerId: string;
  initPid: number;
  restoreMs: number;
}

/** What a container checkpoint records beside its CRIU images (container.json). */
export interface ContainerCheckpointRecord {
  containerId: string;
  labels: ContainerLabels;
  /** The overlay lower layers of the rootfs: the image; a restore needs a placeholder with the same. */
  imageLayers: string;
  runcVersion: string;
  createdAt: string;
}
