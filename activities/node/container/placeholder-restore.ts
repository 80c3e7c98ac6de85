import { type FileHandle, mkdir, mkdtemp, open, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { torporFailure } from '../../../contract/failures.js';
import type { CheckpointManifest } from '../../../contract/types.js';
import { type CriuRun, runCriu } from '../criu/runner.js';
import { type VerifiedResumeGate, verifiedResumeGate } from '../criu/verified-resume.js';
import { warmthFigures } from '../criu/warm-mapped-files.js';
import { activityContext, reportProgress } from '../heartbeat.js';
import { checkHash, type StoreLayout } from '../store/layout.js';
import { withCgroupFrozen } from './cgroups.js';
import { type CommittedContainerCheckpoint, committedContainerCheckpoint, containerCheckpointFiles } from './container-store.js';
import { replayDevShm } from './dev-shm.js';
import { type Placeholder, resolvePlaceholder, restoredRoot } from './placeholder.js';
import { EXTERNAL_NETNS_KEY, placeholderRestoreArgs } from './placeholder-args.js';
import { externalMountMap } from './placeholder-mounts.js';
import { recordPlaceholderRestore } from './placeholder-record.js';
import { corruptCheckpoint, type ImagesProgress, readByAgent, verifyImagesBesideCriu, verifyPart } from './placeholder-verify.js';
import { checkMarkerPath, DEFAULT_RESTORE_MARKER, writeMarkerInRoot } from './restore-marker.js';
import { overlayRootfs, replayRootfsDiffThrough } from './rootfs-diff.js';
import { checkNode } from './target-policy.js';
import type { ContainerAgentConfig, RestoreIntoPlaceholderInput, RestoreIntoPlaceholderResult } from './types.js';

type ContainerFiles = ReturnType<typeof containerCheckpointFiles>;

/** runc's descriptors.json: what fds 0-2 of the dumped init were ("pipe:[123]", "/dev/null", ...). */
async function dumpedStdio(imageDir: string): Promise<string[]> {
  return JSON.parse(await readFile(path.join(imageDir, 'descriptors.json'), 'utf8').catch(() => '[]')) as string[];
}

/** Whether runc dumped the container's network namespace as external (its netns image names the key). */
async function dumpedExternalNetns(imageDir: string): Promise<boolean> {
  const images = (await readdir(imageDir)).filter((f) => /^netns-\d+\.img$/.test(f));
  for (const image of images) if ((await readFile(path.join(imageDir, image))).includes(EXTERNAL_NETNS_KEY)) return true;
  return false;
}

/** The committed checkpoint, refused unless it comes from the placeholder's pod namespace and image. */
async function checkpointFor(
  config: ContainerAgentConfig,
  layout: StoreLayout,
  hash: string,
  placeholder: Placeholder,
): Promise<CommittedContainerCheckpoint> {
  const committed = await committedContainerCheckpoint(layout, hash, config.nodeName);
  const { record } = committed;
  if (record.labels.podNamespace !== placeholder.labels.podNamespace) {
    throw torporFailure(
      'TargetNotAllowed',
      `Checkpoint ${hash} comes from pod namespace "${record.labels.podNamespace}"; placeholder ${placeholder.id} is in "${placeholder.labels.podNamespace}"`,
    );
  }
  const overlay = await overlayRootfs(placeholder.rootfs, `placeholder ${placeholder.id}`);
  if (overlay.lowerDir !== record.imageLayers) {
    throw torporFailure(
      'TargetNotAllowed',
      `Placeholder ${placeholder.id} runs another image (${overlay.lowerDir}) than checkpoint ${hash} (${record.imageLayers})`,
    );
  }
  return committed;
}

/**
 * The placeholder's files become the checkpoint's: its rootfs changes, /dev/shm and ChReK's restore
 * marker. The placeholder runs the tenant's code, so it is frozen meanwhile: nothing in it can swap
 * a directory the agent checked for a link while the agent writes as root.
 */
async function prepareFiles(placeholder: Placeholder, files: ContainerFiles, marker: string, hash: string): Promise<void> {
  const placeholderRoot = `/proc/${placeholder.initPid}/root`;
  await withCgroupFrozen(placeholder.cgroups, `placeholder ${placeholder.id}`, async () => {
    await replayRootfsDiffThrough(placeholderRoot, files.rootfsDiff);
    await replayDevShm(files.devShm, placeholder.mounts);
    await writeMarkerInRoot(placeholderRoot, marker, `restored from checkpoint ${hash}\n`);
  });
}

/** Runs CRIU in the placeholder's namespaces and cgroups, with the files it inherits open for the run only. */
async function runCriuInPlaceholder(
  config: ContainerAgentConfig,
  placeholder: Placeholder,
  imageDir: string,
  workDir: string,
  gate: VerifiedResumeGate,
): Promise<CriuRun> {
  const command = placeholderRestoreArgs({
    imageDir,
    workDir,
    initPid: placeholder.initPid,
    rootfs: placeholder.rootfs,
    cgroupDirs: placeholder.cgroups.map((c) => c.dir),
    externalMounts: externalMountMap(placeholder.mounts, placeholder.cgroups),
    dumpedStdio: await dumpedStdio(imageDir),
    networkLock: config.networkLock,
    externalNetns: await dumpedExternalNetns(imageDir),
  });
  const handles: FileHandle[] = [];
  try {
    for (const file of command.inheritedFiles) handles.push(await open(file.path, file.flags));
    const signal = activityContext()?.cancellationSignal;
    return await runCriu(config.criuPath, [...command.args, ...gate.args], {
      logFile: path.join(workDir, 'restore.log'),
      extraFds: handles.map((h) => h.fd),
      launcher: command.launcher,
      env: gate.env,
      ...(signal ? { signal } : {}),
    });
  } finally {
    for (const handle of handles) await handle.close();
  }
}

/**
 * CRIU restores the tree while the agent verifies the images it reads; the tree is held before it
 * resumes until they match. CRIU runs in the placeholder's PID namespace, where the agent's PID is
 * not visible: the gate's liveness is a lease file.
 */
async function restoreVerified(
  config: ContainerAgentConfig,
  placeholder: Placeholder,
  checkpoint: { dir: string; manifest: CheckpointManifest },
  progress: ImagesProgress,
): Promise<{ run: CriuRun; workDir: string; problems: string[] }> {
  await mkdir(config.workRoot, { recursive: true, mode: 0o700 });
  const workDir = await mkdtemp(path.join(config.workRoot, `restore-${placeholder.id}-`));
  const gate = await verifiedResumeGate(workDir, 'lease');
  // The placeholder's root shows the files the restored tree maps (its image, its volumes, the driver's libraries).
  const treeRoot = `/proc/${placeholder.initPid}/root`;
  const verification = verifyImagesBesideCriu(checkpoint.dir, checkpoint.manifest, gate, progress, treeRoot);
  const run = await runCriuInPlaceholder(config, placeholder, containerCheckpointFiles(checkpoint.dir).imageDir, workDir, gate).catch(
    async (err: unknown) => {
      await verification;
      throw err;
    },
  );
  return { run, workDir, problems: await verification };
}

export function placeholderRestoreActivities(config: ContainerAgentConfig, layout: StoreLayout) {
  return {
    /**
     * ChReK's external restore: the placeholder container (same image, a command that waits) was
     * started by the container runtime; the agent replays the checkpoint's rootfs changes into it,
     * writes the restore marker where the app looks, and restores the process tree into the
     * placeholder's namespaces: CRIU runs inside its PID namespace (the tree gets a nested one, so
     * its PIDs are free, and is adopted by the placeholder's init), joins its network, IPC and UTS
     * namespaces, builds the mount namespace on the placeholder's rootfs with every external mount
     * mapped to the placeholder's own, and starts in the placeholder's cgroups. stdio pipes are
     * inherited from the placeholder's init, so the container's log shows the restored app.
     */
    async restoreIntoPlaceholder(input: RestoreIntoPlaceholderInput): Promise<RestoreIntoPlaceholderResult> {
      checkNode(input.nodeName, config.nodeName);
      if (input.restoreMarkerFile !== undefined) checkMarkerPath(input.restoreMarkerFile);
      const { hash } = input;
      checkHash(hash);
      const placeholder = await resolvePlaceholder(config, input.placeholderContainerId, hash);
      const earlier = await restoredRoot(placeholder);
      if (earlier) {
        const found = { placeholderContainerId: placeholder.id, ...earlier, restoreMs: 0, alreadyRestored: true, verifiedBytes: 0 };
        // An attempt that crashed between CRIU and the record left the tree unrecorded.
        await recordPlaceholderRestore(layout, hash, found);
        return found;
      }

      const { record, dir, manifest } = await checkpointFor(config, layout, hash, placeholder);
      const files = containerCheckpointFiles(dir);
      const marker = checkMarkerPath(input.restoreMarkerFile ?? record.restoreMarkerFile ?? DEFAULT_RESTORE_MARKER);
      // The agent reads these itself before CRIU runs: nothing unverified reaches the placeholder.
      reportProgress({ phase: 'verifying the rootfs diff and /dev/shm' });
      const progress: ImagesProgress = { bytes: 0 };
      const countBytes = (n: number) => {
        progress.bytes += n;
      };
      const early = await verifyPart(dir, manifest, readByAgent, countBytes);
      if (early.length > 0) throw corruptCheckpoint(hash, early);
      reportProgress({ phase: 'replaying the rootfs diff and /dev/shm' });
      await prepareFiles(placeholder, files, marker, hash);
      reportProgress({ phase: 'CRIU restore, verifying the images beside it' });
      const { run, workDir, problems } = await restoreVerified(config, placeholder, { dir, manifest }, progress);
      // CRIU killed the tree at the gate: nothing of it ran.
      if (problems.length > 0) throw corruptCheckpoint(hash, problems);
      if (!run.ok) {
        const details = { containerId: placeholder.id };
        throw torporFailure(
          'RestoreFailed',
          `CRIU could not restore checkpoint ${hash} into placeholder ${placeholder.id}: ${run.excerpt}`,
          details,
        );
      }
      const restored = await restoredRoot(placeholder);
      if (!restored) {
        throw torporFailure(
          'RestoreFailed',
          `CRIU restored checkpoint ${hash} but no restored process runs in placeholder ${placeholder.id} (log: ${workDir}/restore.log)`,
        );
      }
      const result = {
        placeholderContainerId: placeholder.id,
        ...restored,
        restoreMs: run.durationMs,
        alreadyRestored: false,
        verifiedBytes: progress.bytes,
        ...(progress.lanes === undefined ? {} : { verifyLanes: progress.lanes }),
        ...warmthFigures(progress.warmth),
      };
      await recordPlaceholderRestore(layout, hash, result);
      return result;
    },
  };
}
