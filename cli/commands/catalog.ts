import type { Command } from 'commander';
import type { CheckpointInfo, CheckpointSummary, GcResult } from '../../client/index.js';
import type { CliContext, ContextOf } from '../context.js';
import { fields, formatBytes, formatMs, table } from '../format.js';
import { durationMs, positiveInt } from '../options.js';

type GcOptions = { tmpMaxAge?: number; runMaxAge?: number; keep?: number };

type Use = CheckpointSummary['usedBy'][number];

/** A restore on this node, or another node's lease in the shared store. */
const useText = (u: Use) =>
  u.state === 'leased'
    ? `node ${u.node}: ${u.restoreId} (lease until ${u.expiresAt})`
    : `restore ${u.restoreId} (pid ${u.pid}, ${u.state})`;

/** `shared, caches: a, b`; `-` without a shared store. */
const whereText = (c: CheckpointSummary) =>
  c.location ? [c.location.shared ? 'shared' : 'not shared', ...c.location.nodeCaches.map((n) => `cache ${n}`)].join(', ') : 'this node';

function summaryRows(list: CheckpointSummary[]): string[][] {
  return list.map((c) => [
    c.hash,
    c.name ?? '-',
    c.createdAt,
    formatBytes(c.totalBytes),
    whereText(c),
    c.usedBy.length === 0 ? '-' : c.usedBy.map(useText).join(', '),
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
      ['where', whereText(s)],
      ['used by', s.usedBy.length === 0 ? 'no running restore' : s.usedBy.map(useText).join(', ')],
      ['ui', ui],
    ]),
  ];
}

function gcLines(result: GcResult, ui: string): string[] {
  return [
    `gc on ${result.node}: removed ${result.removed.length} (${formatBytes(result.freedBytes)}), stopped ${result.stoppedWorkloads.length}, busy ${result.busy.length}`,
    ...result.removed.map((p) => `  removed  ${p}`),
    ...result.stoppedWorkloads.map((h) => `  stopped  ${h}`),
    ...result.busy.map((p) => `  busy     ${p}`),
    ...result.retention.flatMap((r) => r.deleted.map((h) => `  deleted  ${h} (${r.name}: keep ${r.keep})`)),
    ...(result.sharedOrphans
      ? [
          `  shared store: swept ${result.sharedOrphans.removed} orphan chunk objects (${formatBytes(result.sharedOrphans.freedBytes)})`,
          ...(result.sharedOrphans.leftovers?.removed
            ? [
                `  shared store: removed ${result.sharedOrphans.leftovers.removed} partial writes (${formatBytes(result.sharedOrphans.leftovers.freedBytes)})`,
              ]
            : []),
          ...result.sharedOrphans.busy.map((h) => `  busy     ${h} (an upload runs: its orphans wait)`),
        ]
      : []),
    `ui: ${ui}`,
  ];
}

async function listAction(ctx: CliContext, o: { name?: string }): Promise<void> {
  const torpor = await ctx.torpor();
  const handle = await torpor.startList(ctx.node);
  const all = await torpor.result(handle);
  const checkpoints = o.name === undefined ? all : all.filter((c) => c.name === o.name);
  const ref = ctx.workflowRef(handle);
  ctx.print({ ...ref, node: ctx.node, checkpoints }, () => [
    ...(checkpoints.length === 0
      ? [`no checkpoints on ${ctx.node}`]
      : table(['HASH', 'NAME', 'CREATED', 'SIZE', 'WHERE', 'USED BY'], summaryRows(checkpoints))),
    `ui: ${ref.ui}`,
  ]);
}

async function inspectAction(ctx: CliContext, hash: string): Promise<void> {
  const torpor = await ctx.torpor();
  const handle = await torpor.startInspect(hash, ctx.node);
  const ref = ctx.workflowRef(handle);
  const info = await torpor.result(handle);
  ctx.print({ ...ref, ...info }, () => inspectLines(info, ref.ui));
}

async function deleteAction(ctx: CliContext, hash: string): Promise<void> {
  const torpor = await ctx.torpor();
  const handle = await torpor.startDelete(hash, ctx.node);
  const ref = ctx.workflowRef(handle);
  const result = await torpor.result(handle);
  ctx.print({ ...ref, result }, () => [
    `deleted ${hash} on ${result.node} (${formatBytes(result.freedBytes)} freed${result.shared ? `; ${result.shared.objectsRemoved} objects from the shared store` : ''})`,
    `ui: ${ref.ui}`,
  ]);
}

async function gcAction(ctx: CliContext, o: GcOptions): Promise<void> {
  const torpor = await ctx.torpor();
  const handle = await torpor.startGc({
    node: ctx.node,
    ...(o.tmpMaxAge === undefined ? {} : { tmpMaxAgeMs: o.tmpMaxAge }),
    ...(o.runMaxAge === undefined ? {} : { runMaxAgeMs: o.runMaxAge }),
    ...(o.keep === undefined ? {} : { keepPerName: o.keep }),
  });
  const ref = ctx.workflowRef(handle);
  const result = await torpor.result(handle);
  ctx.print({ ...ref, result }, () => gcLines(result, ref.ui));
}

/** list, inspect, delete, gc: the node's committed checkpoints and its garbage. */
export function registerCatalogCommands(program: Command, contextOf: ContextOf): void {
  program
    .command('list')
    .description("list this node's committed checkpoints, newest first")
    .option('--name <name>', 'only the spec hashes of this workload name')
    .action((o: { name?: string }, cmd: Command) => listAction(contextOf(cmd), o));

  program
    .command('inspect')
    .description('show a checkpoint: manifest, tools, timings, the restores using it')
    .argument('<hash>', 'the checkpoint')
    .action((hash: string, _: object, cmd: Command) => inspectAction(contextOf(cmd), hash));

  program
    .command('delete')
    .description('delete a checkpoint (refused while a restore of it runs)')
    .argument('<hash>', 'the checkpoint')
    .action((hash: string, _: object, cmd: Command) => deleteAction(contextOf(cmd), hash));

  program
    .command('gc')
    .description('remove stale temporary dumps, run and restore files, trash; optionally apply retention')
    .option('--tmp-max-age <duration>', 'temporary dumps untouched this long are removed (default 1h)', durationMs)
    .option('--run-max-age <duration>', 'run files of processes gone this long are removed (default 25h)', durationMs)
    .option('--keep <n>', 'also keep only the newest n checkpoints of every workload name', positiveInt)
    .action((o: GcOptions, cmd: Command) => gcAction(contextOf(cmd), o));
}
