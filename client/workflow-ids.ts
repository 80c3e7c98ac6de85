import { randomUUID } from 'node:crypto';

/** IDs of the callers' workflows and schedules; content-derived where a second request should join the first. */
export const workflowIds = {
  refresh: (name: string, node: string) => `refresh/${name}/${node}`,
  gc: (node: string) => `gc/${node}`,
  delete: (hash: string, node: string) => `delete/${hash}/${node}`,
  list: (node: string) => `list/${node}/${shortId()}`,
  inspect: (hash: string, node: string) => `inspect/${hash}/${node}/${shortId()}`,
  specHash: (name: string, node: string) => `spec-hash/${name}/${node}/${shortId()}`,
  containerCheckpoint: (hash: string, node: string) => `container-checkpoint/${hash}/${node}`,
  containerRestore: (hash: string, placeholder: string) => `container-restore/${hash}/${placeholder}`,
  refreshSchedule: (name: string, node: string) => `refresh/${name}/${node}`,
};

function shortId(): string {
  return randomUUID().slice(0, 8);
}
