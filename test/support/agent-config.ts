import type { LocalRuntimeConfig, NodeAgentConfig } from '../../activities/node/agent-config.js';
import { canDumpOtherUsers } from '../../activities/node/proc/capabilities.js';

/**
 * Who tests run local workloads as: nobody, as on a node. A sandbox that drops CAP_SYS_RESOURCE
 * from root (this project's CI machine does) leaves CRIU unable to dump a process of another user,
 * so there the tests that checkpoint run their workloads as root; test/hostile proves the non-root path.
 */
export const TEST_LOCAL_USER: LocalRuntimeConfig = canDumpOtherUsers() ? { uid: 65534, gid: 65534 } : { uid: 0, gid: 0 };

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
    localRuntime: TEST_LOCAL_USER,
    ...overrides,
  };
}
