import type { NodeAgentConfig } from '../../activities/node/agent-config.js';

/** A node agent's configuration for tests that call its activities directly, over `storageRoot`. */
export function testAgentConfig(storageRoot: string, overrides: Partial<NodeAgentConfig> = {}): NodeAgentConfig {
  return {
    nodeName: 'n1',
    storageRoot,
    criuPath: 'criu',
    extraDumpArgs: [],
    extraRestoreArgs: [],
    networkLock: 'nftables',
    digestChunkBytes: 1 << 20,
    torporVersion: 'test',
    ...overrides,
  };
}
