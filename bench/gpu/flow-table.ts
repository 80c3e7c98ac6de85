import type { GpuNodeInfo } from '../../contract/gpu-types.js';
import type { DiskBandwidth } from './bench-host.js';
import type { ContainerPhaseResult } from './flow-container.js';
import type { ActivityRecord } from './flow-history.js';
import type { LocalPhaseResult } from './flow-local.js';
import type { Tp2PhaseResult } from './flow-tp2.js';

export interface FlowResults {
  machine: { gpus: GpuNodeInfo; cgroup: string; kernel: string; dryRun: boolean; disk?: DiskBandwidth };
  local?: LocalPhaseResult | { error: string };
  container?: ContainerPhaseResult | { error: string };
  tp2?: Tp2PhaseResult | { error: string };
}

type Row = [string, string];

const s = (ms: number | undefined) => (ms === undefined ? '–' : `${(ms / 1000).toFixed(2)} s`);
const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;

/** The figures an activity reports about itself: every number named …Ms or …Bytes, and a few counts. */
function ownFigures(result: unknown): string {
  if (typeof result !== 'object' || result === null) return '';
  return Object.entries(result)
    .filter(([k, v]) => typeof v === 'number' && /(Ms|Bytes|pid|Pid|Lanes|Warmed)$/.test(k))
    .map(([k, v]) => (k.endsWith('Ms') ? `${k} ${s(v as number)}` : k.endsWith('Bytes') ? `${k} ${gb(v as number)}` : `${k} ${v}`))
    .join(', ');
}

function stepRows(prefix: string, stepMs: Record<string, number>): Row[] {
  return Object.entries(stepMs).map(([step, ms]) => [`${prefix} step ${step}`, s(ms)]);
}

function activityRows(prefix: string, activities: ActivityRecord[]): Row[] {
  return activities.map((a) => [
    `${prefix} activity ${a.activity}`,
    `${s(a.wallMs)} (server: scheduled → completed)  ${ownFigures(a.result)}`,
  ]);
}

/** An activity's own figure from the history, in ms (0 when it did not report it). */
function figure(activities: ActivityRecord[], activity: string, key: string): number {
  const result = activities.find((a) => a.activity === activity)?.result as Record<string, unknown> | undefined;
  const value = result?.[key];
  return typeof value === 'number' ? value : 0;
}

/**
 * Issue 16's bounds, from the disk measured in the same run: checkpoint (GPU checkpoint through
 * commit) ≤ 1.1 × (GPU checkpoint + image / write) + 1 s; restore workflow ≤ 1.1 × image / read +
 * GPU restore + 1 s, once with dd's probe read and once with the image's own read back (when run).
 */
function boundRows(prefix: string, r: LocalPhaseResult | ContainerPhaseResult, disk: DiskBandwidth | undefined): Row[] {
  if (!disk) return [];
  const image = r.checkpoint.result.manifest.totalBytes;
  const step = r.checkpoint.result.stepMs;
  // The local one-step checkpoint (checkpointProcess) freezes inside its step: its freezing-gpu step is the GPU checkpoint.
  const gpuCheckpointMs = figure(r.checkpoint.activities, 'gpuFreeze', 'checkpointMs') || (r.checkpoint.result.stepMs['freezing-gpu'] ?? 0);
  const checkpointMs = (step['freezing-gpu'] ?? 0) + (step.dumping ?? 0) + (step.committing ?? 0);
  const checkpointBound = 1.1 * (gpuCheckpointMs + (image / disk.writeBytesPerS) * 1000) + 1000;
  const gpuRestoreMs = figure(r.restore.activities, 'gpuThaw', 'restoreMs');
  const restoreBound = (readBytesPerS: number) => 1.1 * (image / readBytesPerS) * 1000 + gpuRestoreMs + 1000;
  const verdict = (ms: number, bound: number) => `${s(ms)} vs bound ${s(bound)}: ${ms <= bound ? 'within' : `over by ${s(ms - bound)}`}`;
  const rows: Row[] = [
    [`${prefix} checkpoint (freeze + dump + commit)`, verdict(checkpointMs, checkpointBound)],
    [`${prefix} restore workflow (bound from dd's read)`, verdict(r.restore.wallMs, restoreBound(disk.readBytesPerS))],
  ];
  if (r.imageRead === null) rows.push([`${prefix} pages image read back`, 'could not run']);
  if (r.imageRead) {
    const { bytes, bytesPerS, files } = r.imageRead;
    rows.push(
      [
        `${prefix} pages image read back (cold, buffered, 64 MiB)`,
        `${gb(bytes)} in ${files} file(s) at ${(bytesPerS / 1e9).toFixed(2)} GB/s`,
      ],
      [`${prefix} restore workflow (bound from the image's read)`, verdict(r.restore.wallMs, restoreBound(bytesPerS))],
    );
  }
  return rows;
}

function localRows(r: LocalPhaseResult, disk?: DiskBandwidth): Row[] {
  const m = r.checkpoint.result.manifest;
  return [
    [
      'local: cold start (start → ready)',
      `${s(m.timings.startToReadyMs)}  (measured by the checkpoint workflow; page cache dropped before: ${r.coldStartPageCacheDropped})`,
    ],
    ['local: checkpoint workflow wall', s(r.checkpoint.wallMs)],
    ...stepRows('local: checkpoint', r.checkpoint.result.stepMs),
    ...activityRows('local: checkpoint', r.checkpoint.activities),
    [
      'local: image',
      `${gb(m.totalBytes)} in ${m.files.length} files; GPU ${m.gpu ? `${m.gpu.gpus.map((g) => g.uuid).join(' ')}, ${gb(m.gpu.processMemoryBytes)}` : 'none'}`,
    ],
    ['local: page cache dropped before restore', String(r.pageCacheDropped)],
    ['local: restore workflow wall (client)', s(r.restore.wallMs)],
    ...stepRows('local: restore', r.restore.result.stepMs),
    ...activityRows('local: restore', r.restore.activities),
    ['local: restore → generation done', s(r.restoreToGenerationMs)],
    [
      'local: generation after restore',
      `${r.identical ? 'IDENTICAL' : 'DIFFERENT'} (tokens ${r.after.tokens.slice(0, 6).join(' ')} …, logits ${r.after.logits_sha256.slice(0, 12)}…)`,
    ],
    [
      'local: restored process',
      `pid ${r.restore.result.pid} (checkpointed ${m.process.pid}); GET /generation answered "${r.answered.phase}"`,
    ],
    ...boundRows('local:', r, disk),
    [
      'local: restored onto',
      `${r.gpusAfter.join(' ') || 'no GPU memory seen by nvidia-smi'} (requested: ${r.requestedGpus?.join(',') ?? "the node's GPUs, in order"})`,
    ],
    ...warmRows(r.warm),
  ];
}

function warmRows(warm: LocalPhaseResult['warm']): Row[] {
  if (!warm) return [];
  if ('error' in warm) return [['local: warm restore (image cached)', `failed: ${warm.error}`]];
  return [
    ['local: warm restore workflow wall (image cached)', s(warm.wallMs)],
    ...stepRows('local: warm restore', warm.result.stepMs),
    ...activityRows('local: warm restore', warm.activities),
    ['local: warm CRIU restore, effective', `${s(warm.criuMs)}, ${warm.criuGBps.toFixed(2)} GB/s (image bytes / CRIU time)`],
  ];
}

function containerRows(r: ContainerPhaseResult, disk?: DiskBandwidth): Row[] {
  return [
    [
      'container: GPUs (source → placeholder)',
      `${r.sourceGpu} → ${r.placeholderGpu}; restored process seen on ${r.gpusAfter.join(' ') || 'none'}`,
    ],
    ['container: source ready (runc run → ready file)', s(r.sourceReadyMs)],
    ['container: checkpoint workflow wall', s(r.checkpoint.wallMs)],
    ...stepRows('container: checkpoint', r.checkpoint.result.stepMs),
    ...activityRows('container: checkpoint', r.checkpoint.activities),
    [
      'container: image',
      `${gb(r.checkpoint.result.manifest.totalBytes)}; GPU ${r.checkpoint.result.manifest.gpu ? 'recorded' : 'none recorded'}`,
    ],
    ['container: page cache dropped before restore', String(r.pageCacheDropped)],
    ['container: restore workflow wall (client)', s(r.restore.wallMs)],
    ...stepRows('container: restore', r.restore.result.stepMs),
    ...activityRows('container: restore', r.restore.activities),
    ['container: restore → generation done', s(r.restoreToGenerationMs)],
    [
      'container: generation after restore',
      `${r.identical ? 'IDENTICAL' : 'DIFFERENT'}; GET /generation in the placeholder answered "${r.answered.phase}"`,
    ],
    ...boundRows('container:', r, disk),
  ];
}

function phaseRows(name: string, phase: FlowResults['local'] | FlowResults['container'], rows: () => Row[]): Row[] {
  if (phase === undefined) return [[name, 'not run']];
  if ('error' in phase) return [[name, `FAILED: ${phase.error.split('\n')[0]}`]];
  return rows();
}

/** The per-step table of the workflow benchmark (bench/gpu/workflow-bench.ts). */
export function formatFlowTable(r: FlowResults): string {
  const gpus = r.machine.gpus;
  const rows: Row[] = [
    [
      'machine',
      `${gpus.gpus.map((g) => g.name).join(', ') || 'no GPU'} (driver ${gpus.driverVersion ?? 'none'}); ${r.machine.cgroup}; kernel ${r.machine.kernel}${r.machine.dryRun ? '; DRY RUN (fake libcuda)' : ''}`,
    ],
    [
      'disk (dd, direct I/O, 16 MiB blocks)',
      r.machine.disk
        ? `write ${(r.machine.disk.writeBytesPerS / 1e9).toFixed(2)} GB/s, read ${(r.machine.disk.readBytesPerS / 1e9).toFixed(2)} GB/s (${gb(r.machine.disk.bytes)})`
        : 'not measured',
    ],
    ...phaseRows('local', r.local, () => localRows(r.local as LocalPhaseResult, r.machine.disk)),
    ...phaseRows('container', r.container, () => containerRows(r.container as ContainerPhaseResult, r.machine.disk)),
  ];
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  return ['Torpor workflows on the GPU machine', ...rows.map(([k, v]) => `  ${k.padEnd(width)}${v}`)].join('\n');
}
