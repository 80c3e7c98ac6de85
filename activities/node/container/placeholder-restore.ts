import { mkdir, mkdtemp, open, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { torporFailure } from '../../../contract/failures.js';
import { runCriu } from '../criu/runner.js';
import { checkHash, StoreLayout } from '../store/layout.js';
import { type CgroupDir, cgroupDirs, parseCgroupMounts, parseProcCgroup } from './cgroups.js';
import { committedContainerCheckpoint, containerCheckpointFiles } from './container-store.js';
import { replayDevShm } from './dev-shm.js';
import { externalMountMap } from './placeholder-mounts.js';
import { checkMarkerPath, DEFAULT_RESTORE_MARKER, writeMarkerInRoot } from './restore-marker.js';
import { overlayRootfs, replayRootfsDiffThrough } from './rootfs-diff.js';
import { runcState } from './runc.js';
import { checkContainerId, checkNode, checkPod, containerLabels } from './target-policy.js';
import type {
  ContainerAgentConfig,
  ContainerLabels,
  RestoreIntoPlaceholderInput,
  RestoreIntoPlaceholderResult,
  RuncContainer,
} from './types.js';

/** Namespaces the restored tree shares with the placeholder; CRIU joins them (--join-ns) instead of creating its own. */
const JOINED_NAMESPACES = ['net', 'ipc', 'uts'] as const;

/** Moves this shell into the cgroups named before "--" (writing to their cgroup.procs), then execs the rest. */
const JOIN_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1"; shift; done; shift; exec "$@"';

interface Placeholder extends RuncContainer {
  labels: ContainerLabels;
  cgroups: CgroupDir[];
}

async function resolvePlaceholder(config: ContainerAgentConfig, containerId: string): Promise<Placeholder> {
  const id = checkContainerId(containerId);
  const container = await runcState(config, id);
  if (!container) {
    throw torporFailure('TargetNotAllowed', `no placeholder container "${id}" runs on this node (runc root ${config.runcRoot})`, {
      containerId: id,
    });
  }
  const labels = containerLabels(container.annotations);
  if (!config.allowedNamespaces.includes(labels.podNamespace)) {
    throw torporFailure(
      'TargetNotAllowed',
      `placeholder ${id} is in pod namespace "${labels.podNamespace}", which this agent does not allow (allowed: ${config.allowedNamespaces.join(', ') || 'none'})`,
      { containerId: id, ...labels },
    );
  }
  if (container.status !== 'running' || container.initPid <= 0) {
    throw torporFailure(
      'TargetNotAllowed',
      `placeholder ${id} is ${container.status}, not running: it must be waiting to be restored into`,
    );
  }
  if (config.pods) checkPod(id, labels, await config.pods(labels.podNamespace, labels.podName), config.nodeName);
  const membership = parseProcCgroup(await readFile(`/proc/${container.initPid}/cgroup`, 'utf8'));
  const cgroups = cgroupDirs(membership, parseCgroupMounts(await readFile('/proc/self/mountinfo', 'utf8')));
  if (cgroups.length === 0) throw new Error(`cannot find the cgroups of placeholder ${id} on this host`);
  return { ...container, labels, cgroups };
}

function statusField(status: string, name: string): string | undefined {
  return new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(status)?.[1];
}

/**
 * The root of a tree restored into the placeholder: a child of the placeholder's init that lives
 * in its own (nested) PID namespace, inside the placeholder's cgroup. Read from the kernel, so a
 * repeated activity finds what an earlier attempt restored.
 */
async function restoredRoot(placeholder: Placeholder): Promise<{ hostPid: number; placeholderPid: number } | undefined> {
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

/** runc's descriptors.json: what fds 0-2 of the dumped init were ("pipe:[123]", "/dev/null", ...). */
async function dumpedStdio(imageDir: string): Promise<string[]> {
  return JSON.parse(await readFile(path.join(imageDir, 'descriptors.json'), 'utf8').catch(() => '[]')) as string[];
}

/**
 * ChReK's external restore: the placeholder container (same image, a command that waits) was
 * started by the container runtime; the agent replays the checkpoint's rootfs changes into it,
 * writes the restore marker where the app looks, and restores the process tree into the
 * placeholder's namespaces: CRIU runs inside its PID namespace (the tree gets a nested one, so its
 * PIDs are free, and is adopted by the placeholder's init), joins its network, IPC and UTS
 * namespaces, builds the mount namespace on the placeholder's rootfs with every external mount
 * mapped to the placeholder's own, and starts in the placeholder's cgroups. stdio pipes are
 * inherited from the placeholder's init, so the container's log shows the restored app.
 */
export async function restoreIntoPlaceholder(
  config: ContainerAgentConfig,
  input: RestoreIntoPlaceholderInput,
  signal?: AbortSignal,
): Promise<RestoreIntoPlaceholderResult> {
  checkNode(input.nodeName, config.nodeName);
  if (input.restoreMarkerFile !== undefined) checkMarkerPath(input.restoreMarkerFile);
  const layout = new StoreLayout(config.storeRoot);
  checkHash(input.hash);
  const placeholder = await resolvePlaceholder(config, input.placeholderContainerId);
  const earlier = await restoredRoot(placeholder);
  if (earlier) return { placeholderContainerId: placeholder.id, ...earlier, restoreMs: 0, alreadyRestored: true };

  const { record, dir } = await committedContainerCheckpoint(layout, input.hash, config.nodeName);
  if (record.labels.podNamespace !== placeholder.labels.podNamespace) {
    throw torporFailure(
      'TargetNotAllowed',
      `checkpoint ${input.hash} comes from pod namespace "${record.labels.podNamespace}"; placeholder ${placeholder.id} is in "${placeholder.labels.podNamespace}"`,
    );
  }
  const overlay = await overlayRootfs(placeholder.rootfs, `placeholder ${placeholder.id}`);
  if (overlay.lowerDir !== record.imageLayers) {
    throw torporFailure(
      'TargetNotAllowed',
      `placeholder ${placeholder.id} runs another image (${overlay.lowerDir}) than checkpoint ${input.hash} (${record.imageLayers})`,
    );
  }

  const marker = checkMarkerPath(input.restoreMarkerFile ?? record.restoreMarkerFile ?? DEFAULT_RESTORE_MARKER);
  const files = containerCheckpointFiles(dir);
  const placeholderRoot = `/proc/${placeholder.initPid}/root`;
  await replayRootfsDiffThrough(placeholderRoot, files.rootfsDiff);
  await replayDevShm(files.devShm, placeholder.mounts);
  await writeMarkerInRoot(placeholderRoot, marker, `restored from checkpoint ${input.hash}\n`);

  await mkdir(config.workRoot, { recursive: true });
  const workDir = await mkdtemp(path.join(config.workRoot, `restore-${placeholder.id}-`));
  const handles = [];
  try {
    const args = ['restore', '-D', files.imageDir, '-W', workDir, '-o', 'restore.log', '-v4', '--root', placeholder.rootfs];
    // CRIU runs inside the placeholder's PID namespace with a /proc of its own, so namespaces go
    // as fds it inherits (3, 4, ...) rather than as paths under the host's /proc.
    for (const ns of JOINED_NAMESPACES) {
      handles.push(await open(`/proc/${placeholder.initPid}/ns/${ns}`, 'r'));
      args.push('--join-ns', `${ns}:/proc/self/fd/${2 + handles.length}`);
    }
    for (const [key, source] of externalMountMap(placeholder.mounts, placeholder.cgroups)) args.push('--ext-mount-map', `${key}:${source}`);
    for (const [fd, name] of (await dumpedStdio(files.imageDir)).entries()) {
      if (!name.startsWith('pipe:')) continue;
      // Read-write, so opening the placeholder's pipe never blocks waiting for its other end.
      handles.push(await open(`/proc/${placeholder.initPid}/fd/${fd}`, 'r+'));
      args.push('--inherit-fd', `fd[${2 + handles.length}]:${name}`);
    }
    // Listening sockets come back in the placeholder's network namespace, on its address.
    args.push('--manage-cgroups=ignore', '--mntns-compat-mode', '--tcp-close', '--network-lock', config.networkLock, '--restore-detached');
    const procsFiles = placeholder.cgroups.map((c) => path.join(c.dir, 'cgroup.procs'));
    const launcher = ['sh', '-c', JOIN_CGROUPS, 'sh', ...procsFiles, '--'];
    launcher.push(
      'nsenter',
      `--target=${placeholder.initPid}`,
      '--pid',
      '--',
      'unshare',
      '--mount',
      '--propagation=private',
      '--mount-proc',
      '--',
    );
    const run = await runCriu(config.criuPath, args, {
      logFile: path.join(workDir, 'restore.log'),
      extraFds: handles.map((h) => h.fd),
      launcher,
      ...(signal ? { signal } : {}),
    });
    if (!run.ok) {
      throw torporFailure(
        'RestoreFailed',
        `CRIU could not restore checkpoint ${input.hash} into placeholder ${placeholder.id}: ${run.excerpt}`,
        {
          containerId: placeholder.id,
        },
      );
    }
    const restored = await restoredRoot(placeholder);
    if (!restored) {
      throw torporFailure(
        'RestoreFailed',
        `CRIU restored checkpoint ${input.hash} but no restored process runs in placeholder ${placeholder.id} (log: ${workDir}/restore.log)`,
      );
    }
    return { placeholderContainerId: placeholder.id, ...restored, restoreMs: run.durationMs, alreadyRestored: false };
  } finally {
    for (const handle of handles) await handle.close();
  }
}
