import { CONTAINER_ID_PATTERN } from '../../../contract/containers.js';
import { torporFailure } from '../../../contract/failures.js';
import type { ContainerLabels, ContainerTarget, RuncContainer } from './types.js';

export const POD_NAMESPACE_ANNOTATION = 'io.kubernetes.pod.namespace';
export const POD_NAME_ANNOTATION = 'io.kubernetes.pod.name';
export const CONTAINER_NAME_ANNOTATION = 'io.kubernetes.container.name';
/** Mirrors ChReK's `nvidia.com/checkpoint-source` pod label. */
export const DEFAULT_CHECKPOINT_SOURCE_LABEL = 'torpor.dev/checkpoint-source';

/** Anything that is not a container ID is refused before runc sees it. */
export function checkContainerId(id: string): string {
  if (!CONTAINER_ID_PATTERN.test(id)) throw torporFailure('InvalidSpec', `"${id}" is not a container ID (letters, digits, "_", ".", "-")`);
  return id;
}

/** A request names the node it means; an agent serves only its own. */
export function checkNode(requested: string | undefined, own: string): void {
  if (requested !== undefined && requested !== own) {
    throw torporFailure('TargetNotAllowed', `the request is for node "${requested}", but this agent serves node "${own}"`);
  }
}

export function containerLabels(annotations: Record<string, string>): ContainerLabels {
  return {
    podNamespace: annotations[POD_NAMESPACE_ANNOTATION] ?? '',
    podName: annotations[POD_NAME_ANNOTATION] ?? '',
    containerName: annotations[CONTAINER_NAME_ANNOTATION] ?? '',
  };
}

export interface TargetPolicy {
  allowedNamespaces: string[];
  checkpointSourceLabel: string;
}

/** Decides from runc's own view of the container whether it may be frozen; pure, so every refusal is unit-testable. */
export function verifyContainerTarget(container: RuncContainer, policy: TargetPolicy): ContainerTarget {
  const labels = containerLabels(container.annotations);
  const details = { containerId: container.id, ...labels };
  if (container.annotations[policy.checkpointSourceLabel] !== 'true') {
    throw torporFailure('TargetNotAllowed', `container ${container.id} does not carry ${policy.checkpointSourceLabel}: "true"`, details);
  }
  if (!labels.podNamespace || !policy.allowedNamespaces.includes(labels.podNamespace)) {
    throw torporFailure(
      'TargetNotAllowed',
      `container ${container.id} is in pod namespace "${labels.podNamespace}", which this agent does not allow (allowed: ${policy.allowedNamespaces.join(', ') || 'none'})`,
      details,
    );
  }
  if (container.status !== 'running' || container.initPid <= 0) {
    throw torporFailure('TargetNotAllowed', `container ${container.id} is ${container.status}, not running`, details);
  }
  return { ...container, labels };
}
