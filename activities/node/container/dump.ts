import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ChrekEnv } from '../../../contract/chrek.js';
import { torporFailure } from '../../../contract/failures.js';
import type { WorkloadContractFiles } from '../../../contract/types.js';
import { criuVersion } from '../criu/runner.js';
import { activityContext, reportProgress } from '../heartbeat.js';
import { hashWhileDumping } from '../store/criu-page-digests.js';
import { directoryBytes, pathExists } from '../store/file-digests.js';
import type { Prehashed } from '../store/hash-behind.js';
import type { StoreLayout } from '../store/layout.js';
import { type DumpRecord, recordedWorkload, writeRecord } from '../store/run-records.js';
import { withWriteBehind } from '../store/write-behind.js';
import { committedContainerCheckpoint, containerCheckpointFiles, freshStagingDir } from './container-store.js';
import { captureDevShm } from './dev-shm.js';
import type { OverlayRootfs } from './overlay-layers.js';
import { DEFAULT_RESTORE_MARKER } from './restore-marker.js';
import { overlayRootfs, packDirectory } from './rootfs-diff.js';
import { criuDumpConfig, requireContainer, runcCheckpoint, runcVersion, whilePaused } from './runc.js';
import { checkContainerId, checkNamespace, checkNode, containerLabels, verifyContainerTarget } from './target-policy.js';
import type { ContainerAgentConfig, ContainerCheckpointRecord, ContainerTarget, DumpContainerInput, DumpContainerResult } from './types.js';

type ContainerFiles = ReturnType<typeof containerCheckpointFiles>;

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

/** What `runc checkpoint` did: how long CRIU took, and the command line the dump record keeps. */
interface RuncDump {
  dumpMs: number;
  criuArgs: string[];
  prehashed: Prehashed | undefined;
}

/**
 * Finds the container through runc under this agent's root only, and verifies it from runc's and
 * the bundle's own data; the caller never supplies a PID. Throws before anything is frozen.
 */
export async function resolveTarget(config: ContainerAgentConfig, id: string): Promise<ContainerTarget> {
  const container = await requireContainer(config, id, 'container');
  const labels = containerLabels(container.annotations);
  // The allow-list first: a namespace this agent does not serve is never looked up in the API.
  checkNamespace(`Container ${container.id}`, labels, config.allowedNamespaces, container.id);
  const pod = config.pods ? { facts: await config.pods(labels.podNamespace, labels.podName), nodeName: config.nodeName } : undefined;
  return verifyContainerTarget(container, config, pod);
}

/** The hash is committed already: taken from this container, it is the result; from another, a refusal. */
async function committedDump(
  config: ContainerAgentConfig,
  layout: StoreLayout,
  input: DumpContainerInput,
  id: string,
): Promise<DumpContainerResult> {
  const committed = await committedContainerCheckpoint(layout, input.hash, config.nodeName);
  if (committed.record.containerId !== id) {
    throw torporFailure(
      'InvalidSpec',
      `Checkpoint ${input.hash} already exists, taken from container ${committed.record.containerId}; use another hash`,
    );
  }
  const { labels, dumpMs, rootfsDiffBytes } = committed.record;
  const imageBytes = committed.manifest.totalBytes;
  return { hash: input.hash, dumpId: input.dumpId, labels, initPid: 0, dumpMs, rootfsDiffBytes, imageBytes, alreadyCommitted: true };
}

/** `runc checkpoint --leave-running`, with the CRIU options runc has no flag for in a CRIU config file. */
async function runcDump(config: ContainerAgentConfig, target: ContainerTarget, files: ContainerFiles): Promise<RuncDump> {
  const criuOptions = criuDumpConfig(config.networkLock);
  const criuConfigFile = path.join(files.workDir, 'criu-dump.conf');
  await writeFile(criuConfigFile, `${criuOptions.join('\n')}\n`);
  const signal = activityContext()?.cancellationSignal;
  reportProgress({ phase: 'runc checkpoint' });
  const started = Date.now();
  const hashing = {
    criuPath: config.criuPath,
    stagingDir: path.dirname(files.imageDir),
    imagesDir: files.imageDir,
    digestsDir: path.join(files.workDir, 'page-digests'),
    chunkBytes: config.digestChunkBytes,
  };
  const { prehashed } = await hashWhileDumping(hashing, (criuEnv) =>
    withWriteBehind(files.imageDir, () =>
      runcCheckpoint(config, target.id, {
        imageDir: files.imageDir,
        workDir: files.workDir,
        criuConfigFile,
        criuEnv,
        ...(signal ? { signal } : {}),
      }),
    ),
  );
  const criuArgs = ['runc', 'checkpoint', '--leave-running', ...criuOptions.flatMap((o) => `--${o}`.split(' '))];
  return { dumpMs: Date.now() - started, criuArgs, prehashed };
}

/** What the checkpoint keeps beside CRIU's images: the rootfs diff, /dev/shm and container.json. */
async function saveContainerFiles(
  config: ContainerAgentConfig,
  target: ContainerTarget,
  overlay: OverlayRootfs,
  files: ContainerFiles,
  dumpMs: number,
): Promise<ContainerCheckpointRecord> {
  const rootfsDiffBytes = await packDirectory(overlay.upperDir, files.rootfsDiff);
  await captureDevShm(target.mounts, files.devShm);
  const record: ContainerCheckpointRecord = {
    containerId: target.id,
    node: config.nodeName,
    labels: target.labels,
    imageLayers: overlay.lowerDir,
    runcVersion: await runcVersion(config),
    createdAt: new Date().toISOString(),
    dumpMs,
    rootfsDiffBytes,
    restoreMarkerFile: contractOf(target.env).restoreMarkerFile,
  };
  await writeFile(files.record, `${JSON.stringify(record, null, 2)}\n`);
  return record;
}

/** The dump record `commitCheckpoint` turns into the checkpoint's manifest; returns the staged bytes. */
async function writeDumpRecord(
  config: ContainerAgentConfig,
  layout: StoreLayout,
  input: DumpContainerInput,
  target: ContainerTarget,
  staged: string,
  dump: RuncDump,
): Promise<number> {
  const imageBytes = await directoryBytes(staged);
  const record: DumpRecord = {
    pid: target.initPid,
    workload: recordedWorkload(input.workload ?? { command: target.args, env: {} }),
    contract: contractOf(target.env),
    criuVersion: await criuVersion(config.criuPath),
    criuArgs: dump.criuArgs,
    imageBytes,
    criuMs: dump.dumpMs,
    runtime: 'kubernetes',
    network: { established: 'close', lock: config.networkLock },
    ...(dump.prehashed ? { prehashed: dump.prehashed } : {}),
  };
  await writeRecord(layout.dumpRecord(input.hash, input.dumpId), record);
  return imageBytes;
}

export function containerDumpActivities(config: ContainerAgentConfig, layout: StoreLayout) {
  return {
    /**
     * Dumps the container into the dump's staging directory: runc's CRIU images, the rootfs diff,
     * /dev/shm and container.json, plus the dump record `commitCheckpoint` turns into a checkpoint
     * (sha256 manifest, rename, checkpoint.done last). A hash already committed from the same
     * container is not dumped again.
     */
    async dumpContainer(input: DumpContainerInput): Promise<DumpContainerResult> {
      checkNode(input.nodeName, config.nodeName);
      const id = checkContainerId(input.containerId);
      if (await pathExists(layout.doneMarker(input.hash))) return committedDump(config, layout, input, id);
      const target = await resolveTarget(config, id);
      const overlay = await overlayRootfs(target.rootfs, `container ${target.id}`);
      const staged = await freshStagingDir(layout, input.hash, input.dumpId);
      const files = containerCheckpointFiles(staged);
      // Paused around CRIU and the tars: the rootfs diff and /dev/shm are those of the memory image.
      const { dump, rootfsDiffBytes } = await whilePaused(config, target.id, async () => {
        const dump = await runcDump(config, target, files);
        reportProgress({ phase: 'packing the rootfs diff and /dev/shm' });
        return { dump, ...(await saveContainerFiles(config, target, overlay, files, dump.dumpMs)) };
      });
      const imageBytes = await writeDumpRecord(config, layout, input, target, staged, dump);
      const { hash, dumpId } = input;
      return {
        hash,
        dumpId,
        labels: target.labels,
        initPid: target.initPid,
        dumpMs: dump.dumpMs,
        rootfsDiffBytes,
        imageBytes,
        alreadyCommitted: false,
      };
    },
  };
}
