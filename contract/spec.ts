import { z } from 'zod';
import { RESERVED_ENV_PREFIXES } from './chrek.js';
import { torporFailure } from './failures.js';

/** Checkpoint hashes name directories and Kubernetes objects: DNS-label safe, no path syntax. */
export const HASH_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Kubernetes node names are DNS subdomains; they also name the node's task queue. */
export const NODE_PATTERN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const DAY_MS = 24 * 60 * 60 * 1000;

export const hashSchema = z.string().regex(HASH_PATTERN, 'must match ^[a-z0-9][a-z0-9-]{0,62}$ (lowercase letters, digits and dashes)');
export const nodeSchema = z.string().regex(NODE_PATTERN, 'must be a DNS subdomain such as gpu-node-1');
export const runtimeSchema = z.literal('local', { error: 'must be "local" (the kubernetes runtime is not built yet)' });
const timeoutSchema = (defaultMs: number) => z.number().int().positive().max(DAY_MS, 'must be at most 24 hours').default(defaultMs);
/** How long a step waits for the node's agent to pick it up before failing with AgentUnavailable. */
const agentTimeoutSchema = z.number().int().min(1000, 'must be at least 1000 ms').max(DAY_MS, 'must be at most 24 hours').default(60_000);
const argSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(4096)
  .refine((s) => !s.includes('\0'), 'must not contain NUL');

export const workloadSchema = z.object({
  command: z.array(argSchema).min(1, 'needs at least the program to run').max(256),
  cwd: z
    .string()
    .startsWith('/', 'must be an absolute path')
    .max(4096)
    .refine((p) => !p.split('/').includes('..'), 'must not contain ".."')
    .optional(),
  env: z
    .record(z.string().regex(ENV_NAME_PATTERN, 'is not a valid environment variable name'), z.string().max(65536))
    .refine((env) => Object.keys(env).length <= 256, 'may hold at most 256 variables')
    .refine(
      (env) => !Object.keys(env).some((k) => RESERVED_ENV_PREFIXES.some((p) => k.startsWith(p))),
      `may not set ${RESERVED_ENV_PREFIXES.join('*, ')}* (the agent sets them)`,
    )
    .default({}),
});

export const readinessSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('process-alive') }),
  z.object({ kind: z.literal('exec'), command: z.array(argSchema).min(1).max(256) }),
]);

export const checkpointRequestSchema = z.object({
  hash: hashSchema,
  node: nodeSchema,
  runtime: runtimeSchema,
  workload: workloadSchema,
  readyTimeoutMs: timeoutSchema(10 * 60 * 1000),
  exitTimeoutMs: timeoutSchema(60 * 1000),
  /** How long the CUDA driver may wait for running GPU work before the lock fails. */
  gpuLockTimeoutMs: timeoutSchema(30 * 1000),
  agentTimeoutMs: agentTimeoutSchema,
});

export const restoreRequestSchema = z.object({
  hash: hashSchema,
  node: nodeSchema,
  runtime: runtimeSchema,
  restoreId: hashSchema,
  readiness: readinessSchema.default({ kind: 'process-alive' }),
  readyTimeoutMs: timeoutSchema(5 * 60 * 1000),
  agentTimeoutMs: agentTimeoutSchema,
});

export type Runtime = z.output<typeof runtimeSchema>;
export type WorkloadSpec = z.output<typeof workloadSchema>;
export type ReadinessProbe = z.output<typeof readinessSchema>;
/** What a caller sends; optional fields take their defaults. */
export type CheckpointRequest = z.input<typeof checkpointRequestSchema>;
export type CheckpointSpec = z.output<typeof checkpointRequestSchema>;
export type RestoreRequest = z.input<typeof restoreRequestSchema>;
export type RestoreSpec = z.output<typeof restoreRequestSchema>;

/** Parses untrusted input or throws a non-retryable `InvalidSpec` naming every bad field. */
export function parseOrReject<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(input)'} ${i.message}`);
  throw torporFailure('InvalidSpec', `Invalid ${what}: ${problems.join('; ')}`, { problems });
}
