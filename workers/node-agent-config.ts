import { mkdirSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { NodeAgentConfig } from '../activities/node/agent-config.js';
import { kubernetesPodLookup } from '../activities/node/container/pod-lookup.js';
import type { PodLookup } from '../activities/node/container/target-policy.js';
import { CHECKPOINT_SOURCE_LABEL } from '../contract/chrek.js';
import { NODE_PATTERN } from '../contract/spec.js';

/** Node names become task-queue names; a host name like "GPU_Box1" becomes "gpu-box1". */
export function normalizeNodeName(name: string): string {
  const normalized = name
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '');
  if (!NODE_PATTERN.test(normalized)) throw new Error(`cannot derive a valid node name from "${name}"; set NODE_NAME`);
  return normalized;
}

function splitArgs(value: string | undefined): string[] {
  return value?.trim() ? value.trim().split(/\s+/) : [];
}

/**
 * In a cluster (the DaemonSet's service account) or with KUBECONFIG, the agent checks a
 * container's pod in the Kubernetes API: its labels, its node, its container IDs.
 */
function agentPodLookup(env: NodeJS.ProcessEnv): { pods?: PodLookup } {
  if (!env.KUBERNETES_SERVICE_HOST && !env.KUBECONFIG) return {};
  const kubeConfig = new KubeConfig();
  if (env.KUBECONFIG) kubeConfig.loadFromFile(env.KUBECONFIG);
  else kubeConfig.loadFromCluster();
  return { pods: kubernetesPodLookup(kubeConfig) };
}

/** The agent's configuration from its environment (what the DaemonSet or a systemd unit sets). */
export function nodeAgentConfigFromEnv(env: NodeJS.ProcessEnv = process.env): NodeAgentConfig {
  const storage = path.resolve(env.TORPOR_STORAGE_ROOT ?? '/var/lib/torpor/checkpoints');
  mkdirSync(storage, { recursive: true });
  return {
    nodeName: normalizeNodeName(env.NODE_NAME ?? os.hostname()),
    // Resolved once, so that confinement checks compare real paths.
    storageRoot: realpathSync(storage),
    ...(env.TORPOR_SIGNAL_DIR ? { signalDir: path.resolve(env.TORPOR_SIGNAL_DIR) } : {}),
    criuPath: env.TORPOR_CRIU ?? 'criu',
    extraDumpArgs: splitArgs(env.TORPOR_CRIU_DUMP_ARGS),
    extraRestoreArgs: splitArgs(env.TORPOR_CRIU_RESTORE_ARGS),
    torporVersion: env.npm_package_version ?? '0.1.0',
    ...(env.TORPOR_RUNC_ROOT
      ? {
          containers: {
            runcPath: env.TORPOR_RUNC ?? 'runc',
            runcRoot: path.resolve(env.TORPOR_RUNC_ROOT),
            allowedNamespaces: (env.TORPOR_CONTAINER_NAMESPACES ?? '')
              .split(',')
              .map((n) => n.trim())
              .filter(Boolean),
            checkpointSourceLabel: env.TORPOR_CHECKPOINT_SOURCE_LABEL ?? CHECKPOINT_SOURCE_LABEL,
            ...agentPodLookup(env),
          },
        }
      : {}),
  };
}
