import { readFileSync } from 'node:fs';
import { NativeConnection, type NativeConnectionOptions, Runtime } from '@temporalio/worker';

export interface TemporalTarget {
  address: string;
  namespace: string;
}

export function temporalTargetFromEnv(env: NodeJS.ProcessEnv = process.env): TemporalTarget {
  return { address: env.TEMPORAL_ADDRESS ?? 'localhost:7233', namespace: env.TEMPORAL_NAMESPACE ?? 'default' };
}

/** mTLS from files (a mounted Secret): TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY, TEMPORAL_TLS_CA, TEMPORAL_TLS_SERVER_NAME. */
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
  return NativeConnection.connect({ address: target.address, ...(tls ? { tls } : {}) });
}

/** Runs `main` and exits non-zero with a readable message if it throws. */
export function runMain(main: () => Promise<void>): void {
  installRuntimeFromEnv();
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
