import type { DumpContainerResult, RestoreIntoPlaceholderResult } from '../activities/node/container/types.js';
import {
  type ContainerCheckpointRequest,
  type ContainerRestoreRequest,
  parseContainerCheckpointRequest,
  parseContainerRestoreRequest,
} from '../contract/containers.js';
import { nodeActivities } from './activity-policies.js';
import { surfaceFailure } from './failures.js';
import { trackProgress } from './progress.js';

export interface ContainerCheckpointResult extends DumpContainerResult {
  node: string;
  containerId: string;
}

export interface ContainerRestoreResult extends RestoreIntoPlaceholderResult {
  node: string;
  hash: string;
}

/**
 * containerCheckpoint: validate → the node agent resolves and verifies the container from its
 * runtime, dumps it (the container keeps running) and commits it. Workflow ID
 * `container-checkpoint/<hash>/<node>`; a committed hash is returned as it is.
 */
export async function containerCheckpoint(request: ContainerCheckpointRequest): Promise<ContainerCheckpointResult> {
  const tracker = trackProgress();
  const spec = parseContainerCheckpointRequest(request);
  const { hash, node, containerId } = spec;
  tracker.identify(hash, node);
  const agent = nodeActivities(node, spec.agentTimeoutMs);
  try {
    const dumped = await tracker.step('dumping', () => agent.heavy.dumpContainer({ containerId, hash, nodeName: node }));
    tracker.progress.bytesWritten = dumped.totalBytes;
    tracker.set('done');
    return { ...dumped, node, containerId };
  } catch (err) {
    tracker.set('failed');
    throw surfaceFailure(err, node);
  }
}

/**
 * containerRestore: validate → the node agent verifies the checkpoint and the placeholder,
 * replays the rootfs changes, writes the restore marker and restores the process tree into the
 * placeholder's namespaces. Workflow ID `container-restore/<hash>/<placeholder>`; run again, it
 * finds the tree it restored instead of restoring a second one.
 */
export async function containerRestore(request: ContainerRestoreRequest): Promise<ContainerRestoreResult> {
  const tracker = trackProgress();
  const spec = parseContainerRestoreRequest(request);
  const { hash, node } = spec;
  tracker.identify(hash, node);
  const agent = nodeActivities(node, spec.agentTimeoutMs);
  try {
    const restored = await tracker.step('restoring', () =>
      agent.heavy.restoreIntoPlaceholder({
        hash,
        placeholderContainerId: spec.placeholderContainerId,
        nodeName: node,
        ...(spec.restoreMarkerFile ? { restoreMarkerFile: spec.restoreMarkerFile } : {}),
      }),
    );
    tracker.set('done');
    return { ...restored, node, hash };
  } catch (err) {
    tracker.set('failed');
    throw surfaceFailure(err, node);
  }
}
