import { z } from 'zod';
import { RESERVED_ENV_PREFIXES } from './chrek.js';
import { torporFailure } from './failures.js';
import { GPU_SELECTOR_PATTERN } from './gpu-types.js';
import { kubernetesSectionSchema } from './kubernetes.js';
import { type EstablishedPolicy, httpPathSchema, networkSectionSchema, tcpPortSchema } from './network.js';

/** Checkpoint hashes name directories and Kubernetes objects: DNS-label safe, no path syntax. */
export const HASH_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Kubernetes node names are DNS subdomains; they also name the node's task queue. */
export const NODE_PATTERN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const DAY_MS = 24 * 60 * 60 * 1000;

export const hashSchema = z.string().regex(HASH_PATTERN, 'must match ^[a-z0-9][a-z0-9-]{0,62}$ (lowercase letters, digits and dashes)');
export const nodeSchema = z.string().regex(NODE_PATTERN, 'must be a DNS subdomain such as gpu-node-1');
export const runtimeSchema = z.enum(['local', 'kubernetes'], { error: 'must be "local" or "kubernetes"' });
const timeoutSchema = (defaultMs: number) => z.number().int().positive().max(DAY_MS, 'must be at most 24 hours').default(defaultMs);
/** How long a step waits for the node's agent to pick it up before failing with AgentUnavailable. */
export const agentTimeoutSchema = z
  .number()
  .int()
  .min(1000, 'must be at least 1000 ms')
  .max(DAY_MS, 'must be at most 24 hours')
  .default(60_000);
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

/** The agent probes only its own host's loopback: a privileged agent must not be a way to reach other addresses. */
export const LOOPBACK_HOSTS = ['127.0.0.1', '::1', 'localhost'] as const;

export const readinessSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('process-alive') }),
  z.object({ kind: z.literal('exec'), command: z.array(argSchema).min(1).max(256) }),
  /** Ready once GET http://<host>:<port><path> answers 2xx, as a model server's health endpoint does. */
  z.object({
    kind: z.literal('http'),
    port: tcpPortSchema,
    path: httpPathSchema,
    host: z
      .enum(LOOPBACK_HOSTS, { error: 'must be 127.0.0.1, ::1 or localhost (the agent probes its own host only)' })
      .default('127.0.0.1'),
  }),
]);

export const checkpointRequestSchema = z.object({
  hash: hashSchema,
  /** Required by the local runtime; the kubernetes runtime without it runs the Job where the scheduler places it. */
  node: nodeSchema.optional(),
  runtime: runtimeSchema,
  workload: workloadSchema,
  readyTimeoutMs: timeoutSchema(10 * 60 * 1000),
  exitTimeoutMs: timeoutSchema(60 * 1000),
  /** How long the CUDA driver may wait for running GPU work before the lock fails. */
  gpuLockTimeoutMs: timeoutSchema(30 * 1000),
  agentTimeoutMs: agentTimeoutSchema,
  /** Required by, and only allowed with, the kubernetes runtime. */
  kubernetes: kubernetesSectionSchema.optional(),
  /** What happens to established TCP connections; `DEFAULT_ESTABLISHED` of the runtime when absent. */
  network: networkSectionSchema.optional(),
  /** Upload the committed checkpoint to the node agent's shared store (its configuration names it). */
  sharedStore: z.boolean().optional(),
});

export const restoreRequestSchema = z.object({
  hash: hashSchema,
  /**
   * Required by the local runtime; the kubernetes runtime without it (and with `sharedStore`) places
   * the placeholder on a node of the checkpoint's GPU model and fetches the checkpoint there.
   */
  node: nodeSchema.optional(),
  runtime: runtimeSchema,
  restoreId: hashSchema,
  readiness: readinessSchema.default({ kind: 'process-alive' }),
  readyTimeoutMs: timeoutSchema(5 * 60 * 1000),
  agentTimeoutMs: agentTimeoutSchema,
  /** Required by, and only allowed with, the kubernetes runtime: the placeholder pod's image and volumes. */
  kubernetes: kubernetesSectionSchema.optional(),
  /** The placeholder's command and environment (kubernetes runtime); its image's own when absent. */
  workload: workloadSchema.optional(),
  /** Fetch the checkpoint from the node agent's shared store into its node cache first, when the cache lacks it. */
  sharedStore: z.boolean().optional(),
  /**
   * Local runtime: the GPUs to restore onto, by UUID or nvidia-smi index, in the order the restored
   * process sees them (its GPU 0 first); the checkpoint's GPUs are paired with them. Default: the node's, in index order.
   */
  gpus: z
    .array(z.string().regex(GPU_SELECTOR_PATTERN, 'must be a GPU UUID (GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx) or an nvidia-smi index'))
    .min(1)
    .max(64)
    .refine((gpus) => new Set(gpus.map((g) => g.toLowerCase())).size === gpus.length, 'must name each GPU once')
    .optional(),
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

/**
 * Established connections are closed by default in both runtimes: a checkpoint is restored later,
 * often more than once, and a kubernetes restore lands in a placeholder pod's network namespace,
 * where no saved connection could continue. `keep` is a hand-off on the same host (local only).
 */
export const DEFAULT_ESTABLISHED: Record<Runtime, EstablishedPolicy> = { local: 'close', kubernetes: 'close' };

/** The established-connection policy a checkpoint request asks for, or its runtime's default. */
export function establishedPolicy(spec: { runtime: Runtime; network?: { established?: EstablishedPolicy | undefined } | undefined }) {
  return spec.network?.established ?? DEFAULT_ESTABLISHED[spec.runtime];
}

/** The checks that span fields: each runtime has its own section and nothing of the other's. */
export function runtimeProblems(spec: {
  runtime: Runtime;
  node?: string | undefined;
  kubernetes?: unknown;
  workload?: { cwd?: string | undefined } | undefined;
  network?: { established?: EstablishedPolicy | undefined } | undefined;
  gpus?: unknown;
}): string[] {
  if (spec.runtime === 'kubernetes') {
    return [
      ...(spec.kubernetes === undefined ? ['kubernetes is required for the kubernetes runtime'] : []),
      ...(spec.gpus === undefined
        ? []
        : ['gpus is not supported by the kubernetes runtime (the placeholder gets its GPUs from the device plugin)']),
      ...(spec.workload?.cwd === undefined ? [] : ['workload.cwd is not supported by the kubernetes runtime (the image sets it)']),
      ...(spec.network?.established === 'keep'
        ? [
            'network.established "keep" is not supported by the kubernetes runtime (the restore lands in a placeholder pod\'s network namespace); use "close"',
          ]
        : []),
    ];
  }
  return [
    ...(spec.node === undefined ? ['node is required for the local runtime (only the kubernetes runtime places workloads itself)'] : []),
    ...(spec.kubernetes === undefined ? [] : ['kubernetes is only allowed with the kubernetes runtime']),
  ];
}

/** Parses a checkpoint request, including the checks across fields. */
export function parseCheckpointRequest(input: unknown): CheckpointSpec {
  return rejectProblems(parseOrReject(checkpointRequestSchema, input, 'checkpoint request'), 'checkpoint request');
}

export function parseRestoreRequest(input: unknown): RestoreSpec {
  const spec = parseOrReject(restoreRequestSchema, input, 'restore request');
  // Without a node, only the shared store can bring the checkpoint to wherever the placeholder lands.
  const unplaced =
    spec.runtime === 'kubernetes' && spec.node === undefined && spec.sharedStore !== true
      ? ['node is required unless sharedStore is true (a restore without a node fetches the checkpoint from the shared store)']
      : [];
  return rejectProblems(spec, 'restore request', unplaced);
}

function rejectProblems<T extends Parameters<typeof runtimeProblems>[0]>(spec: T, what: string, more: string[] = []): T {
  const problems = [...runtimeProblems(spec), ...more];
  if (problems.length > 0) throw torporFailure('InvalidSpec', `Invalid ${what}: ${problems.join('; ')}`, { problems });
  return spec;
}

/** A workload's name, the readable prefix of its spec hashes (`<name>-<16 hex>`): 46 characters at most. */
export const WORKLOAD_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,44}[a-z0-9])?$/;
export const workloadNameSchema = z
  .string()
  .regex(WORKLOAD_NAME_PATTERN, 'must be 1 to 46 lowercase letters, digits and dashes, starting and ending with a letter or digit');
/** The workload variables that count toward the spec hash; absent: all of `workload.env`. */
const hashEnvSchema = z.array(z.string().regex(ENV_NAME_PATTERN, 'is not a valid environment variable name')).max(256).optional();
const keepSchema = z.number().int().min(1, 'must keep at least 1 checkpoint').max(1000);

export const specHashRequestSchema = z.object({
  name: workloadNameSchema,
  node: nodeSchema,
  runtime: runtimeSchema,
  workload: workloadSchema,
  hashEnv: hashEnvSchema,
  agentTimeoutMs: agentTimeoutSchema,
});

/** A refresh (what a Schedule runs): derive the spec hash, checkpoint it when missing, keep the newest `keep`. */
export const refreshRequestSchema = checkpointRequestSchema.omit({ hash: true }).extend({
  /** A refresh derives the spec hash on its node's agent: the node is always named. */
  node: nodeSchema,
  name: workloadNameSchema,
  hashEnv: hashEnvSchema,
  keep: keepSchema.default(3),
});

/** Schedules refresh no more often than once a minute: a checkpoint takes a while and a faster one only skips. */
export const MIN_REFRESH_INTERVAL_MS = 60_000;
const MAX_REFRESH_INTERVAL_MS = 366 * DAY_MS;
const INTERVAL_UNITS_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS };

/** Parses "90s", "15m", "1h30m", "7d" into milliseconds; null when it is not such a duration. */
export function parseInterval(text: string): number | null {
  if (!/^(\d+[smhd])+$/.test(text)) return null;
  let ms = 0;
  for (const [, count, unit] of text.matchAll(/(\d+)([smhd])/g)) ms += Number(count) * (INTERVAL_UNITS_MS[unit as string] ?? Number.NaN);
  return Number.isSafeInteger(ms) ? ms : null;
}

export const intervalSchema = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = typeof value === 'number' ? value : parseInterval(value);
  if (ms === null || !Number.isSafeInteger(ms)) {
    ctx.addIssue({ code: 'custom', message: 'must be a duration such as "30m", "1h" or "1h30m" (units s, m, h, d)' });
    return z.NEVER;
  }
  if (ms < MIN_REFRESH_INTERVAL_MS) ctx.addIssue({ code: 'custom', message: 'must be at least 1 minute' });
  if (ms > MAX_REFRESH_INTERVAL_MS) ctx.addIssue({ code: 'custom', message: 'must be at most 366 days' });
  return ms;
});

export const refreshScheduleSchema = refreshRequestSchema.extend({
  every: intervalSchema,
  paused: z.boolean().default(false),
});

/** Names one node (listing its checkpoints). */
export const nodeRequestSchema = z.object({ node: nodeSchema, agentTimeoutMs: agentTimeoutSchema });
/** Names one checkpoint on one node (inspect, delete). */
export const checkpointRefSchema = z.object({ hash: hashSchema, node: nodeSchema, agentTimeoutMs: agentTimeoutSchema });

const ageSchema = (defaultMs: number) =>
  z
    .number()
    .int()
    .min(0)
    .max(366 * DAY_MS, 'must be at most 366 days')
    .default(defaultMs);
export const gcRequestSchema = z.object({
  node: nodeSchema,
  /** Temporary dumps and trash untouched this long are removed (a live dump is written every second). */
  tmpMaxAgeMs: ageSchema(60 * 60 * 1000),
  /** Run and restore files of processes that no longer run, untouched this long, are removed; live workloads this old are stopped. */
  runMaxAgeMs: ageSchema(25 * 60 * 60 * 1000),
  /** Also apply retention to every workload name found: keep the newest N of each. */
  keepPerName: keepSchema.optional(),
  agentTimeoutMs: agentTimeoutSchema,
});

export type SpecHashRequest = z.input<typeof specHashRequestSchema>;
export type RefreshRequest = z.input<typeof refreshRequestSchema>;
export type RefreshSpec = z.output<typeof refreshRequestSchema>;
export type RefreshScheduleRequest = z.input<typeof refreshScheduleSchema>;
export type NodeRequest = z.input<typeof nodeRequestSchema>;
export type CheckpointRef = z.input<typeof checkpointRefSchema>;
export type GcRequest = z.input<typeof gcRequestSchema>;
