import type { ClusterPolicy } from '../../activities/cluster/policy.js';

/** The control worker's policy as the chart sets it: these namespaces, the test registry's images, the store on each node. */
export function testClusterPolicy(allowedNamespaces: string[], overrides: Partial<ClusterPolicy> = {}): ClusterPolicy {
  return {
    allowedNamespaces,
    allowedImages: ['registry.example/*'],
    requireImageDigest: false,
    allowedServiceAccounts: [],
    checkpointHostPath: '/var/lib/torpor/checkpoints',
    checkpointMountPath: '/checkpoints',
    signalHostPath: '/var/lib/chrek/signals',
    ...overrides,
  };
}
