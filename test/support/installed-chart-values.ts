import { KubeConfig } from '@kubernetes/client-node';

/** What the test's `helm install` needs to know about this host's node and cluster. */
export interface ChartSite {
  image: { repository: string; tag: string };
  nodeName: string;
  /** host:port of the Temporal frontend as the pods reach it (the node's address). */
  temporalAddress: string;
  namespaces: string[];
  allowedImages: string[];
  storeHostPath: string;
  signalHostPath: string;
  /** Host directories of the node's runtime and kubelet (runc state, bundles, rootfs mounts, pod volumes). */
  runtimeHostPaths: string[];
}

export const PAYLOAD_KEYS_SECRET = 'torpor-payload-keys';
export const CONTROL_KUBECONFIG_SECRET = 'torpor-control-kubeconfig';
export const AGENT_KUBECONFIG_SECRET = 'torpor-agent-kubeconfig';

/**
 * The chart's values for the test node: the images imported into its containerd (never pulled), plaintext
 * gRPC to the test's Temporal (its payloads still encrypted), the agent on this one node (it has no GPU
 * label), and kubeconfig Secrets because the test API server gives pods no token and no Service route.
 */
export function chartValues(site: ChartSite): Record<string, unknown> {
  return {
    image: { ...site.image, pullPolicy: 'Never' },
    temporal: { address: site.temporalAddress, tls: { insecure: true }, payloadKeys: { secretName: PAYLOAD_KEYS_SECRET } },
    rbac: { scope: 'namespace', allowedNamespaces: site.namespaces },
    workloads: { allowedImages: site.allowedImages },
    storage: { hostPath: site.storeHostPath, signalHostPath: site.signalHostPath },
    controlWorker: { kubeconfigSecret: CONTROL_KUBECONFIG_SECRET, resources: { requests: { cpu: '50m', memory: '256Mi' } } },
    nodeAgent: {
      kubeconfigSecret: AGENT_KUBECONFIG_SECRET,
      // Helm merges maps: null drops the default GPU selector (the test node has no GPU label).
      nodeSelector: { 'kubernetes.io/hostname': site.nodeName, 'nvidia.com/gpu.present': null },
      tolerations: [],
      containers: { hostPaths: site.runtimeHostPaths.map((p, i) => ({ name: `runtime-${i}`, path: p })) },
      resources: { requests: { cpu: '50m', memory: '256Mi' } },
    },
  };
}

/** A kubeconfig for a pod: the API server at `server` (its self-signed certificate not checked), as `token`. */
export function podKubeconfig(server: string, token: string): string {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'test', server, skipTLSVerify: true }],
    users: [{ name: 'worker', token }],
    contexts: [{ name: 'test', cluster: 'test', user: 'worker' }],
    currentContext: 'test',
  });
  return kc.exportConfig();
}
