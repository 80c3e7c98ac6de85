import path from 'node:path';

/** Where one real test node keeps everything of its own (short: containerd's socket path must fit 108 bytes). */
export interface RealNodeLayout {
  dir: string;
  nodeName: string;
  bin: string;
  cniBin: string;
  /** The v1 cgroup parent of every pod (the kubelet's cgroupRoot), removed at the end. */
  cgroupRoot: string;
  bridge: string;
  subnet: string;
  kubeletPort: number;
  /** The host's own address: the kubelet refuses a loopback node IP, and the API server dials it there for logs. */
  nodeIp: string;
}

export const socketOf = (l: RealNodeLayout) => path.join(l.dir, 'containerd.sock');

/**
 * containerd 1.6 (Debian bookworm's) with its CRI plugin on: its own root, state and socket; runc
 * from the set-up with cgroupfs (this host is cgroup v1, no systemd); the sandbox image is the
 * locally built pause image (nothing can be pulled); CNI from the set-up's plugins.
 */
export function containerdConfig(l: RealNodeLayout, pauseImage: string): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = "${path.join(l.dir, 'containerd-root')}"
state = "${path.join(l.dir, 'containerd-state')}"
[grpc]
  address = "${socketOf(l)}"
[ttrpc]
  address = "${socketOf(l)}.ttrpc"
[${cri}]
  sandbox_image = "${pauseImage}"
  disable_apparmor = true
  # This VM denies lowering oom_score_adj (the kubelet asks -998 for sandboxes): cap it at containerd's own.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[${cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[${cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[${cri}.containerd.runtimes.runc.options]
  BinaryName = "${path.join(l.bin, 'runc')}"
  SystemdCgroup = false
[${cri}.cni]
  bin_dir = "${l.cniBin}"
  conf_dir = "${path.join(l.dir, 'net.d')}"
`;
}

/** One bridge network with host-local addresses; containerd adds loopback itself (the loopback plugin). */
export function cniConfig(l: RealNodeLayout): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'torpor-test',
    plugins: [
      {
        type: 'bridge',
        bridge: l.bridge,
        isGateway: true,
        ipMasq: false,
        ipam: { type: 'host-local', ranges: [[{ subnet: l.subnet }]], dataDir: path.join(l.dir, 'cni-ipam') },
      },
    ],
  });
}

/**
 * The kubelet's configuration for this VM; each setting says why it is there.
 * JSON is YAML, so the kubelet reads it as its config file.
 */
export function kubeletConfig(l: RealNodeLayout): string {
  return JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // The node's InternalIP, where the API server dials it for logs (loopback is refused as a node IP).
    address: l.nodeIp,
    port: l.kubeletPort,
    readOnlyPort: 0,
    healthzPort: 0,
    // Tests only: no client certificates exist for the API server, so anonymous and allow-all.
    authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
    authorization: { mode: 'AlwaysAllow' },
    // cgroup v1 without systemd: cgroupfs, and v1 explicitly allowed (the kubelet refuses it otherwise).
    cgroupDriver: 'cgroupfs',
    failCgroupV1: false,
    cgroupRoot: l.cgroupRoot,
    containerRuntimeEndpoint: `unix://${socketOf(l)}`,
    imageServiceEndpoint: `unix://${socketOf(l)}`,
    failSwapOn: false,
    // A shared development VM: no evictions, no image garbage collection, no kernel tunables checked.
    evictionHard: { 'memory.available': '0%', 'nodefs.available': '0%', 'nodefs.inodesFree': '0%', 'imagefs.available': '0%' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    protectKernelDefaults: false,
    localStorageCapacityIsolation: false,
    resolvConf: '/etc/resolv.conf',
    // Container logs under the node's directory (its /var/log/containers links are fixed, and removed at stop).
    podLogsDir: path.join(l.dir, 'pod-logs'),
    serializeImagePulls: false,
    // Quick status so tests wait less (defaults are 10 s and more).
    nodeStatusUpdateFrequency: '2s',
    syncFrequency: '5s',
    fileCheckFrequency: '5s',
  });
}
