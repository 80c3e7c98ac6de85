import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { NativeConnection, type NativeConnectionOptions, Runtime, type Worker } from '@temporalio/worker';

export interface TemporalTarget {
  address: string;
  namespace: string;
}

export function temporalTargetFromEnv(env: NodeJS.ProcessEnv = process.env): TemporalTarget {
  return { address: env.TEMPORAL_ADDRESS ?? 'localhost:7233', namespace: env.TEMPORAL_NAMESPACE ?? 'default' };
}

/**
 * mTLS from files (a mounted Secret): TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY, TEMPORAL_TLS_CA,
 * TEMPORAL_TLS_SERVER_NAME. Read on every call, so each new connection uses the current files.
 */
export function tlsFromEnv(env: NodeJS.ProcessEnv = process.env): NativeConnectionOptions['tls'] {
  if (!env.TEMPORAL_TLS_CERT && !env.TEMPORAL_TLS_CA) return undefined;
  return {
    ...(env.TEMPORAL_TLS_CA ? { serverRootCACertificate: readFileSync(env.TEMPORAL_TLS_CA) } : {}),
    ...(env.TEMPORAL_TLS_SERVER_NAME ? { serverNameOverride: env.TEMPORAL_TLS_SERVER_NAME } : {}),
    ...(env.TEMPORAL_TLS_CERT && env.TEMPORAL_TLS_KEY
      ? { clientCertPair: { crt: readFileSync(env.TEMPORAL_TLS_CERT), key: readFileSync(env.TEMPORAL_TLS_KEY) } }
      : {}),
  };
}

/** Prometheus metrics of the SDK runtime on TORPOR_METRICS_ADDRESS (host:port), when set. Call before connecting. */
export function installRuntimeFromEnv(env: NodeJS.ProcessEnv = process.env): void {
  if (env.TORPOR_METRICS_ADDRESS)
    Runtime.install({ telemetryOptions: { metrics: { prometheus: { bindAddress: env.TORPOR_METRICS_ADDRESS } } } });
}

export function connectWorker(target: TemporalTarget): Promise<NativeConnection> {
  const tls = tlsFromEnv();
  if (!tls) console.warn('no TEMPORAL_TLS_*: connecting to Temporal without TLS (namespace access is root on every node)');
  if (!process.env.TORPOR_PAYLOAD_KEY_FILE) console.warn('no TORPOR_PAYLOAD_KEY_FILE: payloads travel and are stored in clear');
  return NativeConnection.connect({ address: target.address, ...(tls ? { tls } : {}) });
}

const TLS_FILE_VARIABLES = ['TEMPORAL_TLS_CERT', 'TEMPORAL_TLS_KEY', 'TEMPORAL_TLS_CA'] as const;

/**
 * A worker's connection keeps the certificates it was opened with, so when a mounted certificate
 * changes (a rotated Secret) the worker drains and exits: its Deployment or DaemonSet restarts it
 * with the new files. Returns the function that stops watching.
 */
export function shutdownOnTlsRotation(worker: Pick<Worker, 'shutdown'>, env: NodeJS.ProcessEnv = process.env, intervalMs = 10_000) {
  const files = TLS_FILE_VARIABLES.map((name) => env[name]).filter((f): f is string => Boolean(f));
  const onChange = (current: { mtimeMs: number }, previous: { mtimeMs: number }) => {
    if (current.mtimeMs === previous.mtimeMs) return;
    console.log('TLS certificate files changed: draining the worker so it restarts with them');
    stop();
    worker.shutdown();
  };
  const stop = () => {
    for (const f of files) unwatchFile(f, onChange);
  };
  for (const f of files) watchFile(f, { interval: intervalMs }, onChange);
  return stop;
}

/** Runs `main` and exits non-zero with a readable message if it throws. */
export function runMain(main: () => Promise<void>): void {
  installRuntimeFromEnv();
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
