import { constants } from 'node:fs';
import { open, readlink } from 'node:fs/promises';
import { execa } from 'execa';
import { readBundleSpec } from './placeholder-mounts.js';

/** A device node as an OCI bundle lists it (linux.devices). */
export interface DeviceNode {
  path: string;
  type: string;
  major: number;
  minor: number;
}

const GPU_NODE = /^\/dev\/(nvidia[0-9]+|nvidiactl|nvidia-uvm|nvidia-uvm-tools|nvidia-modeset)$/;

/** The NVIDIA character devices the container runtime gave a container (its bundle's linux.devices). */
export async function bundleGpuNodes(bundle: string): Promise<DeviceNode[]> {
  const spec = (await readBundleSpec(bundle)) as { linux?: { devices?: DeviceNode[] } };
  return (spec.linux?.devices ?? []).filter((d) => d.type === 'c' && GPU_NODE.test(d.path));
}

/**
 * A tree restored into a placeholder gets the mount namespace of its dump, whose /dev (the tmpfs
 * runc made) holds the source container's GPU nodes, not the placeholder's. The CUDA driver
 * restores the GPU state from inside the process and opens the new GPU's node in that /dev, so the
 * nodes the placeholder was given are created there first (existing ones are left as they are).
 * The directory is opened without following a link and mknod works through that descriptor: a link
 * planted by the restored app cannot point the agent at the host's files.
 */
export async function provideGpuNodes(pids: number[], nodes: DeviceNode[]): Promise<void> {
  if (nodes.length === 0) return;
  const namespaces = new Set<string>();
  for (const pid of pids) {
    const ns = await readlink(`/proc/${pid}/ns/mnt`).catch(() => null);
    if (ns === null || namespaces.has(ns)) continue;
    namespaces.add(ns);
    const dev = await open(`/proc/${pid}/root/dev`, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      for (const node of nodes) {
        const name = node.path.slice('/dev/'.length);
        const made = await execa('mknod', ['-m', '666', `/proc/self/fd/3/${name}`, 'c', String(node.major), String(node.minor)], {
          reject: false,
          // execa passes a plain number through as the child's fd 3; its types take numbers only for 0-2.
          stdio: ['ignore', 'pipe', 'pipe', dev.fd] as unknown as ['ignore', 'pipe', 'pipe'],
        });
        if (made.exitCode !== 0 && !/File exists/.test(made.stderr))
          throw new Error(`mknod ${node.path} in pid ${pid}'s /dev: ${made.stderr}`);
      }
    } finally {
      await dev.close();
    }
  }
}
