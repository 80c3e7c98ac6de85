import type { Command } from 'commander';
import type { RefreshResult, RefreshSchedule } from '../../client/index.js';
import type { CliContext, ContextOf } from '../context.js';
import { fields, formatMs, table } from '../format.js';
import {
  collectEnv,
  commaList,
  durationMs,
  establishedOption,
  isoDate,
  positiveInt,
  type WorkloadOptions,
  workloadRequest,
} from '../options.js';

type CreateOptions = WorkloadOptions & { every: string; keep?: number; paused?: boolean };

function refreshLines(r: RefreshResult, ui: string): string[] {
  return [
    `refresh of ${r.name} on ${r.node}: ${r.outcome} ${r.hash}`,
    ...fields([
      ['checkpoint', r.checkpointWorkflowId ?? '(already committed)'],
      ['kept', r.retention.kept.join(', ') || '-'],
      ['deleted', r.retention.deleted.join(', ') || '-'],
      ['in use', r.retention.inUse.join(', ') || '-'],
      ['ui', ui],
    ]),
  ];
}

function scheduleRows(schedules: Array<RefreshSchedule & { ui: string }>): string[][] {
  return schedules.map((s) => [
    s.scheduleId,
    formatMs(s.everyMs),
    String(s.keep),
    String(s.numRuns),
    s.paused ? 'paused' : (s.nextRunsAt[0] ?? '-'),
    s.ui,
  ]);
}

async function createAction(ctx: CliContext, name: string, command: string[], o: CreateOptions): Promise<void> {
  const torpor = await ctx.torpor();
  const created = await torpor.ensureRefreshSchedule({
    name,
    node: ctx.node,
    runtime: 'local',
    ...workloadRequest(command, o),
    every: o.every,
    paused: o.paused === true,
    ...(o.keep === undefined ? {} : { keep: o.keep }),
  });
  const ui = ctx.scheduleUi(created.scheduleId);
  ctx.print({ ...created, ui }, () => [
    `schedule ${created.scheduleId}: refresh every ${formatMs(created.everyMs)}, keep ${created.keep}, overlap ${created.overlap}${created.paused ? ', paused' : ''}`,
    ...fields([
      ['next run', created.nextRunsAt[0] ?? '-'],
      ['ui', ui],
    ]),
  ]);
}

async function listAction(ctx: CliContext, o: { all?: boolean }): Promise<void> {
  const list: RefreshSchedule[] = await (await ctx.torpor()).listRefreshSchedules(o.all ? {} : { node: ctx.node });
  const schedules = list.map((s) => ({ ...s, ui: ctx.scheduleUi(s.scheduleId) }));
  ctx.print({ schedules }, () =>
    schedules.length === 0
      ? ['no refresh schedules']
      : table(['SCHEDULE', 'EVERY', 'KEEP', 'RUNS', 'NEXT RUN', 'UI'], scheduleRows(schedules)),
  );
}

async function deleteAction(ctx: CliContext, name: string): Promise<void> {
  await (await ctx.torpor()).deleteRefreshSchedule(name, ctx.node);
  ctx.print({ deleted: true, name, node: ctx.node }, () => [`deleted the refresh schedule of ${name} on ${ctx.node}`]);
}

async function triggerAction(ctx: CliContext, name: string, o: { wait: boolean }): Promise<void> {
  const torpor = await ctx.torpor();
  const triggered = await torpor.triggerRefreshSchedule(name, ctx.node);
  if (triggered.skipped) {
    ctx.print(triggered, () => [`skipped: a refresh of ${name} still runs (${triggered.runningWorkflowId ?? '?'})`]);
    return;
  }
  const ref = ctx.workflowRef({ workflowId: triggered.workflowId, runId: triggered.runId });
  ctx.note(`refresh of ${name} on ${ctx.node} started: ${ref.workflowId}`);
  const result = o.wait ? await torpor.refreshResult(triggered.workflowId, triggered.runId) : null;
  ctx.print({ ...triggered, ui: ref.ui, result }, () => (result ? refreshLines(result, ref.ui) : [`started ${ref.ui}`]));
}

async function backfillAction(ctx: CliContext, name: string, o: { start: Date; end: Date }): Promise<void> {
  await (await ctx.torpor()).backfillRefreshSchedule(name, ctx.node, o);
  ctx.print({ backfilled: true, name, node: ctx.node, start: o.start, end: o.end }, () => [
    `backfill of ${name} requested for ${o.start.toISOString()} … ${o.end.toISOString()}`,
  ]);
}

function registerCreate(schedule: Command, contextOf: ContextOf): void {
  schedule
    .command('create')
    .description('create (or update) the refresh schedule of a workload on this node')
    .argument('<name>', 'workload name (prefix of its spec hashes)')
    .argument('<command...>', 'the workload command (after --)')
    .requiredOption('--every <duration>', 'how often to refresh, at least 1m (e.g. 30m, 6h, 1d)')
    .option('--keep <n>', 'checkpoints of this workload to keep (default 3)', positiveInt)
    .option('--cwd <dir>', 'working directory (default: the current one)')
    .option('-e, --env <NAME=VALUE>', 'environment variable for the workload (repeatable)', collectEnv)
    .option('--hash-env <names>', 'comma-separated variables that count toward the spec hash (default: all)', commaList)
    .option('--ready-timeout <duration>', 'how long a checkpoint waits for the ready file (default 10m)', durationMs)
    .addOption(establishedOption())
    .option('--paused', 'create it paused (trigger and backfill still work)')
    .action((name: string, command: string[], o: CreateOptions, cmd: Command) => createAction(contextOf(cmd), name, command, o));
}

/** schedule create | list | delete | trigger | backfill: Temporal Schedules that run `refresh`. */
export function registerScheduleCommands(program: Command, contextOf: ContextOf): void {
  const schedule = program.command('schedule').description('Temporal Schedules that keep a checkpoint fresh and apply retention');
  registerCreate(schedule, contextOf);

  schedule
    .command('list')
    .description('list the refresh schedules of this node (--all: of every node)')
    .option('--all', 'every node')
    .action((o: { all?: boolean }, cmd: Command) => listAction(contextOf(cmd), o));

  schedule
    .command('delete')
    .description('delete the refresh schedule of a workload (its checkpoints stay)')
    .argument('<name>', 'workload name')
    .action((name: string, _: object, cmd: Command) => deleteAction(contextOf(cmd), name));

  schedule
    .command('trigger')
    .description('run the refresh now (skipped while one still runs) and wait for its result')
    .argument('<name>', 'workload name')
    .option('--no-wait', 'return once the refresh has started')
    .action((name: string, o: { wait: boolean }, cmd: Command) => triggerAction(contextOf(cmd), name, o));

  schedule
    .command('backfill')
    .description('run the refreshes the schedule would have run between two times (overlaps skipped)')
    .argument('<name>', 'workload name')
    .requiredOption('--start <time>', 'ISO 8601 start', isoDate)
    .requiredOption('--end <time>', 'ISO 8601 end', isoDate)
    .action((name: string, o: { start: Date; end: Date }, cmd: Command) => backfillAction(contextOf(cmd), name, o));
}
