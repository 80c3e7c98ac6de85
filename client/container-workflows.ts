import type { Client } from '@temporalio/client';
import {
  type ContainerCheckpointRequest,
  type ContainerRestoreRequest,
  parseContainerCheckpointRequest,
  parseContainerRestoreRequest,
} from '../contract/containers.js';
import type { containerCheckpoint, containerRestore } from '../workflows/index.js';
import { validated } from './errors.js';
import { type StartedWorkflow, startWorkflow } from './start-workflow.js';
import { workflowIds } from './workflow-ids.js';

export async function startContainerCheckpointWorkflow(
  client: Client,
  request: ContainerCheckpointRequest,
): Promise<StartedWorkflow<typeof containerCheckpoint>> {
  const spec = validated(() => parseContainerCheckpointRequest(request));
  return startWorkflow<typeof containerCheckpoint>(
    client,
    'containerCheckpoint',
    workflowIds.containerCheckpoint(spec.hash, spec.node),
    request,
    `Checkpoint container ${spec.containerId} as ${spec.hash} on ${spec.node}`,
    { join: true },
  );
}

export async function startContainerRestoreWorkflow(
  client: Client,
  request: ContainerRestoreRequest,
): Promise<StartedWorkflow<typeof containerRestore>> {
  const spec = validated(() => parseContainerRestoreRequest(request));
  return startWorkflow<typeof containerRestore>(
    client,
    'containerRestore',
    workflowIds.containerRestore(spec.hash, spec.placeholderContainerId),
    request,
    `Restore ${spec.hash} into container ${spec.placeholderContainerId} on ${spec.node}`,
    { join: true },
  );
}
