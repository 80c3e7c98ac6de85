import type { CycleOutcome } from '../load-cycles.js';
import { HISTORY_LIMITS, type HistoryFigures, percentile } from './histories.js';
import type { ProcUsage } from './processes.js';

interface CycleFigures {
  name: string;
  node: string;
  cycleWallMs: number;
  checkpoint: HistoryFigures;
  restore: HistoryFigures;
}

export interface LoadReport {
  settings: {
    cycles: number;
    inFlight: number;
    agents: number;
    baselineCycles: number;
    tableMb: number;
    initSeconds: number;
    agentNice: number;
    controlNodeOptions: string;
  };
  machine: { cores: number; memoryBytes: number; node: string };
  heavyStepLimit: string;
  loadElapsedMs: number;
  machineBusy: number;
  baseline: CycleFigures[];
  load: CycleFigures[];
  failures: CycleOutcome[];
  control: { before: ProcUsage; after: ProcUsage };
  devServer: { before: ProcUsage; after: ProcUsage } | null;
  agents: { node: string; usage: ProcUsage; queueWaits: { step: string; workflowId: string; waitedMs: number }[] }[];
}

const MIB = 2 ** 20;
const s = (ms: number) => `${(ms / 1000).toFixed(3)} s`;

function row(label: string, xs: number[]): string {
  const cells = [50, 95, 99].map((p) => s(percentile(xs, p)).padStart(10));
  return `  ${label.padEnd(40)}${cells.join('')}${s(Math.max(0, ...xs)).padStart(10)}   n=${xs.length}`;
}

function overheadTable(r: LoadReport): { loadP95: number; baseP95: number } {
  const pick = (rows: CycleFigures[], f: (c: CycleFigures) => number[]) => rows.flatMap(f);
  console.log(`  ${''.padEnd(40)}${['p50', 'p95', 'p99', 'max'].map((h) => h.padStart(10)).join('')}`);
  console.log(
    row(
      'baseline: checkpoint overhead',
      pick(r.baseline, (c) => [c.checkpoint.overheadMs]),
    ),
  );
  console.log(
    row(
      'baseline: restore overhead',
      pick(r.baseline, (c) => [c.restore.overheadMs]),
    ),
  );
  console.log(
    row(
      'baseline: workflow overhead (both)',
      pick(r.baseline, (c) => [c.checkpoint.overheadMs, c.restore.overheadMs]),
    ),
  );
  console.log(
    row(
      'load: checkpoint overhead',
      pick(r.load, (c) => [c.checkpoint.overheadMs]),
    ),
  );
  console.log(
    row(
      'load: restore overhead',
      pick(r.load, (c) => [c.restore.overheadMs]),
    ),
  );
  console.log(
    row(
      'load: workflow overhead (both)',
      pick(r.load, (c) => [c.checkpoint.overheadMs, c.restore.overheadMs]),
    ),
  );
  console.log(
    row(
      'baseline: activity schedule-to-start',
      pick(r.baseline, (c) => [...c.checkpoint.scheduleToStartMs, ...c.restore.scheduleToStartMs]),
    ),
  );
  console.log(
    row(
      'load: activity schedule-to-start',
      pick(r.load, (c) => [...c.checkpoint.scheduleToStartMs, ...c.restore.scheduleToStartMs]),
    ),
  );
  console.log(
    row(
      'baseline: workflow task queued',
      pick(r.baseline, (c) => [...c.checkpoint.workflowTaskQueueMs, ...c.restore.workflowTaskQueueMs]),
    ),
  );
  console.log(
    row(
      'load: workflow task queued',
      pick(r.load, (c) => [...c.checkpoint.workflowTaskQueueMs, ...c.restore.workflowTaskQueueMs]),
    ),
  );
  console.log(
    row(
      'baseline: workflow task run',
      pick(r.baseline, (c) => [...c.checkpoint.workflowTaskRunMs, ...c.restore.workflowTaskRunMs]),
    ),
  );
  console.log(
    row(
      'load: workflow task run',
      pick(r.load, (c) => [...c.checkpoint.workflowTaskRunMs, ...c.restore.workflowTaskRunMs]),
    ),
  );
  console.log(
    row(
      'baseline: steps (activities) per cycle',
      pick(r.baseline, (c) => [c.checkpoint.activityMs + c.restore.activityMs]),
    ),
  );
  console.log(
    row(
      'load: steps (activities) per cycle',
      pick(r.load, (c) => [c.checkpoint.activityMs + c.restore.activityMs]),
    ),
  );
  const waits = r.agents.flatMap((a) => a.queueWaits.filter((w) => w.workflowId.includes('/load-')).map((w) => w.waitedMs));
  console.log(row('load: heavy-step queue wait (in steps)', waits));
  console.log(
    row(
      'baseline: cycle wall (client)',
      r.baseline.map((c) => c.cycleWallMs),
    ),
  );
  console.log(
    row(
      'load: cycle wall (client)',
      r.load.map((c) => c.cycleWallMs),
    ),
  );
  return {
    loadP95: percentile(
      pick(r.load, (c) => [c.checkpoint.overheadMs, c.restore.overheadMs]),
      95,
    ),
    baseP95: percentile(
      pick(r.baseline, (c) => [c.checkpoint.overheadMs, c.restore.overheadMs]),
      95,
    ),
  };
}

function processes(r: LoadReport): void {
  const cpu = (u: { before: ProcUsage; after: ProcUsage }) => (u.after.cpuSeconds - u.before.cpuSeconds).toFixed(1);
  const mib = (b: number) => `${(b / MIB).toFixed(0)} MiB`;
  console.log(
    `control worker: ${cpu(r.control)} CPU s during the load (${((Number(cpu(r.control)) / (r.loadElapsedMs / 1000)) * 100).toFixed(0)}% of one core), ` +
      `peak RSS ${mib(r.control.after.peakRssBytes)}, RSS ${mib(r.control.before.rssBytes)} before → ${mib(r.control.after.rssBytes)} after`,
  );
  if (r.devServer) console.log(`dev server: ${cpu(r.devServer)} CPU s during the load, peak RSS ${mib(r.devServer.after.peakRssBytes)}`);
  for (const a of r.agents) {
    console.log(
      `agent ${a.node}: peak RSS ${mib(a.usage.peakRssBytes)}, ${a.usage.cpuSeconds.toFixed(1)} CPU s in all, ${a.queueWaits.length} heavy steps`,
    );
  }
}

export function printReport(r: LoadReport): void {
  const { cycles, inFlight, agents, tableMb, initSeconds, baselineCycles } = r.settings;
  console.log(
    `\nTorpor load: ${cycles} checkpoint + restore cycles of the sample app (${tableMb} MiB table, ${initSeconds} s init), ` +
      `${inFlight} in flight, ${agents} node agents (heavy steps: ${r.heavyStepLimit}; nice ${r.settings.agentNice}, their workloads and CRIU too), one control worker (NODE_OPTIONS "${r.settings.controlNodeOptions}"), one Temporal dev server; ` +
      `${r.machine.cores} cores, ${(r.machine.memoryBytes / 2 ** 30).toFixed(0)} GiB, Node ${r.machine.node}. Baseline: ${baselineCycles} cycles one at a time first.`,
  );
  console.log(
    `throughput: ${(r.load.length / (r.loadElapsedMs / 60_000)).toFixed(1)} cycles/min (${r.load.length} cycles done in ${s(r.loadElapsedMs)})`,
  );
  console.log(`machine CPU busy during the load: ${(r.machineBusy * 100).toFixed(0)}% of ${r.machine.cores} cores`);
  console.log(`failures: ${r.failures.length}`);
  for (const f of r.failures) console.log(`  ${f.name} on ${f.node}: ${f.failure?.type}: ${f.failure?.message}`);
  console.log(
    '\norchestration overhead of a workflow = its wall time (history: WorkflowExecutionStarted → WorkflowExecutionCompleted event)\n' +
      '  − Σ over its activities of (ActivityTaskStarted → ActivityTaskCompleted event): the time no agent was running one of its steps\n' +
      '  (workflow tasks queued and run on the control worker, activities queued until an agent polls, results carried back).',
  );
  const { loadP95, baseP95 } = overheadTable(r);
  console.log(
    `goal: p95 overhead under load ≤ 2 × baseline p95: ${s(loadP95)} vs ${s(2 * baseP95)}: ${loadP95 <= 2 * baseP95 ? 'within' : 'OVER'}`,
  );
  const all = [...r.baseline, ...r.load].flatMap((c) => [c.checkpoint, c.restore]);
  const events = Math.max(0, ...all.map((h) => h.events));
  const bytes = Math.max(0, ...all.map((h) => h.bytes));
  console.log(
    `largest history: ${events} events (limit ${HISTORY_LIMITS.events}), ${(bytes / 1024).toFixed(1)} KiB (limit ${HISTORY_LIMITS.bytes / MIB} MiB)`,
  );
  processes(r);
}
