import { patched, workflowInfo } from '@temporalio/workflow';
import type { GpuTarget } from '../contract/gpu-types.js';
import type { PodPlacement } from '../contract/kubernetes.js';
import type { RestoreSpec } from '../contract/spec.js';
import type { RestoredProcess } from '../contract/types.js';
import { clusterActivities, KUBERNETES_CONTAINER_STEPS, KUBERNETES_GPU_STEPS, type nodeActivities } from './activity-policies.js';
import type { Compensations } from './compensations.js';
import type { ProgressTracker } from './progress.js';

type NodeAgent = ReturnType<typeof nodeActivities>;

/**
 * The workflow's progress and undo list. A runtime runs its restore steps inside them itself,
 * because which steps and undos there are differs between runtimes.
 */
export interface RestoreSaga {
  tracker: ProgressTracker;
  undo: Compensations;
}

/** The steps of a restore that differ between runtimes; verifying and the GPU steps are the same everywhere. */
export interface RestoreWorkload {
  /**
   * True where the restore step verifies the checkpoint's bytes while CRIU reads them and holds the
   * process until they match (local); the verifying step then checks marker, manifest and sizes only.
   */
  verifiesWhileRestoring(): boolean;
  /**
   * True where the GPU check runs against the target's container once it exists (a placeholder pod's
   * GPUs, from the device plugin); false: against the node's (or the request's) GPUs, before it.
   */
  checksGpuOnTarget(): boolean;
  /** What the process is restored into: kubernetes creates the placeholder pod and waits until it runs; local has nothing to prepare. */
  prepareTarget(): Promise<RestoreTarget>;
}

/**
 * The patch under which a local restore verifies the bytes during the CRIU restore instead of in the
 * verifying step before it; histories from before verify first, as they did.
 */
export const VERIFY_WHILE_RESTORING = 'verify-while-restoring';

/**
 * The patch under which a restore into a placeholder container (kubernetes, and the container
 * workflow) verifies the bytes during the CRIU restore, holding the tree until they match; histories
 * from before verified every byte in the verifying step first.
 */
export const PLACEHOLDER_VERIFY_WHILE_RESTORING = 'placeholder-verify-while-restoring';

export interface RestoreTarget {
  /** The CRIU restore, its undo registered first. */
  restore(): Promise<RestoredProcess>;
  /** Waits until the restored app is ready. */
  waitReady(): Promise<unknown>;
  /** Whose GPU state the thaw restores: the restored process, or the placeholder's container. */
  readonly gpu: GpuTarget;
}

/** The request's runtime. */
export function restoreWorkload(spec: RestoreSpec, agent: NodeAgent, saga: RestoreSaga): RestoreWorkload {
  return spec.kubernetes ? kubernetesRestoreWorkload(spec, spec.kubernetes, agent, saga) : localRestoreWorkload(spec, agent, saga);
}

/** `local`: a new process tree on the node, ready when the request's readiness probe passes. */
function localRestoreWorkload(spec: RestoreSpec, agent: NodeAgent, saga: RestoreSaga): RestoreWorkload {
  const { hash, restoreId } = spec;
  const target: RestoreTarget = {
    restore: () => restoreProcess(spec, agent, saga),
    waitReady: () =>
      agent.wait(spec.readyTimeoutMs).waitRestoredReady({ hash, restoreId, readiness: spec.readiness, timeoutMs: spec.readyTimeoutMs }),
    gpu: { hash, restoreId },
  };
  return {
    verifiesWhileRestoring: () => patched(VERIFY_WHILE_RESTORING),
    checksGpuOnTarget: () => false,
    prepareTarget: async () => target,
  };
}

/** `kubernetes`: the placeholder pod (same image, this node), ready when the pod is. */
function kubernetesRestoreWorkload(
  spec: RestoreSpec,
  section: NonNullable<RestoreSpec['kubernetes']>,
  agent: NodeAgent,
  saga: RestoreSaga,
): RestoreWorkload {
  const { hash, node, restoreId } = spec;
  const { namespace } = section;
  const { tracker, undo } = saga;
  const cluster = clusterActivities(spec.agentTimeoutMs);
  const kubernetes = { ...section, node, command: spec.workload?.command ?? [], env: spec.workload?.env ?? {} };
  // The pod this run created, by UID: only it is waited for and deleted (never a foreign pod of that name).
  const owner = workflowInfo().runId;
  let podUid: string | undefined;
  let gpuOnPlaceholder = false;
  const waitForPod = (until: 'running' | 'ready') =>
    cluster.wait(spec.readyTimeoutMs).waitForRestorePod({ hash, restoreId, namespace, timeoutMs: spec.readyTimeoutMs, until, podUid });
  return {
    verifiesWhileRestoring: () => patched(PLACEHOLDER_VERIFY_WHILE_RESTORING),
    checksGpuOnTarget() {
      // Histories from before the patch checked the node's GPUs and thawed no placeholder's.
      gpuOnPlaceholder = patched(KUBERNETES_GPU_STEPS);
      return gpuOnPlaceholder;
    },
    async prepareTarget() {
      undo.add('delete the placeholder pod', () => cluster.quick.deleteRestorePod({ hash, restoreId, namespace, uid: podUid, owner }));
      const created = await tracker.step('starting-workload', () => cluster.quick.createRestorePod({ hash, restoreId, kubernetes, owner }));
      podUid = created.uid || undefined;
      const pod = await tracker.step('waiting-ready', () => waitForPod('running'));
      return {
        // Histories from before the patch restored a new process tree, as the local runtime does.
        restore: () =>
          patched(KUBERNETES_CONTAINER_STEPS) ? restoreIntoPlaceholder(spec, agent, saga, pod) : restoreProcess(spec, agent, saga),
        waitReady: () => waitForPod('ready'),
        gpu: gpuOnPlaceholder ? { hash, container: { id: pod.containerId, role: 'placeholder' }, nodeName: node } : { hash, restoreId },
      };
    },
  };
}

/** CRIU restores a new process tree on the node; stopping it is the undo. */
function restoreProcess(spec: RestoreSpec, agent: NodeAgent, { tracker, undo }: RestoreSaga): Promise<RestoredProcess> {
  const { hash, restoreId } = spec;
  undo.add('stop the restored process', () => agent.quick.stopRestored({ hash, restoreId }));
  return tracker.step('restoring', () => agent.heavy.restoreCheckpoint({ hash, restoreId }));
}

/** The tree goes into the placeholder's container, found from the ID in the pod's status; deleting the pod undoes it. */
function restoreIntoPlaceholder(
  spec: RestoreSpec,
  agent: NodeAgent,
  { tracker }: RestoreSaga,
  pod: PodPlacement,
): Promise<RestoredProcess> {
  const { hash, node } = spec;
  return tracker.step('restoring', async () => {
    const into = await agent.heavy.restoreIntoPlaceholder({ hash, placeholderContainerId: pod.containerId, nodeName: node });
    return { pid: into.hostPid, logFile: '', criuMs: into.restoreMs, verifiedBytes: into.verifiedBytes };
  });
}
