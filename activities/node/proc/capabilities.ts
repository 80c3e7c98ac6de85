import { readFileSync } from 'node:fs';

const CAP_SYS_RESOURCE = 24n;

/**
 * Whether this process holds CAP_SYS_RESOURCE, without which the kernel hides another user's
 * resource limits (prlimit) from root: CRIU reads them to dump a process and so cannot dump a
 * workload that runs as another user. Some sandboxes drop it from root's bounding set.
 */
export function canDumpOtherUsers(status = readFileSync('/proc/self/status', 'utf8')): boolean {
  const effective = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0';
  return ((BigInt(`0x${effective}`) >> CAP_SYS_RESOURCE) & 1n) === 1n;
}
