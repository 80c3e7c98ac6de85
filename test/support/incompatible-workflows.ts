/** A deliberately incompatible change of the checkpoint workflow: it dumps before it looks up. */
import { proxyActivities } from '@temporalio/workflow';
import type { NodeActivities } from '../../activities/node/index.js';
import type { CheckpointRequest } from '../../contract/spec.js';

export async function checkpoint(request: CheckpointRequest): Promise<void> {
  const agent = proxyActivities<NodeActivities>({ taskQueue: `torpor-node-${request.node}`, startToCloseTimeout: '1 minute' });
  await agent.dumpWorkload({ hash: request.hash, dumpId: `${request.hash}.x` });
}
