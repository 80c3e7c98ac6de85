import { uuid4 } from '@temporalio/workflow';
import type { ContainerLabels, RestoreIntoPlaceholderResult } from '../activities/node/container/types.js';
import {
  type ContainerCheckpointRequest,
  type ContainerRestoreRequest,
  parseContainerCheckpointRequest,
  parseContainerRestoreRequest,
} from '../contract/containers.js';
import type { CheckpointManifest } from '../contract/types.js';
import { nodeActivities } from './activity-policies.js';
import { Compensations } from './compensations.js';
import { surfaceFailure } from './failures.js';
import { trackProgress } from './progress.js';

export interface ContainerCheckpointResult {
  hash: string;
  node: string;
  containerId: string;
  outcome: 'created' | 'existing';
  labels: ContainerLabels;
  manifest: CheckpointManifest;
  stepMs: Record<string, number>;
}

export interface ContainerRestoreResult extends RestoreIntoPlaceholderResult {
  node: string;
  hash: string;
  verifiedBytes: number;
  stepMs: Record<string, number>;
}

/**
 * containerCheckpoint: validate → the node agent resolves and verifies the container from its
 * runtime and dumps it (it keeps running) → commit (sha256 manifest, rename, marker), as for a
 * process. Workflow ID `container-checkpoint/<hash>/<node>`; a hash committed from the same
 * container is returned as it is.
 */
export async function containerCheckpoint(request: ContainerCheckpointRequest): Promise<ContainerCheckpointResult> {
  const tracker = trackProgress();
  const spec = parseContainerCheckpointRequest(request);
  const { hash, node, containerId } = spec;
  tracker.identify(hash, node);
  const agent = nodeActivities(node, spec.agentTimeoutMs);
  const undo = new Compensations();
  try {
    const dumpId = `${hash}.${uuid4().slice(0, 8)}`;
    undo.add('discard the temporary dump', () => agent.quick.discardDump({ hash, dumpId }));
    const dumped = await tracker.step('dumping', () => agent.heavy.dumpContainer({ containerId, hash, dumpId, nodeName: node }));
    tracker.progress.bytesWritten = dumped.imageBytes;
    const manifest = await tracker.step('committing', () =>
      agent.heavy.commitCheckpoint({ hash, dumpId, startToReadyMs: 0, dumpMs: dumped.dumpMs, gpu: null }),
    );
    tracker.set('done');
    const outcome = dumped.alreadyCommitted ? 'existing' : 'created';
    return { hash, node, containerId, outcome, labels: dumped.labels, manifest, stepMs: tracker.progress.stepMs };
  } catch (err) {
    tracker.set('compensating');
    await undo.run();
    tracker.set('failed');
    throw surfaceFailure(err, node);
  }
}

/**
 * containerRestore: validate → verify the checkpoint (marker + checksums) → the node agent checks
 * the placeholder, replays the rootfs changes, writes the restore marker and restores the process
 * tree into the placeholder's namespaces. Workflow ID `container-restore/<hash>/<placeholder>`;
 * run again, it finds the tree it restored instead of restoring a second one.
 */
export async function containerRestore(request: ContainerRestoreRequest): Promise<ContainerRestoreResult> {
  const tracker = trackProgress();
  const spec = parseContainerRestoreRequest(request);
  const { hash, node } = spec;
  tracker.identify(hash, node);
  const agent = nodeActivities(node, spec.agentTimeoutMs);
  try {
    const verified = await tracker.step('verifying', () => agent.heavy.verifyCheckpoint({ hash }));
    tracker.progress.bytesWritten = verified.verifiedBytes;
    const restored = await tracker.step('restoring', () =>
      agent.heavy.restoreIntoPlaceholder({
        hash,
        placeholderContainerId: spec.placeholderContainerId,
        nodeName: node,
        ...(spec.restoreMarkerFile ? { restoreMarkerFile: spec.restoreMarkerFile } : {}),
      }),
    );
    tracker.set('done');
    return { ...restored, node, hash, verifiedBytes: verified.verifiedBytes, stepMs: tracker.progress.stepMs };
  } catch (err) {
    tracker.set('failed');
    throw surfaceFailure(err, node);
  }
}
