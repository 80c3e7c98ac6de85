import type { Command } from 'commander';
import type { CheckpointResult, RestoreResult, RestoreStart } from '../../client/index.js';
import type { CheckpointRequest, ReadinessProbe } from '../../contract/spec.js';
import type { CliContext, ContextOf } from '../context.js';
import { fields, formatBytes, formatMs } from '../format.js';
import { collectEnv, commaList, durationMs, establishedOption, httpProbe, type WorkloadOptions, workloadRequest } from '../options.js';
import { withProgress } from '../progress.js';
import { readRequest, requestOption, withNode } from '../request-file.js';
import { registerCatalogCommands } from './catalog.js';

type CheckpointOptions = WorkloadOptions & { name?: string; hash?: string; request?: string };
type RestoreOptions = { restoreId?: string; readyTimeout?: number; readyHttp?: ReadinessProbe; request?: string };

function checkpointLines(result: CheckpointResult, ui: string): string[] {
  const m = result.manifest;
  return [
    `checkpoint ${result.outcome}: ${result.hash} on ${result.node}`,
    ...fields([
      ['image', `${formatBytes(m.totalBytes)} in ${m.files.length} files`],
      ['created', m.createdAt],
      ['start → ready', formatMs(m.timings.startToReadyMs)],
      ['CRIU dump', formatMs(m.timings.dumpMs)],
      ['workload', result.workloadEnd],
      ['ui', ui],
    ]),
  ];
}

function restoreLines(hash: string, result: RestoreResult, ui: string): string[] {
  return [
    `restored ${hash} as ${result.restoreId} on ${result.node}`,
    ...fields([
      ['pid', String(result.pid)],
      ['CRIU restore', formatMs(result.criuRestoreMs)],
      ['log', result.logFile],
      ['ui', ui],
    ]),
  ];
}

async function checkpointAction(ctx: CliContext, command: string[], o: CheckpointOptions): Promise<void> {
  if (o.request !== undefined) {
    if (command.length > 0) throw new UsageError('give either --request or a workload command, not both');
    return requestCheckpointAction(ctx, o.request);
  }
  if (command.length === 0) throw new UsageError('checkpoint needs a workload command (after --) or --request <file>');
  const torpor = await ctx.torpor();
  const { hashEnv, ...request } = { node: ctx.node, runtime: 'local' as const, ...workloadRequest(command, o) };
  let hash = o.hash;
  if (hash === undefined) {
    if (o.name === undefined) throw new UsageError('checkpoint needs --name (to derive the hash) or --hash');
    hash = (await torpor.deriveSpecHash({ ...request, name: o.name, ...(hashEnv ? { hashEnv } : {}) })).hash;
  }
  const handle = await torpor.startCheckpoint({ ...request, hash });
  const ref = ctx.workflowRef(handle);
  ctx.note(`checkpoint ${hash} on ${ctx.node}: ${ref.ui}`);
  const result = await withProgress(torpor, handle, { quiet: ctx.json });
  ctx.print({ ...ref, result }, () => checkpointLines(result, ref.ui));
}

/** `checkpoint --request`: a whole CheckpointRequest (any runtime), validated by the client before it starts. */
async function requestCheckpointAction(ctx: CliContext, source: string): Promise<void> {
  const request = withNode(await readRequest(source), ctx.options.node) as unknown as CheckpointRequest;
  const torpor = await ctx.torpor();
  const handle = await torpor.startCheckpoint(request);
  const ref = ctx.workflowRef(handle);
  ctx.note(`checkpoint ${request.hash} (${request.runtime} runtime) on ${request.node ?? 'the node the scheduler picks'}: ${ref.ui}`);
  const result = await withProgress(torpor, handle, { quiet: ctx.json });
  ctx.print({ ...ref, result }, () => checkpointLines(result, ref.ui));
}

/** `restore --request`: a whole RestoreRequest (restoreId optional), validated by the client before it starts. */
async function requestRestoreAction(ctx: CliContext, source: string): Promise<void> {
  const request = withNode(await readRequest(source), ctx.options.node) as unknown as RestoreStart;
  const torpor = await ctx.torpor();
  const handle = await torpor.startRestore(request);
  const ref = ctx.workflowRef(handle);
  ctx.note(`restore of ${request.hash} (${request.runtime} runtime) on ${request.node ?? 'the node the scheduler picks'}: ${ref.ui}`);
  const result: RestoreResult = await withProgress(torpor, handle, { quiet: ctx.json });
  ctx.print({ ...ref, result }, () => restoreLines(request.hash, result, ref.ui));
}

/** The readiness part of a restore request: a probe command or `--ready-http`, never both. */
function readinessOf(probe: string[], readyHttp: ReadinessProbe | undefined): { readiness?: ReadinessProbe } {
  if (readyHttp && probe.length > 0) throw new UsageError('give either --ready-http or a probe command, not both');
  return {
    ...(probe.length > 0 ? { readiness: { kind: 'exec' as const, command: probe } } : {}),
    ...(readyHttp ? { readiness: readyHttp } : {}),
  };
}

async function restoreAction(ctx: CliContext, hash: string, readiness: { readiness?: ReadinessProbe }, o: RestoreOptions): Promise<void> {
  const torpor = await ctx.torpor();
  const handle = await torpor.startRestore({
    hash,
    node: ctx.node,
    runtime: 'local',
    ...(o.restoreId === undefined ? {} : { restoreId: o.restoreId }),
    ...(o.readyTimeout === undefined ? {} : { readyTimeoutMs: o.readyTimeout }),
    ...readiness,
  });
  const ref = ctx.workflowRef(handle);
  ctx.note(`restore of ${hash} on ${ctx.node}: ${ref.ui}`);
  const result: RestoreResult = await withProgress(torpor, handle, { quiet: ctx.json });
  ctx.print({ ...ref, result }, () => restoreLines(hash, result, ref.ui));
}

function registerCheckpoint(program: Command, contextOf: ContextOf): void {
  program
    .command('checkpoint')
    .description('checkpoint a workload: start it, wait for its ready file, CRIU dump, commit')
    .argument('[command...]', 'the workload command (after --)')
    .option('--name <name>', 'workload name: the hash is derived from the content (spec hash)')
    .option('--hash <hash>', 'use this hash instead of deriving one')
    .option('--cwd <dir>', 'working directory (default: the current one)')
    .option('-e, --env <NAME=VALUE>', 'environment variable for the workload (repeatable)', collectEnv)
    .option('--hash-env <names>', 'comma-separated variables that count toward the spec hash (default: all)', commaList)
    .option('--ready-timeout <duration>', 'how long to wait for the ready file (default 10m)', durationMs)
    .option('--exit-timeout <duration>', 'how long to wait for the app to exit after the signal (default 1m)', durationMs)
    .addOption(establishedOption())
    .addOption(
      requestOption('CheckpointRequest (hash, runtime, workload, kubernetes, ...)', [
        'name',
        'hash',
        'cwd',
        'env',
        'hashEnv',
        'readyTimeout',
        'exitTimeout',
        'established',
      ]),
    )
    .action((command: string[], o: CheckpointOptions, cmd: Command) => checkpointAction(contextOf(cmd), command, o));
}

function registerRestore(program: Command, contextOf: ContextOf): void {
  program
    .command('restore')
    .description('restore a checkpoint on this node and wait until it is ready')
    .argument('[hash]', 'the checkpoint (unless --request)')
    .argument('[probe...]', 'readiness probe command (after --); default: the process is alive')
    .option('--restore-id <id>', 'name of this restored copy (default: random)')
    .option('--ready-timeout <duration>', 'how long to wait for readiness (default 5m)', durationMs)
    .option(
      '--ready-http <port[/path]>',
      'ready once GET http://127.0.0.1:<port><path> answers 2xx (instead of a probe command)',
      httpProbe,
    )
    .addOption(requestOption('RestoreRequest (hash, runtime, readiness, kubernetes, ...)', ['restoreId', 'readyTimeout', 'readyHttp']))
    // The usage check runs before the context exists, so report() reads --json from argv, as for the parser's own errors.
    .action(async (hash: string | undefined, probe: string[], o: RestoreOptions, cmd: Command) => {
      if (o.request !== undefined) {
        if (hash !== undefined || probe.length > 0) throw new UsageError('give either --request or a hash and probe command, not both');
        return requestRestoreAction(contextOf(cmd), o.request);
      }
      if (hash === undefined) throw new UsageError('restore needs a checkpoint hash or --request <file>');
      const readiness = readinessOf(probe, o.readyHttp);
      await restoreAction(contextOf(cmd), hash, readiness, o);
    });
}

/** checkpoint, restore, list, inspect, delete, gc. */
export function registerCheckpointCommands(program: Command, contextOf: ContextOf): void {
  registerCheckpoint(program, contextOf);
  registerRestore(program, contextOf);
  registerCatalogCommands(program, contextOf);
}

/** A usage mistake the parser cannot see (exit code 2). */
export class UsageError extends Error {}
