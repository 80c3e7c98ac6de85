import { randomBytes, randomInt } from 'node:crypto';
import { execa } from 'execa';

/**
 * A named network namespace wired to the host by a veth pair, as a CNI plugin wires a pod sandbox:
 * eth0 inside with `address`, the host end with `hostAddress`, one /30 of 169.254.77.0/24 each.
 * Only that link-local range is used: this machine allows traffic to loopback and to namespaces a
 * test made itself, nothing else.
 */
export interface TestNetns {
  name: string;
  /** What `ip netns add` bind-mounts; an OCI bundle's network namespace `path`. */
  path: string;
  hostAddress: string;
  address: string;
  /** Deletes the host's veth end (and so the pair) and the namespace; already gone is fine. */
  remove(): Promise<void>;
}

const PREFIX = '169.254.77';
const SUBNETS = 64;

/** The /30 indices of 169.254.77.0/24 some host interface already has an address in. */
async function usedSubnets(): Promise<Set<number>> {
  const { stdout } = await execa('ip', ['-4', '-o', 'addr', 'show']);
  const used = new Set<number>();
  for (const match of stdout.matchAll(/inet 169\.254\.77\.(\d+)\//g)) used.add(Math.floor(Number(match[1]) / 4));
  return used;
}

async function freeSubnet(): Promise<number> {
  const used = await usedSubnets();
  const free = Array.from({ length: SUBNETS }, (_, i) => i).filter((i) => !used.has(i));
  const index = free[randomInt(free.length)];
  if (index === undefined) throw new Error(`no free /30 left in ${PREFIX}.0/24 for a test network namespace`);
  return index;
}

export async function createNetns(): Promise<TestNetns> {
  const suffix = randomBytes(4).toString('hex');
  const name = `torpor-${suffix}`;
  // Interface names are at most 15 bytes.
  const hostLink = `tpv-${suffix}`;
  const subnet = await freeSubnet();
  const hostAddress = `${PREFIX}.${subnet * 4 + 1}`;
  const address = `${PREFIX}.${subnet * 4 + 2}`;
  const remove = async () => {
    await execa('ip', ['link', 'del', hostLink], { reject: false });
    await execa('ip', ['netns', 'del', name], { reject: false });
  };
  try {
    await execa('ip', ['netns', 'add', name]);
    // Created inside the namespace directly: the host has an eth0 of its own.
    await execa('ip', ['link', 'add', hostLink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
    await execa('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', hostLink]);
    await execa('ip', ['link', 'set', hostLink, 'up']);
    await execa('ip', ['-n', name, 'addr', 'add', `${address}/30`, 'dev', 'eth0']);
    await execa('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
    await execa('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (error) {
    await remove();
    throw error;
  }
  return { name, path: `/var/run/netns/${name}`, hostAddress, address, remove };
}
