import { accessSync, constants, mkdirSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { NodeAgentConfig } from '../activities/node/agent-config.js';
import { kubernetesPodLookup } from '../activities/node/container/pod-lookup.js';
import type { PodLookup } from '../activities/node/container/target-policy.js';
import { defaultHeavyStepLimit } from '../activities/node/heavy-steps.js';
import { CHUNK_BYTES } from '../activities/node/store/chunk-digests.js';
import {
  nodeCacheBytesFromEnv,
  sharedDirConfigFromEnv,
  sharedLeaseMsFromEnv,
  sharedStoreConfigFromEnv,
} from '../activities/node/store/shared/config.js';
import { CHECKPOINT_SOURCE_LABEL } from '../contract/chrek.js';
import { NETWORK_LOCK_METHODS, type NetworkLockMethod } from '../contract/network.js';
import { NODE_PATTERN } from '../contract/spec.js';
import { positiveIntFromEnv } from './env-numbers.js';

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

/** The first executable `name` in `dirs`, or undefined. */
function findExecutable(name: string, dirs: string[]): string | undefined {
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function searchPath(env: NodeJS.ProcessEnv, criuPath: string): string[] {
  // runc runs CRIU with the CRIU wrapper's directory first on PATH, so tools beside it count too.
  const beside = path.isAbsolute(criuPath) ? [path.dirname(criuPath)] : [];
  return [...beside, ...(env.PATH ?? '').split(':').filter(Boolean)];
}

/** TORPOR_CRIU_NETWORK_LOCK: iptables, nftables, or auto (iptables where iptables-restore is installed, else nftables). */
export function networkLockFromEnv(env: NodeJS.ProcessEnv, criuPath: string): NetworkLockMethod {
  const wanted = env.TORPOR_CRIU_NETWORK_LOCK ?? 'auto';
  if ((NETWORK_LOCK_METHODS as readonly string[]).includes(wanted)) return wanted as NetworkLockMethod;
  if (wanted !== 'auto') throw new Error(`TORPOR_CRIU_NETWORK_LOCK must be iptables, nftables or auto, not "${wanted}"`);
  return findExecutable('iptables-restore', searchPath(env, criuPath)) ? 'iptables' : 'nftables';
}

/** TORPOR_WORKLOAD_LAUNCHER: a path, or "none"; by default torpor-no-io-uring when it is on PATH. */
function workloadLauncherFromEnv(env: NodeJS.ProcessEnv, criuPath: string): { workloadLauncher?: string } {
  const wanted = env.TORPOR_WORKLOAD_LAUNCHER;
  if (wanted === 'none') return {};
  const launcher = wanted ? path.resolve(wanted) : findExecutable('torpor-no-io-uring', searchPath(env, criuPath));
  return launcher ? { workloadLauncher: launcher } : {};
}

/** A uid or gid for local workloads: a whole number, never 0 (root). */
function localIdFromEnv(env: NodeJS.ProcessEnv, name: string): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return NOBODY;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name} must be a whole number, not "${raw}"`);
  if (value === 0) throw new Error(`${name} must not be 0: local workloads run a caller's command and never run as root`);
  return value;
}

const NOBODY = 65534;

/**
 * TORPOR_LOCAL_RUNTIME=on|off (off by default): whether the agent starts and restores local
 * processes; they run as TORPOR_LOCAL_UID / TORPOR_LOCAL_GID (65534, nobody, by default).
 */
export function localRuntimeFromEnv(env: NodeJS.ProcessEnv): Pick<NodeAgentConfig, 'localRuntime'> {
  const wanted = env.TORPOR_LOCAL_RUNTIME ?? 'off';
  if (wanted !== 'on' && wanted !== 'off') throw new Error(`TORPOR_LOCAL_RUNTIME must be on or off, not "${wanted}"`);
  if (wanted === 'off') return {};
  return { localRuntime: { uid: localIdFromEnv(env, 'TORPOR_LOCAL_UID'), gid: localIdFromEnv(env, 'TORPOR_LOCAL_GID') } };
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

/** TORPOR_S3_* or TORPOR_SHARED_DIR, TORPOR_SHARED_LEASE_MS (store/shared/config.ts) and TORPOR_NODE_CACHE_BYTES. */
function sharedStoreFromEnv(
  env: NodeJS.ProcessEnv,
): Pick<NodeAgentConfig, 'sharedStore' | 'sharedDir' | 'sharedLeaseMs' | 'nodeCacheBytes'> {
  const sharedDir = sharedDirConfigFromEnv(env);
  const sharedStore = sharedStoreConfigFromEnv(env);
  const sharedLeaseMs = sharedLeaseMsFromEnv(env);
  const nodeCacheBytes = nodeCacheBytesFromEnv(env);
  return {
    ...(sharedStore ? { sharedStore } : {}),
    ...(sharedDir ? { sharedDir } : {}),
    ...(sharedLeaseMs === undefined ? {} : { sharedLeaseMs }),
    ...(nodeCacheBytes === undefined ? {} : { nodeCacheBytes }),
  };
}

/** The agent's configuration from its environment (what the DaemonSet or a systemd unit sets). */
export function nodeAgentConfigFromEnv(env: NodeJS.ProcessEnv = process.env): NodeAgentConfig {
  const storage = path.resolve(env.TORPOR_STORAGE_ROOT ?? '/var/lib/torpor/checkpoints');
  mkdirSync(storage, { recursive: true });
  const criuPath = env.TORPOR_CRIU ?? 'criu';
  return {
    nodeName: normalizeNodeName(env.NODE_NAME ?? os.hostname()),
    // Resolved once, so that confinement checks compare real paths.
    storageRoot: realpathSync(storage),
    ...(env.TORPOR_SIGNAL_DIR ? { signalDir: path.resolve(env.TORPOR_SIGNAL_DIR) } : {}),
    ...(env.TORPOR_MANIFEST_KEY_FILE ? { manifestKeyFile: path.resolve(env.TORPOR_MANIFEST_KEY_FILE) } : {}),
    criuPath,
    extraDumpArgs: splitArgs(env.TORPOR_CRIU_DUMP_ARGS),
    extraRestoreArgs: splitArgs(env.TORPOR_CRIU_RESTORE_ARGS),
    networkLock: networkLockFromEnv(env, criuPath),
    digestChunkBytes: positiveIntFromEnv(env, 'TORPOR_DIGEST_CHUNK_BYTES') ?? CHUNK_BYTES,
    heavyStepLimit: positiveIntFromEnv(env, 'TORPOR_HEAVY_STEPS') ?? defaultHeavyStepLimit(),
    ...workloadLauncherFromEnv(env, criuPath),
    ...localRuntimeFromEnv(env),
    torporVersion: env.npm_package_version ?? '0.1.0',
    ...sharedStoreFromEnv(env),
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

/** What the agent's Temporal worker is told beyond its activities (see agentWorkerTuningFromEnv). */
export interface AgentWorkerTuning {
  maxConcurrentActivityTaskExecutions: number;
}

/**
 * TORPOR_AGENT_ACTIVITY_SLOTS (200): activities this agent runs at once, heavy steps waiting in
 * its queue included. Heavy and quick steps share one task queue (a second worker could not pick
 * only quick ones), so the slots are many and the heavy-step queue is what bounds the node's work:
 * a queued dump holds a slot and costs a promise, and a quick step finds a free slot while dumps
 * wait. Every workflow runs one node step at a time, so slots ≥ workflows in flight on the node
 * can never starve.
 */
export function agentWorkerTuningFromEnv(env: NodeJS.ProcessEnv = process.env): AgentWorkerTuning {
  return { maxConcurrentActivityTaskExecutions: positiveIntFromEnv(env, 'TORPOR_AGENT_ACTIVITY_SLOTS') ?? 200 };
}
