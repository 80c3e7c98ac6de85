import { torporFailure } from '../../contract/failures.js';
import { type KubernetesWorkload, rejectWorkerConfiguredFields } from '../../contract/kubernetes.js';

/**
 * What the control worker's operator decides and a request cannot: where workloads may run, which
 * images and ServiceAccounts they may use, and what is mounted into their pods.
 */
export interface ClusterPolicy {
  /** Namespaces the control worker may create workloads in; never empty (`kube-system` only when listed). */
  allowedNamespaces: string[];
  /**
   * Images a request may name, never empty: `repo@sha256:<digest>` matches that digest only,
   * `repo:tag` that reference, `repo` any tag or digest of that repository, `prefix*` any image
   * starting with `prefix`.
   */
  allowedImages: string[];
  /** Only images pinned by digest (`@sha256:`) are accepted. */
  requireImageDigest: boolean;
  /** ServiceAccounts a request may name; when it names none the pod gets no API token. */
  allowedServiceAccounts: string[];
  /** The node agent's checkpoint store on each node; a restore pod sees only its hash's directory, read-only. */
  checkpointHostPath: string;
  /** Where pods see the store (ChReK's `DYN_CHECKPOINT_PATH`, `/checkpoints`). */
  checkpointMountPath: string;
  /** The host directory of ChReK's signal files, mounted read-only into pods. */
  signalHostPath: string;
}

const DIGEST = /@sha256:[a-f0-9]{64}$/;
/** A plain image reference: registry/path, then a tag, a digest or both; nothing a prefix match could be fooled by. */
const IMAGE_REFERENCE =
  /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;

/** Refuses, at start-up, a policy that would let a request choose more than its operator meant. */
export function checkClusterPolicy(policy: ClusterPolicy): void {
  if (policy.allowedNamespaces.length === 0) {
    throw new Error(
      'The control worker needs at least one allowed namespace (TORPOR_ALLOWED_NAMESPACES); an empty list refuses everything',
    );
  }
  if (policy.allowedImages.length === 0) {
    throw new Error('The control worker needs at least one allowed image (TORPOR_ALLOWED_IMAGES); an empty list refuses everything');
  }
  for (const [name, value] of Object.entries({
    checkpointHostPath: policy.checkpointHostPath,
    checkpointMountPath: policy.checkpointMountPath,
    signalHostPath: policy.signalHostPath,
  })) {
    if (!value.startsWith('/') || value === '/' || value.split('/').includes('..')) {
      throw new Error(`The control worker's ${name} must be an absolute directory below / (got "${value}")`);
    }
  }
}

export function allowNamespace(policy: ClusterPolicy, namespace: string): void {
  if (!policy.allowedNamespaces.includes(namespace)) {
    throw torporFailure(
      'TargetNotAllowed',
      `Namespace ${namespace} is not in this control worker's allowed namespaces (${policy.allowedNamespaces.join(', ') || 'none'})`,
    );
  }
}

function imageMatches(entry: string, image: string): boolean {
  if (entry.endsWith('*')) return image.startsWith(entry.slice(0, -1));
  if (image === entry) return true;
  // A bare repository (no tag, no digest) allows its tags and digests.
  const bare = !entry.includes('@') && !/:[^/]*$/.test(entry);
  return bare && (image.startsWith(`${entry}:`) || image.startsWith(`${entry}@`));
}

export function allowImage(policy: ClusterPolicy, image: string): void {
  if (!IMAGE_REFERENCE.test(image)) throw torporFailure('InvalidSpec', `kubernetes.image "${image}" is not an image reference`);
  if (policy.requireImageDigest && !DIGEST.test(image)) {
    throw torporFailure('TargetNotAllowed', `Image ${image} is not pinned by digest (@sha256:...), which this control worker requires`);
  }
  if (!policy.allowedImages.some((entry) => imageMatches(entry, image))) {
    throw torporFailure('TargetNotAllowed', `Image ${image} is not in this control worker's allowed images`);
  }
}

export function allowServiceAccount(policy: ClusterPolicy, name: string | undefined): void {
  if (name !== undefined && !policy.allowedServiceAccounts.includes(name)) {
    throw torporFailure(
      'TargetNotAllowed',
      `ServiceAccount ${name} is not in this control worker's allowed ServiceAccounts (${policy.allowedServiceAccounts.join(', ') || 'none'})`,
    );
  }
}

/** Every check a workload passes before the control worker sends anything to the API server. */
export function allowWorkload(policy: ClusterPolicy, w: KubernetesWorkload): void {
  rejectWorkerConfiguredFields(w);
  allowNamespace(policy, w.namespace);
  allowImage(policy, w.image);
  allowServiceAccount(policy, w.serviceAccountName);
}
