/**
 * N container checkpoint + restore-into-placeholder cycles on real runc containers, through the
 * node agent's own steps (no Temporal: these are the agent-side costs). Per cycle: the container's
 * cold start (start → first report), runc checkpoint (CRIU dump, the container keeps running), the
 * commit (sha256 of every file), the verify before a restore, the restore into a running
 * placeholder (rootfs replay, marker, CRIU), and restore → the app's first report after it.
 *   BENCH_CYCLES (3), BENCH_TABLE_MB (256)
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createContainerActivities } from '../activities/node/container/activities.js';
import { checkpointContainer, eventually, RuncWorld, verifyCheckpoint, waitForStatus } from '../test/support/runc-containers.js';

const cycles = Number(process.env.BENCH_CYCLES ?? 3);
const tableMb = Number(process.env.BENCH_TABLE_MB ?? 256);
const RESULTS = fileURLToPath(new URL('./results/container-cycles.md', import.meta.url));
const world = new RuncWorld(path.resolve('.torpor/bench/containers'));
const activities = createContainerActivities(world.config(['bench']));
const pod = (name: string) => ({
  'io.kubernetes.pod.namespace': 'bench',
  'io.kubernetes.pod.name': name,
  'io.kubernetes.container.name': 'main',
});

interface Row {
  coldStartMs: number;
  dumpMs: number;
  commitMs: number;
  imageMiB: number;
  verifyMs: number;
  restoreMs: number;
  restoredReportMs: number;
}

async function cycle(i: number): Promise<Row> {
  const env = [`APP_TABLE_KB=${tableMb * 1024}`];
  const source = await world.createBundle(`src-${i}`, { ...pod(`src-${i}`), 'torpor.dev/checkpoint-source': 'true' }, { env });
  const started = Date.now();
  await world.run(`src-${i}`, source);
  const before = await waitForStatus(source, () => true, 120_000);
  const coldStartMs = Date.now() - started;

  const hash = `bench-${i}`;
  const commitStarted = Date.now();
  const dumped = await checkpointContainer(world, activities, { containerId: `src-${i}`, hash });
  const commitMs = Date.now() - commitStarted - dumped.dumpMs;
  await world.deleteContainer(`src-${i}`);

  const verifyStarted = Date.now();
  await verifyCheckpoint(world, hash);
  const verifyMs = Date.now() - verifyStarted;

  const placeholder = await world.createBundle(`ph-${i}`, pod(`ph-${i}`), { placeholderFor: { hash, store: world.store }, env });
  await world.run(`ph-${i}`, placeholder);
  await eventually(
    async () => ((await world.output(`ph-${i}`)).includes('waiting for the node agent') ? true : undefined),
    'the placeholder',
  );
  const restoreStarted = Date.now();
  const restored = await activities.restoreIntoPlaceholder({ hash, placeholderContainerId: `ph-${i}` });
  const after = await waitForStatus(placeholder, (s) => s.restored, 60_000);
  const restoredReportMs = Date.now() - restoreStarted - restored.restoreMs;
  if (after.iid !== before.iid || after.built !== before.built) throw new Error(`cycle ${i}: the restored app is not the checkpointed one`);
  await world.deleteContainer(`ph-${i}`);
  return {
    coldStartMs,
    dumpMs: dumped.dumpMs,
    commitMs,
    imageMiB: dumped.manifest.totalBytes / (1 << 20),
    verifyMs,
    restoreMs: restored.restoreMs,
    restoredReportMs,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

async function main(): Promise<void> {
  await world.createImage();
  const rows: Row[] = [];
  try {
    for (let i = 1; i <= cycles; i++) rows.push(await cycle(i));
  } finally {
    await world.cleanUp();
  }
  const cols: Array<[keyof Row, string]> = [
    ['coldStartMs', 'cold start'],
    ['dumpMs', 'runc checkpoint'],
    ['commitMs', 'commit'],
    ['imageMiB', 'image MiB'],
    ['verifyMs', 'verify'],
    ['restoreMs', 'restore into placeholder'],
    ['restoredReportMs', 'restore → app reports'],
  ];
  const fmt = (n: number, c: keyof Row) => (c === 'imageMiB' ? n.toFixed(1) : `${(n / 1000).toFixed(3)} s`);
  const lines = [
    `| cycle | ${cols.map(([, h]) => h).join(' | ')} |`,
    `|---|${cols.map(() => '---').join('|')}|`,
    ...rows.map((r, i) => `| ${i + 1} | ${cols.map(([c]) => fmt(r[c], c)).join(' | ')} |`),
    `| median | ${cols.map(([c]) => fmt(median(rows.map((r) => r[c])), c)).join(' | ')} |`,
  ];
  const report = [
    `# Container checkpoint and restore into a placeholder (${tableMb} MiB table, ${cycles} cycles)`,
    '',
    'runc 1.1.5, CRIU 4.1.1, this machine (2 cores); `npm run bench:containers`. The agent-side steps, without Temporal.',
    '',
    ...lines,
    '',
  ].join('\n');
  console.log(report);
  await writeFile(RESULTS, report);
}

await main();
