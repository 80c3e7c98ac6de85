import type { Command } from 'commander';
import type { CheckpointInfo, CheckpointResult, CheckpointSummary, RestoreResult } from '../../client/index.js';
import type { ReadinessProbe } from '../../contract/spec.js';
import type { CliContext } from '../context.js';
import { fields, formatBytes, formatMs, table } from '../format.js';
import {
  collectEnv,
  commaList,
  durationMs,
  establishedOption,
  httpProbe,
  positiveInt,
  type WorkloadOptions,
  workloadRequest,
} from '../options.js';
import { withProgress } from '../progress.js';

type ContextOf = (cmd: Command) => CliContext;

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

function summaryRows(list: CheckpointSummary[]): string[][] {
  return list.map((c) => [
    c.hash,
    c.name ?? '-',
    c.createdAt,
    formatBytes(c.totalBytes),
    c.usedBy.length === 0 ? '-' : c.usedBy.map((u) => `${u.restoreId} (pid ${u.pid})`).join(', '),
  ]);
}

function inspectLines(info: CheckpointInfo, ui: string): string[] {
  const { manifest: m, summary: s } = info;
  return [
    `checkpoint ${m.hash} on ${m.node}`,
    ...fields([
      ['workload name', s.name ?? '(hash chosen by hand)'],
      ['created', m.createdAt],
      ['command', m.workload.command.join(' ')],
      ['cwd', m.workload.cwd ?? '-'],
      ['image', `${formatBytes(m.totalBytes)} in ${m.files.length} files`],
      ['tools', `CRIU ${m.tools.criu}, kernel ${m.tools.kernel}, torpor ${m.tools.torpor}`],
      [
        'timings',
        `start → ready ${formatMs(m.timings.startToReadyMs)}, dump ${formatMs(m.timings.dumpMs)}, commit ${formatMs(m.timings.commitMs)}`,
      ],
      ['gpu', s.gpu ?? 'none'],
      [
        'used by',
        s.usedBy.length === 0 ? 'no running restore' : s.usedBy.map((u) => `restore ${u.restoreId} (pid ${u.pid}, ${u.state})`).join(', '),
      ],
      ['ui', ui],
    ]),
  ];
}

/** checkpoint, restore, list, inspect, delete, gc. */
export function registerCheckpointCommands(program: Command, contextOf: ContextOf): void {
  program
    .command('checkpoint')
    .description('checkpoint a workload: start it, wait for its ready file, CRIU dump, commit')
    .argument('<command...>', 'the workload command (after --)')
    .option('--name <name>', 'workload name: the hash is derived from the content (spec hash)')
    .option('--hash <hash>', 'use this hash instead of deriving one')
    .option('--cwd <dir>', 'working directory (default: the current one)')
    .option('-e, --env <NAME=VALUE>', 'environment variable for the workload (repeatable)', collectEnv)
    .option('--hash-env <names>', 'comma-separated variables that count toward the spec hash (default: all)', commaList)
    .option('--ready-timeout <duration>', 'how long to wait for the ready file (default 10m)', durationMs)
    .option('--exit-timeout <duration>', 'how long to wait for the app to exit after the signal (default 1m)', durationMs)
    .addOption(establishedOption())
    .action(async (command: string[], o: WorkloadOptions & { name?: string; hash?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
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
    });

  program
    .command('restore')
    .description('restore a checkpoint on this node and wait until it is ready')
    .argument('<hash>', 'the checkpoint')
    .argument('[probe...]', 'readiness probe command (after --); default: the process is alive')
    .option('--restore-id <id>', 'name of this restored copy (default: random)')
    .option('--ready-timeout <duration>', 'how long to wait for readiness (default 5m)', durationMs)
    .option(
      '--ready-http <port[/path]>',
      'ready once GET http://127.0.0.1:<port><path> answers 2xx (instead of a probe command)',
      httpProbe,
    )
    .action(
      async (hash: string, probe: string[], o: { restoreId?: string; readyTimeout?: number; readyHttp?: ReadinessProbe }, cmd: Command) => {
        if (o.readyHttp && probe.length > 0) throw new UsageError('give either --ready-http or a probe command, not both');
        const ctx = contextOf(cmd);
        const torpor = await ctx.torpor();
        const handle = await torpor.startRestore({
          hash,
          node: ctx.node,
          runtime: 'local',
          ...(o.restoreId === undefined ? {} : { restoreId: o.restoreId }),
          ...(o.readyTimeout === undefined ? {} : { readyTimeoutMs: o.readyTimeout }),
          ...(probe.length > 0 ? { readiness: { kind: 'exec' as const, command: probe } } : {}),
          ...(o.readyHttp ? { readiness: o.readyHttp } : {}),
        });
        const ref = ctx.workflowRef(handle);
        ctx.note(`restore of ${hash} on ${ctx.node}: ${ref.ui}`);
        const result: RestoreResult = await withProgress(torpor, handle, { quiet: ctx.json });
        ctx.print({ ...ref, result }, () => [
          `restored ${hash} as ${result.restoreId} on ${result.node}`,
          ...fields([
            ['pid', String(result.pid)],
            ['CRIU restore', formatMs(result.criuRestoreMs)],
            ['log', result.logFile],
            ['ui', ref.ui],
          ]),
        ]);
      },
    );

  program
    .command('list')
    .description("list this node's committed checkpoints, newest first")
    .option('--name <name>', 'only the spec hashes of this workload name')
    .action(async (o: { name?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const torpor = await ctx.torpor();
      const handle = await torpor.startList(ctx.node);
      const all = await torpor.result(handle);
      const checkpoints = o.name === undefined ? all : all.filter((c) => c.name === o.name);
      const ref = ctx.workflowRef(handle);
      ctx.print({ ...ref, node: ctx.node, checkpoints }, () => [
        ...(checkpoints.length === 0
          ? [`no checkpoints on ${ctx.node}`]
          : table(['HASH', 'NAME', 'CREATED', 'SIZE', 'USED BY'], summaryRows(checkpoints))),
        `ui: ${ref.ui}`,
      ]);
    });

  program
    .command('inspect')
    .description('show a checkpoint: manifest, tools, timings, the restores using it')
    .argument('<hash>', 'the checkpoint')
    .action(async (hash: string, _: object, cmd: Command) => {
      const ctx = contextOf(cmd);
      const torpor = await ctx.torpor();
      const handle = await torpor.startInspect(hash, ctx.node);
      const ref = ctx.workflowRef(handle);
      const info = await torpor.result(handle);
      ctx.print({ ...ref, ...info }, () => inspectLines(info, ref.ui));
    });

  program
    .command('delete')
    .description('delete a checkpoint (refused while a restore of it runs)')
    .argument('<hash>', 'the checkpoint')
    .action(async (hash: string, _: object, cmd: Command) => {
      const ctx = contextOf(cmd);
      const torpor = await ctx.torpor();
      const handle = await torpor.startDelete(hash, ctx.node);
      const ref = ctx.workflowRef(handle);
      const result = await torpor.result(handle);
      ctx.print({ ...ref, result }, () => [`deleted ${hash} on ${result.node} (${formatBytes(result.freedBytes)} freed)`, `ui: ${ref.ui}`]);
    });

  program
    .command('gc')
    .description('remove stale temporary dumps, run and restore files, trash; optionally apply retention')
    .option('--tmp-max-age <duration>', 'temporary dumps untouched this long are removed (default 1h)', durationMs)
    .option('--run-max-age <duration>', 'run files of processes gone this long are removed (default 25h)', durationMs)
    .option('--keep <n>', 'also keep only the newest n checkpoints of every workload name', positiveInt)
    .action(async (o: { tmpMaxAge?: number; runMaxAge?: number; keep?: number }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const torpor = await ctx.torpor();
      const handle = await torpor.startGc({
        node: ctx.node,
        ...(o.tmpMaxAge === undefined ? {} : { tmpMaxAgeMs: o.tmpMaxAge }),
        ...(o.runMaxAge === undefined ? {} : { runMaxAgeMs: o.runMaxAge }),
        ...(o.keep === undefined ? {} : { keepPerName: o.keep }),
      });
      const ref = ctx.workflowRef(handle);
      const result = await torpor.result(handle);
      ctx.print({ ...ref, result }, () => [
        `gc on ${result.node}: removed ${result.removed.length} (${formatBytes(result.freedBytes)}), stopped ${result.stoppedWorkloads.length}, busy ${result.busy.length}`,
        ...result.removed.map((p) => `  removed  ${p}`),
        ...result.stoppedWorkloads.map((h) => `  stopped  ${h}`),
        ...result.busy.map((p) => `  busy     ${p}`),
        ...result.retention.flatMap((r) => r.deleted.map((h) => `  deleted  ${h} (${r.name}: keep ${r.keep})`)),
        `ui: ${ref.ui}`,
      ]);
    });
}

/** A usage mistake the parser cannot see (exit code 2). */
export class UsageError extends Error {}
