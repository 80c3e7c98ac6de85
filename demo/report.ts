import type { CheckpointResult, RestoreResult } from '../contract/types.js';
import type { SampleStatus } from '../sample-app/workload.js';

export interface DemoFigures {
  checkpoint: CheckpointResult;
  restore: RestoreResult;
  before: SampleStatus;
  firstAfter: SampleStatus;
  after: SampleStatus;
  /** GET /state from the restored process, over HTTP. */
  answer: SampleStatus;
  links: [string, string][];
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const sum = (values: Record<string, number>) => Object.values(values).reduce((a, b) => a + b, 0);

/** The restored process's own answer over HTTP, checked against what the checkpointed one reported. */
function httpAnswer(f: DemoFigures): string {
  const a = f.answer;
  const same = a.instance === f.before.instance && a.checksum === f.before.checksum;
  return `127.0.0.1:${f.before.port} → ${a.phase}, pid ${a.pid}, instance ${a.instance}, counter ${a.counter} ${same ? '(same process state)' : '(DIFFERENT)'}`;
}

export function printReport(f: DemoFigures): void {
  const m = f.checkpoint.manifest;
  const coldStartMs = m.timings.startToReadyMs;
  const restoreMs = sum(f.restore.stepMs);
  const same = f.before.checksum === f.firstAfter.checksum;
  const rows: [string, string][] = [
    ['cold start (start → ready)', seconds(coldStartMs)],
    ['checkpoint workflow', seconds(sum(f.checkpoint.stepMs))],
    ['  CRIU dump', seconds(m.timings.dumpMs)],
    ['  commit (chunk sha256 + manifest)', seconds(m.timings.commitMs)],
    ['image size', `${(m.totalBytes / 2 ** 20).toFixed(1)} MiB in ${m.files.length} files`],
    ['restore workflow (verify → ready)', seconds(restoreMs)],
    ['  check marker, manifest, sizes', seconds(f.restore.stepMs.verifying ?? 0)],
    ['  CRIU restore, every chunk verified', seconds(f.restore.criuRestoreMs)],
    ['restore vs cold start', `${(coldStartMs / restoreMs).toFixed(1)}x faster`],
    ['checksum before', f.before.checksum],
    ['checksum after', `${f.firstAfter.checksum} ${same ? '(identical)' : '(DIFFERENT)'}`],
    ['counter', `${f.before.counter} at checkpoint → ${f.firstAfter.counter} → ${f.after.counter} after restore`],
    [
      'process instance',
      `${f.before.instance} → ${f.after.instance} ${f.before.instance === f.after.instance ? '(same memory)' : '(DIFFERENT)'}`,
    ],
    ['pid', `${m.process.pid} → ${f.restore.pid}`],
    ['HTTP GET /state (restored)', httpAnswer(f)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log('\nTorpor demo report');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  console.log('\nTemporal UI');
  for (const [k, v] of f.links) console.log(`  ${k.padEnd(10)}  ${v}`);
}
