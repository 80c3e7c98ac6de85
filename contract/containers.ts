import { z } from 'zod';
import { torporFailure } from './failures.js';
import { agentTimeoutSchema, hashSchema, nodeSchema, parseOrReject } from './spec.js';

/** A container ID as runc accepts it. */
export const CONTAINER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Drops the runtime prefix Kubernetes puts before a container ID in a pod's status (`containerd://<id>`). */
export function bareContainerId(id: string): string {
  return id.replace(/^[a-z][a-z0-9+.-]*:\/\//, '');
}

/**
 * A container ID, bare or as Kubernetes reports it in a pod's status (`containerd://<id>`,
 * `cri-o://<id>`); the runtime prefix is dropped.
 */
export const containerIdSchema = z
  .string()
  .transform(bareContainerId)
  .pipe(z.string().regex(CONTAINER_ID_PATTERN, 'must be a container ID (letters, digits, "_", ".", "-"), optionally as <runtime>://<id>'));

export const containerCheckpointRequestSchema = z.object({
  node: nodeSchema,
  containerId: containerIdSchema,
  hash: hashSchema,
  agentTimeoutMs: agentTimeoutSchema,
  /** How long the CUDA driver may wait for the container's running GPU work before the lock fails. */
  gpuLockTimeoutMs: z
    .number()
    .int()
    .positive()
    .max(24 * 60 * 60 * 1000, 'must be at most 24 hours')
    .default(30_000),
});

export const containerRestoreRequestSchema = z.object({
  node: nodeSchema,
  hash: hashSchema,
  /** The running placeholder container (ChReK's restore pod's container) the process tree is restored into. */
  placeholderContainerId: containerIdSchema,
  /** The app's DYN_RESTORE_MARKER_FILE; /tmp/dynamo-restored when absent. */
  restoreMarkerFile: z.string().startsWith('/', 'must be an absolute path').optional(),
  agentTimeoutMs: agentTimeoutSchema,
});

export type ContainerCheckpointRequest = z.input<typeof containerCheckpointRequestSchema>;
export type ContainerCheckpointSpec = z.output<typeof containerCheckpointRequestSchema>;
export type ContainerRestoreRequest = z.input<typeof containerRestoreRequestSchema>;
export type ContainerRestoreSpec = z.output<typeof containerRestoreRequestSchema>;

export function parseContainerCheckpointRequest(input: unknown): ContainerCheckpointSpec {
  return parseOrReject(containerCheckpointRequestSchema, input, 'container checkpoint request');
}

export function parseContainerRestoreRequest(input: unknown): ContainerRestoreSpec {
  return parseOrReject(containerRestoreRequestSchema, input, 'container restore request');
}

/** What the node agent says when it was started without a container runtime. */
export function noContainerRuntime(node: string) {
  return torporFailure('TargetNotAllowed', `The node agent of ${node} has no container runtime configured (set TORPOR_RUNC_ROOT)`);
}
