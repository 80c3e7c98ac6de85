/** Every ID and queue name derives from content (DESIGN invariant 2). */
export const CONTROL_TASK_QUEUE = 'torpor-control';

export function nodeTaskQueue(node: string): string {
  return `torpor-node-${node}`;
}

export function checkpointWorkflowId(hash: string): string {
  return `checkpoint/${hash}`;
}

export function restoreWorkflowId(hash: string, restoreId: string): string {
  return `restore/${hash}/${restoreId}`;
}
