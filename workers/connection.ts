import { NativeConnection } from '@temporalio/worker';

export interface TemporalTarget {
  address: string;
  namespace: string;
}

export function temporalTargetFromEnv(env: NodeJS.ProcessEnv = process.env): TemporalTarget {
  return { address: env.TEMPORAL_ADDRESS ?? 'localhost:7233', namespace: env.TEMPORAL_NAMESPACE ?? 'default' };
}

export function connectWorker(target: TemporalTarget): Promise<NativeConnection> {
  return NativeConnection.connect({ address: target.address });
}

/** Runs `main` and exits non-zero with a readable message if it throws. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
