import { CancellationScope, patched, workflowInfo } from '@temporalio/workflow';
import { torporFailure } from '../contract/failures.js';
import type { GpuTarget } from '../contract/gpu-types.js';
import type { KubernetesSection, PodPlacement } from '../contract/kubernetes.js';
import type { RestoreSpec } from '../contract/spec.js';
import type { RestoredProcess } from '../contract/types.js';
import {
  clusterActivities,
  KUBERNETES_CONTAINER_STEPS,
  KUBERNETES_GPU_STEPS,
  KUBERNETES_PLACEMENT,
  nodeActivities,
} from './activity-policies.js';
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

/** A node and its agent's steps. */
export interface OnNode {
  node: string;
  agent: NodeAgent;
}

/** Where the restore runs, and its runtime's steps there. */
export interface PlacedRestore extends OnNode {
  workload: RestoreWorkload;
  /** True when placing it fetched the checkpoint into the node's cache already (beside the placeholder's start). */
  fetched: boolean;
}

/**
 * The request's node, or (kubernetes without one) the node the scheduler binds the placeholder to,
 * among the nodes of the checkpoint's GPU model: the placeholder is created, its undo registered
 * first, and once it is bound the node's agent fetches the checkpoint while the pod starts.
 */
export async function placeRestore(spec: RestoreSpec, saga: RestoreSaga): Promise<PlacedRestore> {
  if (spec.node !== undefined) {
    const onNode = { node: spec.node, agent: nodeActivities(spec.node, spec.agentTimeoutMs) };
    const workload = spec.kubernetes
      ? kubernetesRestoreWorkload(spec, spec.kubernetes, onNode, saga)
      : localRestoreWorkload(spec, onNode.agent, saga);
    return { ...onNode, workload, fetched: false };
  }
  if (spec.kubernetes === undefined || !patched(KUBERNETES_PLACEMENT)) {
    throw torporFailure('InvalidSpec', 'Invalid restore request: node is required for the local runtime');
  }
  return placeByScheduler(spec, spec.kubernetes, saga);
}

async function placeByScheduler(spec: RestoreSpec, section: KubernetesSection, saga: RestoreSaga): Promise<PlacedRestore> {
  const { hash } = spec;
  const { tracker } = saga;
  const cluster = clusterActivities(spec.agentTimeoutMs);
  const { gpuProduct } = await tracker.step('looking-up', () => cluster.quick.describeSharedCheckpoint({ hash }));
  const pod = placeholderPod(spec, section, saga, { gpuProduct: gpuProduct ?? undefined });
  await pod.create();
  const bound = await tracker.step('placing', () => pod.waitFor('bound'));
  const onNode = { node: bound.nodeName, agent: nodeActivities(bound.nodeName, spec.agentTimeoutMs) };
  // The node's agent fills its cache while the kubelet pulls the image and starts the placeholder.
  const [, running] = await bothEnded(
    () => tracker.step('fetching', () => onNode.agent.heavy.fetchCheckpoint({ hash })),
    () => tracker.step('waiting-ready', () => pod.waitFor('running')),
  );
  return { ...onNode, workload: kubernetesRestoreWorkload(spec, section, onNode, saga, { pod, running }), fetched: true };
}

/** Runs both at once; the first failure cancels the other, and is thrown once both have ended (no undo races either). */
async function bothEnded<A, B>(a: () => Promise<A>, b: () => Promise<B>): Promise<[A, B]> {
  const scope = new CancellationScope();
  const [first, second] = await scope.run(() => {
    const cancelOnFailure = <T>(p: Promise<T>) =>
      p.catch((err: unknown) => {
        scope.cancel();
        throw err;
      });
    return Promise.allSettled([cancelOnFailure(a()), cancelOnFailure(b())]);
  });
  if (first.status === 'rejected') throw first.reason;
  if (second.status === 'rejected') throw second.reason;
  return [first.value, second.value];
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

/**
 * The placeholder pod (same image), on the given node or where the scheduler places it among the
 * nodes of `gpuProduct`. Only the pod this run created, by UID, is waited for and deleted (never a
 * foreign pod of that name).
 */
function placeholderPod(
  spec: RestoreSpec,
  section: KubernetesSection,
  { tracker, undo }: RestoreSaga,
  where: { node?: string; gpuProduct?: string | undefined },
) {
  const { hash, restoreId } = spec;
  const { namespace } = section;
  const cluster = clusterActivities(spec.agentTimeoutMs);
  const kubernetes = {
    ...section,
    node: where.node,
    gpuProduct: where.gpuProduct,
    // Placed by the scheduler, the node's agent fetches the checkpoint while the placeholder starts.
    checkpointWaitSeconds: where.node === undefined ? Math.ceil(spec.readyTimeoutMs / 1000) : undefined,
    command: spec.workload?.command ?? [],
    env: spec.workload?.env ?? {},
  };
  const owner = workflowInfo().runId;
  let podUid: string | undefined;
  return {
    async create() {
      undo.add('delete the placeholder pod', () => cluster.quick.deleteRestorePod({ hash, restoreId, namespace, uid: podUid, owner }));
      const created = await tracker.step('starting-workload', () => cluster.quick.createRestorePod({ hash, restoreId, kubernetes, owner }));
      podUid = created.uid || undefined;
    },
    waitFor: (until: 'bound' | 'running' | 'ready') =>
      cluster.wait(spec.readyTimeoutMs).waitForRestorePod({ hash, restoreId, namespace, timeoutMs: spec.readyTimeoutMs, until, podUid }),
  };
}

type PlaceholderPod = ReturnType<typeof placeholderPod>;

/**
 * `kubernetes`: the placeholder pod, ready when the pod is; created and waited for here, unless
 * placing the restore did that already (`prepared`).
 */
function kubernetesRestoreWorkload(
  spec: RestoreSpec,
  section: KubernetesSection,
  onNode: OnNode,
  saga: RestoreSaga,
  prepared?: { pod: PlaceholderPod; running: PodPlacement },
): RestoreWorkload {
  const { hash, restoreId } = spec;
  const { node, agent } = onNode;
  const pod = prepared?.pod ?? placeholderPod(spec, section, saga, { node });
  let gpuOnPlaceholder = false;
  const start = async () => {
    await pod.create();
    return saga.tracker.step('waiting-ready', () => pod.waitFor('running'));
  };
  return {
    verifiesWhileRestoring: () => patched(PLACEHOLDER_VERIFY_WHILE_RESTORING),
    checksGpuOnTarget() {
      // Histories from before the patch checked the node's GPUs and thawed no placeholder's.
      gpuOnPlaceholder = patched(KUBERNETES_GPU_STEPS);
      return gpuOnPlaceholder;
    },
    async prepareTarget() {
      const running = prepared?.running ?? (await start());
      return {
        // Histories from before the patch restored a new process tree, as the local runtime does.
        restore: () =>
          patched(KUBERNETES_CONTAINER_STEPS) ? restoreIntoPlaceholder(spec, onNode, saga, running) : restoreProcess(spec, agent, saga),
        waitReady: () => pod.waitFor('ready'),
        gpu: gpuOnPlaceholder ? { hash, container: { id: running.containerId, role: 'placeholder' }, nodeName: node } : { hash, restoreId },
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
  { node, agent }: OnNode,
  { tracker }: RestoreSaga,
  pod: PodPlacement,
): Promise<RestoredProcess> {
  const { hash } = spec;
  return tracker.step('restoring', async () => {
    const into = await agent.heavy.restoreIntoPlaceholder({ hash, placeholderContainerId: pod.containerId, nodeName: node });
    return { pid: into.hostPid, logFile: '', criuMs: into.restoreMs, verifiedBytes: into.verifiedBytes };
  });
}
