import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ChrekEnv } from '../../../contract/chrek.js';
import { torporFailure } from '../../../contract/failures.js';
import type { WorkloadContractFiles } from '../../../contract/types.js';
import { criuVersion } from '../criu/runner.js';
import { activityContext } from '../heartbeat.js';
import { directoryBytes, pathExists } from '../store/file-digests.js';
import { StoreLayout } from '../store/layout.js';
import { type DumpRecord, writeRecord } from '../store/run-records.js';
import { committedContainerCheckpoint, containerCheckpointFiles, freshStagingDir } from './container-store.js';
import { captureDevShm, replayDevShm } from './dev-shm.js';
import { readBundleSpec } from './placeholder-mounts.js';
import { restoreIntoPlaceholder } from './placeholder-restore.js';
import { DEFAULT_RESTORE_MARKER } from './restore-marker.js';
import { overlayRootfs, packDirectory, unpackIntoDirectory } from './rootfs-diff.js';
import { criuDumpConfig, criuRestoreConfig, runcCheckpoint, runcRestore, runcState, runcVersion } from './runc.js';
import { checkContainerId, checkNode, containerLabels, verifyContainerTarget } from './target-policy.js';
import type {
  ContainerAgentConfig,
  ContainerCheckpointRecord,
  ContainerTarget,
  DumpContainerInput,
  DumpContainerResult,
  RestoreContainerInput,
  RestoreContainerResult,
  RestoreIntoPlaceholderInput,
} from './types.js';

/**
 * Finds the container through runc under this agent's root only, and verifies it from runc's and
 * the bundle's own data; the caller never supplies a PID. Throws before anything is frozen.
 */
export async function resolveContainerTarget(config: ContainerAgentConfig, containerId: string): Promise<ContainerTarget> {
  const id = checkContainerId(containerId);
  const container = await runcState(config, id);
  if (!container) {
    throw torporFailure('TargetNotAllowed', `no container "${id}" runs on this node (runc root ${config.runcRoot})`, { containerId: id });
  }
  const labels = containerLabels(container.annotations);
  const pod = config.pods ? { facts: await config.pods(labels.podNamespace, labels.podName), nodeName: config.nodeName } : undefined;
  return verifyContainerTarget(container, config, pod);
}

async function writeCriuConfig(workDir: string, name: string, options: string[]): Promise<string> {
  const file = path.join(workDir, name);
  await writeFile(file, `${options.join('\n')}\n`);
  return file;
}

/** The ChReK files the app uses, from its own environment (not its other variables: they may hold secrets). */
function contractOf(env: string[]): WorkloadContractFiles {
  const value = (name: string) => {
    const prefix = `${name}=`;
    return env.findLast((e) => e.startsWith(prefix))?.slice(prefix.length) ?? '';
  };
  return {
    readyFile: value(ChrekEnv.readyFile),
    signalFile: value(ChrekEnv.signalFile),
    // The restored memory holds the checkpointed app's environment: the marker goes where it says.
    restoreMarkerFile: value(ChrekEnv.restoreMarkerFile) || DEFAULT_RESTORE_MARKER,
    logFile: '',
    location: value(ChrekEnv.location),
  };
}

/**
 * Dumps the container into the dump's staging directory: runc's CRIU images, the rootfs diff,
 * /dev/shm and container.json, plus the dump record `commitCheckpoint` turns into a checkpoint
 * (sha256 manifest, rename, checkpoint.done last). A hash already committed from the same
 * container is not dumped again.
 */
export async function dumpContainer(
  config: ContainerAgentConfig,
  input: DumpContainerInput,
  signal?: AbortSignal,
): Promise<DumpContainerResult> {
  checkNode(input.nodeName, config.nodeName);
  const layout = new StoreLayout(config.storeRoot);
  const id = checkContainerId(input.containerId);
  if (await pathExists(layout.doneMarker(input.hash))) {
    const committed = await committedContainerCheckpoint(layout, input.hash, config.nodeName);
    if (committed.record.containerId !== id) {
      throw torporFailure(
        'InvalidSpec',
        `checkpoint ${input.hash} already exists, taken from container ${committed.record.containerId}; use another hash`,
      );
    }
    const { labels, dumpMs, rootfsDiffBytes } = committed.record;
    return {
      hash: input.hash,
      dumpId: input.dumpId,
      labels,
      initPid: 0,
      dumpMs,
      rootfsDiffBytes,
      imageBytes: committed.manifest.totalBytes,
      alreadyCommitted: true,
    };
  }
  const target = await resolveContainerTarget(config, id);
  const overlay = await overlayRootfs(target.rootfs, `container ${target.id}`);
  const staged = await freshStagingDir(layout, input.hash, input.dumpId);
  const files = containerCheckpointFiles(staged);
  const criuOptions = criuDumpConfig(config.networkLock);
  const criuConfigFile = await writeCriuConfig(files.workDir, 'criu-dump.conf', criuOptions);
  const started = Date.now();
  await runcCheckpoint(config, target.id, {
    imageDir: files.imageDir,
    workDir: files.workDir,
    criuConfigFile,
    ...(signal ? { signal } : {}),
  });
  const dumpMs = Date.now() - started;
  // Taken right after the dump while the container keeps running (--leave-running): files the app
  // writes after the dump would be in the diff too; an app that must be exact writes before ready.
  const rootfsDiffBytes = await packDirectory(overlay.upperDir, files.rootfsDiff);
  await captureDevShm(target.mounts, files.devShm);
  const contract = contractOf(target.env);
  const record: ContainerCheckpointRecord = {
    containerId: target.id,
    node: config.nodeName,
    labels: target.labels,
    imageLayers: overlay.lowerDir,
    runcVersion: await runcVersion(config),
    createdAt: new Date().toISOString(),
    dumpMs,
    rootfsDiffBytes,
    restoreMarkerFile: contract.restoreMarkerFile,
  };
  await writeFile(files.record, `${JSON.stringify(record, null, 2)}\n`);
  const imageBytes = await directoryBytes(staged);
  const dump: DumpRecord = {
    pid: target.initPid,
    workload: input.workload ?? { command: target.args, env: {} },
    contract,
    criuVersion: await criuVersion(config.criuPath),
    criuArgs: ['runc', 'checkpoint', '--leave-running', ...criuOptions.flatMap((o) => `--${o}`.split(' '))],
    imageBytes,
    criuMs: dumpMs,
    runtime: 'kubernetes',
    network: { established: 'close', lock: config.networkLock },
  };
  await writeRecord(layout.dumpRecord(input.hash, input.dumpId), dump);
  return {
    hash: input.hash,
    dumpId: input.dumpId,
    labels: target.labels,
    initPid: target.initPid,
    dumpMs,
    rootfsDiffBytes,
    imageBytes,
    alreadyCommitted: false,
  };
}

/**
 * For runc-only hosts: restores the checkpoint as a new container from the placeholder's bundle
 * (same image, not started), after replaying its rootfs diff.
 */
export async function restoreContainer(
  config: ContainerAgentConfig,
  input: RestoreContainerInput,
  signal?: AbortSignal,
): Promise<RestoreContainerResult> {
  checkNode(input.nodeName, config.nodeName);
  const id = checkContainerId(input.containerId);
  const layout = new StoreLayout(config.storeRoot);
  const { record } = await committedContainerCheckpoint(layout, input.hash, config.nodeName);
  if (await runcState(config, id)) {
    throw torporFailure('InvalidSpec', `a container "${id}" already exists on this node; restore under a new ID`);
  }
  const spec = await readBundleSpec(input.placeholderBundle);
  const rootfs = path.resolve(input.placeholderBundle, spec.root?.path ?? '');
  const overlay = await overlayRootfs(rootfs, `placeholder bundle ${input.placeholderBundle}`);
  if (overlay.lowerDir !== record.imageLayers) {
    throw torporFailure(
      'TargetNotAllowed',
      `the placeholder's image (${overlay.lowerDir}) is not the checkpoint's (${record.imageLayers})`,
    );
  }
  const files = containerCheckpointFiles(layout.checkpointDir(input.hash));
  // Nothing runs on this overlay yet: its upper layer can take the diff directly.
  await unpackIntoDirectory(files.rootfsDiff, overlay.upperDir);
  await replayDevShm(files.devShm, spec.mounts ?? []);
  await mkdir(config.workRoot, { recursive: true });
  const workDir = await mkdtemp(path.join(config.workRoot, `restore-${id}-`));
  const criuConfigFile = await writeCriuConfig(workDir, 'criu-restore.conf', criuRestoreConfig(config.networkLock));
  const started = Date.now();
  await runcRestore(config, id, input.placeholderBundle, {
    imageDir: files.imageDir,
    workDir,
    criuConfigFile,
    ...(signal ? { signal } : {}),
  });
  const restoreMs = Date.now() - started;
  const restored = await runcState(config, id);
  if (restored?.status !== 'running') {
    throw torporFailure('RestoreFailed', `runc restored container ${id} but it is ${restored?.status ?? 'gone'}`);
  }
  return { containerId: id, initPid: restored.initPid, restoreMs };
}

const cancellation = () => activityContext()?.cancellationSignal;

/** The container activities of a node agent (not registered with the worker yet). */
export function createContainerActivities(config: ContainerAgentConfig) {
  return {
    dumpContainer: (input: DumpContainerInput) => dumpContainer(config, input, cancellation()),
    restoreContainer: (input: RestoreContainerInput) => restoreContainer(config, input, cancellation()),
    restoreIntoPlaceholder: (input: RestoreIntoPlaceholderInput) => restoreIntoPlaceholder(config, input, cancellation()),
  };
}
