import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { torporFailure } from '../../../contract/failures.js';
import { captureRootfsDiff, overlayRootfs, replayRootfsDiff } from './rootfs-diff.js';
import { CRIU_DUMP_CONFIG, CRIU_RESTORE_CONFIG, runcCheckpoint, runcRestore, runcState, runcVersion } from './runc.js';
import { checkContainerId, verifyContainerTarget } from './target-policy.js';
import type {
  ContainerAgentConfig,
  ContainerCheckpointRecord,
  ContainerTarget,
  DumpContainerInput,
  DumpContainerResult,
  RestoreContainerInput,
  RestoreContainerResult,
} from './types.js';

/** The files of a container checkpoint directory. */
export function containerCheckpointLayout(dir: string) {
  return {
    imageDir: path.join(dir, 'images'),
    workDir: path.join(dir, 'work'),
    rootfsDiff: path.join(dir, 'rootfs-diff.tar'),
    record: path.join(dir, 'container.json'),
  };
}

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
  return verifyContainerTarget(container, config);
}

async function writeCriuConfig(workDir: string, name: string, options: string[]): Promise<string> {
  const file = path.join(workDir, name);
  await writeFile(file, `${options.join('\n')}\n`);
  return file;
}

export async function dumpContainer(config: ContainerAgentConfig, input: DumpContainerInput): Promise<DumpContainerResult> {
  const target = await resolveContainerTarget(config, input.containerId);
  const overlay = await overlayRootfs(target.rootfs, `container ${target.id}`);
  const layout = containerCheckpointLayout(input.checkpointDir);
  await mkdir(layout.imageDir, { recursive: true });
  await mkdir(layout.workDir, { recursive: true });
  if ((await readdir(layout.imageDir)).length > 0) {
    throw torporFailure('InvalidSpec', `checkpoint directory ${input.checkpointDir} already holds images; use a new one`);
  }
  const criuConfigFile = await writeCriuConfig(layout.workDir, 'criu-dump.conf', CRIU_DUMP_CONFIG);
  const started = Date.now();
  await runcCheckpoint(config, target.id, { imageDir: layout.imageDir, workDir: layout.workDir, criuConfigFile });
  const dumpMs = Date.now() - started;
  // Taken right after the dump while the container keeps running (--leave-running): files the app
  // writes after the dump would be in the diff too; an app that must be exact writes before ready.
  const rootfsDiffBytes = await captureRootfsDiff(overlay.upperDir, layout.rootfsDiff);
  const record: ContainerCheckpointRecord = {
    containerId: target.id,
    labels: target.labels,
    imageLayers: overlay.lowerDir,
    runcVersion: await runcVersion(config),
    createdAt: new Date().toISOString(),
  };
  await writeFile(layout.record, JSON.stringify(record, null, 2));
  return { checkpointDir: input.checkpointDir, labels: target.labels, initPid: target.initPid, dumpMs, rootfsDiffBytes };
}

async function readCheckpointRecord(file: string): Promise<ContainerCheckpointRecord> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as ContainerCheckpointRecord;
  } catch {
    throw torporFailure('CheckpointNotFound', `no container checkpoint record at ${file}`);
  }
}

/** Restores the checkpoint as a new container from the placeholder's bundle (same image), after replaying its rootfs diff. */
export async function restoreContainer(config: ContainerAgentConfig, input: RestoreContainerInput): Promise<RestoreContainerResult> {
  const id = checkContainerId(input.containerId);
  const layout = containerCheckpointLayout(input.checkpointDir);
  const record = await readCheckpointRecord(layout.record);
  if (await runcState(config, id)) {
    throw torporFailure('InvalidSpec', `a container "${id}" already exists on this node; restore under a new ID`);
  }
  const spec = JSON.parse(await readFile(path.join(input.placeholderBundle, 'config.json'), 'utf8')) as { root: { path: string } };
  const rootfs = path.resolve(input.placeholderBundle, spec.root.path);
  const overlay = await overlayRootfs(rootfs, `placeholder bundle ${input.placeholderBundle}`);
  if (overlay.lowerDir !== record.imageLayers) {
    throw torporFailure(
      'TargetNotAllowed',
      `the placeholder's image (${overlay.lowerDir}) is not the checkpoint's (${record.imageLayers})`,
    );
  }
  await replayRootfsDiff(layout.rootfsDiff, overlay.upperDir);
  await mkdir(config.workRoot, { recursive: true });
  const workDir = await mkdtemp(path.join(config.workRoot, `restore-${id}-`));
  const criuConfigFile = await writeCriuConfig(workDir, 'criu-restore.conf', CRIU_RESTORE_CONFIG);
  const started = Date.now();
  await runcRestore(config, id, input.placeholderBundle, { imageDir: layout.imageDir, workDir, criuConfigFile });
  const restoreMs = Date.now() - started;
  const restored = await runcState(config, id);
  if (restored?.status !== 'running') {
    throw torporFailure('RestoreFailed', `runc restored container ${id} but it is ${restored?.status ?? 'gone'}`);
  }
  return { containerId: id, initPid: restored.initPid, restoreMs };
}

/** The container activities of a node agent (not registered with the worker yet). */
export function createContainerActivities(config: ContainerAgentConfig) {
  return {
    dumpContainer: (input: DumpContainerInput) => dumpContainer(config, input),
    restoreContainer: (input: RestoreContainerInput) => restoreContainer(config, input),
  };
}
