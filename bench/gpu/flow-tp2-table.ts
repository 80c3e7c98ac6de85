import type { ActivityRecord } from './flow-history.js';
import type { RankReport, Tp2ModeResult, Tp2PhaseResult, Tp2Report } from './flow-tp2.js';

type Row = [string, string];

const s = (ms: number | undefined) => (ms === undefined ? '–' : `${(ms / 1000).toFixed(2)} s`);
const sec = (v: unknown) => (typeof v === 'number' ? `${v.toFixed(2)} s` : '–');

/** The figures an activity reports about itself: every number named …Ms or …Bytes. */
function ownFigures(result: unknown): string {
  if (typeof result !== 'object' || result === null) return '';
  return Object.entries(result)
    .filter(([k, v]) => typeof v === 'number' && /(Ms|Bytes)$/.test(k))
    .map(([k, v]) => (k.endsWith('Ms') ? `${k} ${s(v as number)}` : `${k} ${((v as number) / 1e9).toFixed(2)} GB`))
    .join(', ');
}

const activityRows = (prefix: string, activities: ActivityRecord[] = []): Row[] =>
  activities.map((a) => [`${prefix} ${a.activity}`, `${s(a.wallMs)}  ${ownFigures(a.result)}`]);

function rankLine(r: RankReport): string {
  if (!r.ok && r.error) return `FAILED: ${r.error}`;
  const init = r.reinit_and_all_reduce_s ?? r.init_and_all_reduce_s;
  const sockets = r.sockets_at_ready ? `, sockets at ready ${JSON.stringify(r.sockets_at_ready)}` : '';
  return `all-reduce ${r.all_reduce_value} (all 3: ${String(r.all_reduce_all_3)}), checksums Σ ${r.checksums_sum}, (re)init + all-reduce ${sec(init)}${
    r.destroy_s === undefined || r.destroy_s === null ? '' : `, destroy ${sec(r.destroy_s)}`
  }${r.checksum_before === undefined ? '' : `, data intact: ${String(r.checksum === r.checksum_before)}`}${sockets}`;
}

const rankRows = (prefix: string, report: Tp2Report | undefined): Row[] =>
  (report?.ranks ?? []).map((r) => [`${prefix} rank ${r.rank} (pid ${r.pid})`, rankLine(r)]);

function modeRows(m: Tp2ModeResult): Row[] {
  const rows: Row[] = [[`TP=2 ${m.mode}, established ${m.established}`, m.hash]];
  if ('error' in m.checkpoint) return [...rows, ...rankRows('  before:', m.before), ['  checkpoint', `FAILED: ${m.checkpoint.error}`]];
  const { result, wallMs, activities } = m.checkpoint;
  rows.push(
    ['  cold start (start → ready)', s(result.manifest.timings.startToReadyMs)],
    ...rankRows('  before:', m.before),
    ['  checkpoint workflow wall', s(wallMs)],
    ['  image', `${(result.manifest.totalBytes / 1e9).toFixed(2)} GB`],
    ...Object.entries(result.stepMs).map(([k, v]): Row => [`  checkpoint step ${k}`, s(v)]),
    ...activityRows('  checkpoint activity', activities),
  );
  for (const r of m.restores) {
    const what = `  restore onto ${r.gpus?.join(',') ?? 'the same GPUs'}`;
    if (r.error) {
      rows.push([what, `FAILED: ${r.error}`]);
      continue;
    }
    rows.push(
      [
        what,
        `workflow ${s(r.wallMs)}; → both ranks re-joined and verified ${s(r.restoreToAllReduceMs)}; page cache dropped: ${r.pageCacheDropped}`,
      ],
      ...Object.entries(r.result?.stepMs ?? {}).map(([k, v]): Row => [`    step ${k}`, s(v)]),
      ...activityRows('    activity', r.activities),
      ['    marker → both ranks verified', sec(r.after?.marker_to_after_s)],
      ...rankRows('    after:', r.after),
      ['    GPUs held by the ranks (nvidia-smi)', JSON.stringify(r.rankGpus ?? [])],
      ['    all-reduce correct after restore', String(r.ok)],
    );
  }
  return rows;
}

export function formatTp2Table(result: Tp2PhaseResult | { error: string }): string {
  if ('error' in result) return `TP=2 phase failed: ${result.error}`;
  const rows = result.modes.flatMap(modeRows);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

/** Whether every run checkpointed and every restore verified its all-reduce. */
export function tp2Succeeded(result: Tp2PhaseResult | { error: string }): boolean {
  return !('error' in result) && result.modes.every((m) => !('error' in m.checkpoint) && m.restores.every((r) => r.ok));
}
