import { bareContainerId, CONTAINER_ID_PATTERN } from '../../../contract/containers.js';
import { torporFailure } from '../../../contract/failures.js';
import { HASH_LABEL, MANAGED_BY, ROLE_LABEL } from '../../cluster/manifests.js';
import type { ContainerLabels, ContainerTarget, RuncContainer } from './types.js';

/** The pod a container belongs to, as CRI runtimes annotate it: containerd's keys first, then CRI-O's. */
const POD_NAMESPACE_ANNOTATIONS = ['io.kubernetes.cri.sandbox-namespace', 'io.kubernetes.pod.namespace'];
const POD_NAME_ANNOTATIONS = ['io.kubernetes.cri.sandbox-name', 'io.kubernetes.pod.name'];
const CONTAINER_NAME_ANNOTATIONS = ['io.kubernetes.cri.container-name', 'io.kubernetes.container.name'];

/** Anything that is not a container ID is refused before runc sees it. */
export function checkContainerId(raw: string): string {
  const id = bareContainerId(String(raw));
  if (!CONTAINER_ID_PATTERN.test(id)) throw torporFailure('InvalidSpec', `"${id}" is not a container ID (letters, digits, "_", ".", "-")`);
  return id;
}

/** A request names the node it means; an agent serves only its own. */
export function checkNode(requested: string | undefined, own: string): void {
  if (requested !== undefined && requested !== own) {
    throw torporFailure('TargetNotAllowed', `The request is for node "${requested}", but this agent serves node "${own}"`);
  }
}

export function containerLabels(annotations: Record<string, string>): ContainerLabels {
  const first = (keys: string[]) => keys.map((k) => annotations[k]).find((v) => v !== undefined) ?? '';
  return {
    podNamespace: first(POD_NAMESPACE_ANNOTATIONS),
    podName: first(POD_NAME_ANNOTATIONS),
    containerName: first(CONTAINER_NAME_ANNOTATIONS),
  };
}

/** What the Kubernetes API says about a container's pod (the agent reads it itself; workflow input is not trusted). */
export interface PodFacts {
  labels: Record<string, string>;
  nodeName: string;
  /** The container IDs in its status, without the runtime prefix. */
  containerIds: string[];
}

export type PodLookup = (namespace: string, name: string) => Promise<PodFacts | undefined>;

/**
 * With the Kubernetes API (a cluster node): the pod must exist, be bound to this node and list
 * this container in its status. Returns the pod's labels, where the checkpoint-source label is.
 */
export function checkPod(
  containerId: string,
  labels: ContainerLabels,
  pod: PodFacts | undefined,
  nodeName: string,
): Record<string, string> {
  const name = `${labels.podNamespace}/${labels.podName}`;
  const details = { containerId, ...labels };
  if (!pod)
    throw torporFailure('TargetNotAllowed', `Container ${containerId} claims pod ${name}, which the Kubernetes API does not know`, details);
  if (pod.nodeName !== nodeName) {
    throw torporFailure('TargetNotAllowed', `Pod ${name} runs on node "${pod.nodeName}", not on this agent's node "${nodeName}"`, details);
  }
  if (!pod.containerIds.includes(containerId)) {
    throw torporFailure('TargetNotAllowed', `Pod ${name} does not list container ${containerId} in its status`, details);
  }
  return pod.labels;
}

/** The container's pod must be in a namespace this agent serves; `what` names it in the refusal. */
export function checkNamespace(what: string, labels: ContainerLabels, allowedNamespaces: string[], containerId: string): void {
  if (!labels.podNamespace || !allowedNamespaces.includes(labels.podNamespace)) {
    throw torporFailure(
      'TargetNotAllowed',
      `${what} is in pod namespace "${labels.podNamespace}", which this agent does not allow (allowed: ${allowedNamespaces.join(', ') || 'none'})`,
      { containerId, ...labels },
    );
  }
}

export interface TargetPolicy {
  allowedNamespaces: string[];
  checkpointSourceLabel: string;
}

/**
 * Decides from runc's own view of the container (and, on a cluster node, the Kubernetes API's view
 * of its pod) whether it may be frozen; pure, so every refusal is unit-testable.
 */
export function verifyContainerTarget(
  container: RuncContainer,
  policy: TargetPolicy,
  pod?: { facts: PodFacts | undefined; nodeName: string },
): ContainerTarget {
  const labels = containerLabels(container.annotations);
  const details = { containerId: container.id, ...labels };
  const podLabels = pod ? checkPod(container.id, labels, pod.facts, pod.nodeName) : container.annotations;
  if (podLabels[policy.checkpointSourceLabel] !== 'true') {
    const where = pod ? `Pod ${labels.podNamespace}/${labels.podName}` : `Container ${container.id}`;
    throw torporFailure('TargetNotAllowed', `${where} does not carry ${policy.checkpointSourceLabel}: "true"`, details);
  }
  checkNamespace(`Container ${container.id}`, labels, policy.allowedNamespaces, container.id);
  if (container.status !== 'running' || container.initPid <= 0) {
    throw torporFailure('TargetNotAllowed', `Container ${container.id} is ${container.status}, not running`, details);
  }
  return { ...container, labels };
}

/**
 * A placeholder is a pod Torpor's control worker created to restore this hash into: the API's
 * labels, which containerd's annotations do not carry, must say so. Any other running container of
 * the namespace is refused.
 */
export function checkPlaceholderPod(containerId: string, labels: ContainerLabels, podLabels: Record<string, string>, hash: string): void {
  const expected = { ...MANAGED_BY, [ROLE_LABEL]: 'restore', [HASH_LABEL]: hash };
  const wrong = Object.entries(expected).filter(([key, value]) => podLabels[key] !== value);
  if (wrong.length > 0) {
    throw torporFailure(
      'TargetNotAllowed',
      `Pod ${labels.podNamespace}/${labels.podName} is not a Torpor restore placeholder for ${hash} (labels ${wrong.map(([k, v]) => `${k}=${v}`).join(', ')} missing)`,
      { containerId, ...labels },
    );
  }
}
