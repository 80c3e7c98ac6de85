import { readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { torporFailure } from '../../../contract/failures.js';
import { type CgroupDir, cgroupDirs, parseCgroupMounts, parseProcCgroup } from './cgroups.js';
import { requireContainer } from './runc.js';
import { checkNamespace, checkPlaceholderPod, checkPod, containerLabels } from './target-policy.js';
import type { ContainerAgentConfig, ContainerLabels, RuncContainer } from './types.js';

/** A running placeholder container the agent may restore into, with the cgroups it is in on this host. */
export interface Placeholder extends RuncContainer {
  labels: ContainerLabels;
  cgroups: CgroupDir[];
}

/**
 * Finds the placeholder through runc under this agent's root, and checks its pod before anything is
 * written into it: on a cluster node, a restore pod Torpor created for `hash`.
 */
export async function resolvePlaceholder(config: ContainerAgentConfig, containerId: string, hash: string): Promise<Placeholder> {
  const container = await requireContainer(config, containerId, 'placeholder container');
  const { id } = container;
  const labels = containerLabels(container.annotations);
  checkNamespace(`Placeholder ${id}`, labels, config.allowedNamespaces, id);
  if (container.status !== 'running' || container.initPid <= 0) {
    throw torporFailure(
      'TargetNotAllowed',
      `Placeholder ${id} is ${container.status}, not running: it must be waiting to be restored into`,
    );
  }
  await checkStillWaiting(container);
  if (config.pods) {
    const podLabels = checkPod(id, labels, await config.pods(labels.podNamespace, labels.podName), config.nodeName);
    checkPlaceholderPod(id, labels, podLabels, hash);
  }
  const membership = parseProcCgroup(await readFile(`/proc/${container.initPid}/cgroup`, 'utf8'));
  const cgroups = cgroupDirs(membership, parseCgroupMounts(await readFile('/proc/self/mountinfo', 'utf8')));
  if (cgroups.length === 0) {
    throw torporFailure('TargetNotAllowed', `Cannot find the cgroups of placeholder ${id} on this host`, { containerId: id });
  }
  return { ...container, labels, cgroups };
}

/**
 * A placeholder's init runs the command its bundle sets (ChReK's smart entrypoint) while it waits.
 * When the checkpoint was not there in time, the entrypoint execs the image's own command (a cold
 * start): the init's command line, read from the kernel, then differs from the bundle's. Restoring
 * into it would clash with that app (CRIU fails late, e.g. "Address already in use").
 */
async function checkStillWaiting(container: RuncContainer): Promise<void> {
  const cmdline = await readFile(`/proc/${container.initPid}/cmdline`, 'utf8').catch(() => {
    throw torporFailure(
      'TargetNotAllowed',
      `Placeholder ${container.id} stopped while it was being checked (its init, pid ${container.initPid}, is gone)`,
      {
        containerId: container.id,
      },
    );
  });
  const running = cmdline.split('\0').slice(0, -1);
  if (running.length === container.args.length && running.every((arg, i) => arg === container.args[i])) return;
  throw torporFailure(
    'TargetNotAllowed',
    `Placeholder ${container.id} has cold-started its own app (its init runs "${running.join(' ')}", not the waiting entrypoint "${container.args.join(' ')}"): ` +
      'the checkpoint was not there before TORPOR_CHECKPOINT_WAIT_SECONDS ran out. Raise TORPOR_CHECKPOINT_WAIT_SECONDS, or delete the pod so that a new placeholder waits for the checkpoint',
    { containerId: container.id, coldStarted: true },
  );
}

function statusField(status: string, name: string): string | undefined {
  return new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(status)?.[1];
}

export interface RestoredRoot {
  /** The restored root process, as the host sees it and as the placeholder's own PID namespace sees it. */
  hostPid: number;
  placeholderPid: number;
}

/**
 * The root of a tree restored into the placeholder: a child of the placeholder's init that lives
 * in its own (nested) PID namespace, inside the placeholder's cgroup. Read from the kernel, so a
 * repeated activity finds what an earlier attempt restored.
 */
export async function restoredRoot(placeholder: Placeholder): Promise<RestoredRoot | undefined> {
  const init = placeholder.initPid;
  const initNs = await readlink(`/proc/${init}/ns/pid`);
  const initDepth = (statusField(await readFile(`/proc/${init}/status`, 'utf8'), 'NSpid') ?? '').split(/\s+/).length - 1;
  const procs = await readFile(path.join(placeholder.cgroups[0]?.dir ?? '', 'cgroup.procs'), 'utf8');
  for (const pid of procs.split('\n').filter(Boolean).map(Number)) {
    if (pid === init) continue;
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const ns = await readlink(`/proc/${pid}/ns/pid`).catch(() => initNs);
    if (ns === initNs || Number(statusField(status, 'PPid')) !== init) continue;
    const nsPids = (statusField(status, 'NSpid') ?? '').split(/\s+/).map(Number);
    return { hostPid: pid, placeholderPid: nsPids[initDepth] ?? pid };
  }
  return undefined;
}
