import { StoreLayout } from '../store/layout.js';
import { containerDumpActivities } from './dump.js';
import { placeholderRestoreActivities } from './placeholder-restore.js';
import type { ContainerAgentConfig } from './types.js';

/** The container activities of a node agent, in checkpoint and restore order, over one store layout. */
export function createContainerActivities(config: ContainerAgentConfig, layout = new StoreLayout(config.storeRoot)) {
  return {
    ...containerDumpActivities(config, layout),
    ...placeholderRestoreActivities(config, layout),
  };
}
