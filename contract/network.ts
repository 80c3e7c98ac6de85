import { z } from 'zod';

/**
 * What a checkpoint does with the workload's established TCP connections. Listening TCP and bound
 * UDP sockets are always kept (IPv4 and IPv6, any or loopback address).
 * - `close`: the original keeps running after the dump and its connections are not saved; the
 *   restored process finds them closed and its clients reconnect. The only choice when the restore
 *   lands in another network namespace or on another node (a placeholder pod).
 * - `keep`: CRIU saves every connection with TCP repair and stops the original while its
 *   connections are locked; the restore takes them over on the same host and address, and the
 *   clients keep their connections. The original does not run again after the dump.
 */
export const ESTABLISHED_POLICIES = ['close', 'keep'] as const;
export type EstablishedPolicy = (typeof ESTABLISHED_POLICIES)[number];
export const establishedPolicySchema = z.enum(ESTABLISHED_POLICIES, { error: 'must be "close" or "keep"' });

export const tcpPortSchema = z.number().int().min(1, 'must be a TCP port (1-65535)').max(65535, 'must be a TCP port (1-65535)');
export const httpPathSchema = z.string().startsWith('/', 'must start with /').max(2048).default('/');

export const networkSectionSchema = z.object({ established: establishedPolicySchema.optional() });

/**
 * How CRIU blocks traffic of the connections it saves: `iptables` runs iptables-restore (needs the
 * binary on PATH), `nftables` talks to the kernel through the libnftables CRIU 4.2 links.
 */
export const NETWORK_LOCK_METHODS = ['iptables', 'nftables'] as const;
export type NetworkLockMethod = (typeof NETWORK_LOCK_METHODS)[number];

/** The network settings a dump was made with; a restore uses the same. */
export interface NetworkPolicy {
  established: EstablishedPolicy;
  lock: NetworkLockMethod;
}
