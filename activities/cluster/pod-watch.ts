import { type CoreV1Api, type KubeConfig, type V1Pod, Watch } from '@kubernetes/client-node';

export interface PodWaitOptions {
  namespace: string;
  labelSelector: string;
  /** True when the wait is over (the pod is ready, running, gone...). */
  done: (pod: V1Pod) => boolean;
  /** Throws a typed failure for a pod that will never get there. */
  check: (pod: V1Pod) => Promise<void>;
  /** Called on every list and watch event, and every second with no pods; an activity heartbeats from it. */
  onProgress: (pods: V1Pod[]) => void;
  signal: AbortSignal;
  /** Start watching from this resourceVersion instead of listing first (tests use an expired one). */
  startResourceVersion?: string;
  /** Told when the server ended a watch with 410 Gone and the pods are listed again. */
  onWatchExpired?: () => void;
}

type WatchEnd = { kind: 'matched'; pod: V1Pod } | { kind: 'expired' } | { kind: 'closed' };

/**
 * Lists the pods, then watches from the list's resourceVersion. A watch the server ends with
 * 410 Gone (the version was compacted away) or closes is answered by listing again, the
 * Kubernetes list-then-watch pattern; nothing is missed because every list re-checks every pod.
 */
export async function waitForPod(kc: KubeConfig, core: CoreV1Api, options: PodWaitOptions): Promise<V1Pod> {
  // A watch may stay silent for its whole 60 s (an image pull, a failing probe): the caller's
  // heartbeat must not depend on events, or a quiet wait would be timed out and retried.
  const ticker = setInterval(() => options.onProgress([]), 1000);
  try {
    return await listAndWatch(kc, core, options);
  } finally {
    clearInterval(ticker);
  }
}

async function listAndWatch(kc: KubeConfig, core: CoreV1Api, options: PodWaitOptions): Promise<V1Pod> {
  let resourceVersion = options.startResourceVersion;
  for (;;) {
    if (resourceVersion === undefined) {
      const list = await core.listNamespacedPod({ namespace: options.namespace, labelSelector: options.labelSelector });
      options.onProgress(list.items);
      for (const pod of list.items) {
        await options.check(pod);
        if (options.done(pod)) return pod;
      }
      resourceVersion = list.metadata?.resourceVersion;
    }
    const end = await watchOnce(kc, options, resourceVersion);
    if (end.kind === 'matched') return end.pod;
    if (end.kind === 'expired') options.onWatchExpired?.();
    resourceVersion = undefined;
  }
}

async function watchOnce(kc: KubeConfig, options: PodWaitOptions, resourceVersion: string | undefined): Promise<WatchEnd> {
  options.signal.throwIfAborted();
  return new Promise<WatchEnd>((resolve, reject) => {
    let settled = false;
    let controller: AbortController | undefined;
    const finish = (end: WatchEnd | Error) => {
      if (settled) return;
      settled = true;
      controller?.abort();
      options.signal.removeEventListener('abort', onAbort);
      if (end instanceof Error) reject(end);
      else resolve(end);
    };
    const onAbort = () => finish(options.signal.reason instanceof Error ? options.signal.reason : new Error('aborted'));
    options.signal.addEventListener('abort', onAbort);
    new Watch(kc)
      .watch(
        `/api/v1/namespaces/${options.namespace}/pods`,
        { labelSelector: options.labelSelector, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 60 },
        (type, obj: V1Pod & { code?: number }) => {
          if (type === 'ERROR') {
            finish(obj.code === 410 ? { kind: 'expired' } : new Error(`pod watch error: ${JSON.stringify(obj)}`));
            return;
          }
          if (type === 'BOOKMARK') return;
          options.onProgress([obj]);
          options
            .check(obj)
            .then(() => {
              if (options.done(obj)) finish({ kind: 'matched', pod: obj });
            })
            .catch((err: Error) => finish(err));
        },
        () => finish({ kind: 'closed' }),
      )
      .then(
        (c) => {
          controller = c;
          if (settled) c.abort();
        },
        (err: unknown) => finish(isGone(err) ? { kind: 'expired' } : (err as Error)),
      );
  });
}

function isGone(err: unknown): boolean {
  return typeof err === 'object' && err !== null && ('code' in err ? (err as { code: unknown }).code === 410 : String(err).includes('410'));
}
