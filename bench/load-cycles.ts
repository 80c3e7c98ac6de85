/**
 * Fleet load on one machine: N checkpoint + restore cycles of a small sample app, LOAD_IN_FLIGHT at a
 * time, spread over M node agents (separate processes, NODE_NAME load-<i>, storage roots of their
 * own) against ONE control worker (its own process, workers/control.ts, read from /proc) and the dev
 * server. First LOAD_BASELINE_CYCLES cycles one at a time (the baseline), then the load.
 *   LOAD_CYCLES (200), LOAD_IN_FLIGHT (50), LOAD_AGENTS (4), LOAD_BASELINE_CYCLES (5),
 *   LOAD_TABLE_MB (1), LOAD_INIT_SECONDS (0.2), LOAD_AGENT_NICE (0: the agents, their workloads and CRIU
 *   share the cores with the control plane as they are; 10 lets the control worker and server go first,
 *   as on a cluster where they run on other machines), LOAD_CONTROL_NODE_OPTIONS (NODE_OPTIONS of the
 *   control worker only, e.g. --max-old-space-size=512); the agents read TORPOR_HEAVY_STEPS etc. as usual.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import PQueue from 'p-queue';
import { TorporClient } from '../client/index.js';
import { torporDataConverter } from '../client/payload-codec.js';
import { checkpointWorkflowId, restoreWorkflowId } from '../contract/naming.js';
import { useLocalPayloadKeys } from '../dev/payload-keys.js';
import { startDevServer } from '../dev/temporal-dev-server.js';
import { sampleHealthProbe, sampleWorkload } from '../sample-app/workload.js';
import { historyFigures } from './load/histories.js';
import { busyFraction, childPid, loggedQueueWaits, machineCpu, procUsage, startWorker, type WorkerProcess } from './load/processes.js';
import { type LoadReport, printReport } from './load/report.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const DIR = path.join(ROOT, '.torpor/bench-load');
const RESULTS_JSON = path.join(ROOT, 'bench/results/load.json');
const num = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const settings = {
  cycles: num('LOAD_CYCLES', 200),
  inFlight: num('LOAD_IN_FLIGHT', 50),
  agents: num('LOAD_AGENTS', 4),
  baselineCycles: num('LOAD_BASELINE_CYCLES', 5),
  tableMb: num('LOAD_TABLE_MB', 1),
  initSeconds: num('LOAD_INIT_SECONDS', 0.2),
  agentNice: num('LOAD_AGENT_NICE', 0),
  controlNodeOptions: process.env.LOAD_CONTROL_NODE_OPTIONS ?? '',
};

export interface CycleOutcome {
  name: string;
  node: string;
  wallMs: number;
  workflowIds: string[];
  failure?: { type: string; message: string };
}

/** Sample apps run as nobody and write their status here: sticky and world-writable, as /tmp is. */
function statusDir(): string {
  const dir = path.join(os.tmpdir(), 'torpor-load-status');
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o1777);
  return dir;
}

/**
 * Kills a restored tree. No wait for its PID to be free: every cycle restores a new process, and
 * this machine's PID 1 reaps orphans only after seconds, which would count as Torpor's time.
 */
function stopRestored(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** One checkpoint and one restore of a fresh sample app on `node`; the checkpoint's files removed after. */
async function cycle(torpor: TorporClient, name: string, node: string, storage: string, port: number): Promise<CycleOutcome> {
  const hash = name;
  const statusFile = path.join(statusDir(), `${hash}.json`);
  const target = { hash, node, runtime: 'local' as const };
  const workflowIds = [checkpointWorkflowId(hash), restoreWorkflowId(hash, 'r1')];
  const started = Date.now();
  try {
    const { tableMb, initSeconds } = settings;
    const env = { SAMPLE_PORT: String(port) };
    await torpor.checkpoint({ ...target, workload: sampleWorkload({ tableMb, initSeconds, statusFile, env }) });
    const restored = await torpor.restore({ ...target, restoreId: 'r1', readiness: sampleHealthProbe(port) });
    stopRestored(restored.pid);
    return { name, node, wallMs: Date.now() - started, workflowIds };
  } catch (err) {
    const e = err as { type?: string; name?: string; message?: string };
    return {
      name,
      node,
      wallMs: Date.now() - started,
      workflowIds,
      failure: { type: e.type ?? e.name ?? 'Error', message: String(e.message) },
    };
  } finally {
    await rm(path.join(storage, hash), { recursive: true, force: true });
    await rm(statusFile, { force: true });
  }
}

async function startWorkers(address: string) {
  const bundlePath = path.join(DIR, 'workflow-bundle.js');
  const bundle = await bundleWorkflowCode({ workflowsPath: path.join(ROOT, 'workflows/index.ts'), logger: quietBundler });
  await writeFile(bundlePath, bundle.code);
  const env = { TEMPORAL_ADDRESS: address };
  const control = await startWorker(
    path.join(ROOT, 'workers/control.ts'),
    { ...env, TORPOR_WORKFLOW_BUNDLE: bundlePath, NODE_OPTIONS: settings.controlNodeOptions },
    path.join(DIR, 'control.log'),
  );
  const agents: (WorkerProcess & { node: string; storage: string })[] = [];
  for (let i = 0; i < settings.agents; i++) {
    const node = `load-${i}`;
    const storage = path.join(DIR, `storage-${i}`);
    await mkdir(storage, { recursive: true });
    const agentEnv = { ...env, NODE_NAME: node, TORPOR_STORAGE_ROOT: storage };
    const agentScript = path.join(ROOT, 'bench/load/agent-main.ts');
    const agent = await startWorker(agentScript, agentEnv, path.join(DIR, `${node}.log`), settings.agentNice);
    agents.push({ ...agent, node, storage });
  }
  return { control, agents };
}

const quietBundler = { info() {}, debug() {}, trace() {}, warn: console.warn, error: console.error, log() {} };

/**
 * `count` cycles, `inFlight` at a time, round-robin over `agents`. Each app listens on its own port
 * from `firstPort` up: the restored copy answers the agent's HTTP readiness probe there, as a model
 * server would (an exec probe would start a Python every 50 ms for every restore that waits).
 */
async function runCycles(
  torpor: TorporClient,
  agents: { node: string; storage: string }[],
  run: { prefix: string; count: number; inFlight: number; firstPort: number },
) {
  const { prefix, count, inFlight, firstPort } = run;
  const queue = new PQueue({ concurrency: inFlight });
  const started = Date.now();
  const outcomes = await Promise.all(
    Array.from({ length: count }, (_, i) => {
      const agent = agents[i % agents.length] as { node: string; storage: string };
      return queue.add(() => cycle(torpor, `${prefix}-${i}`, agent.node, agent.storage, firstPort + i));
    }),
  );
  return { outcomes, elapsedMs: Date.now() - started };
}

async function figures(client: Client, outcomes: CycleOutcome[]) {
  const history = async (id: string) => historyFigures(await client.workflow.getHandle(id).fetchHistory());
  const rows = [];
  for (const o of outcomes.filter((x) => !x.failure)) {
    const [checkpointId, restoreId] = o.workflowIds as [string, string];
    rows.push({
      name: o.name,
      node: o.node,
      cycleWallMs: o.wallMs,
      checkpoint: await history(checkpointId),
      restore: await history(restoreId),
    });
  }
  return rows;
}

async function main(): Promise<void> {
  await rm(DIR, { recursive: true, force: true });
  await mkdir(DIR, { recursive: true });
  useLocalPayloadKeys();
  const server = process.env.TEMPORAL_ADDRESS ? null : await startDevServer();
  const address = process.env.TEMPORAL_ADDRESS ?? (server?.address as string);
  const devServerPid = childPid(process.pid, 'temporal');
  const client = new Client({ connection: await Connection.connect({ address }), dataConverter: torporDataConverter() });
  const torpor = new TorporClient(client);
  const { control, agents } = await startWorkers(address);
  const run = randomBytes(3).toString('hex');
  try {
    const baseline = await runCycles(torpor, agents.slice(0, 1), {
      prefix: `base-${run}`,
      count: settings.baselineCycles,
      inFlight: 1,
      firstPort: 21000,
    });
    const before = { machine: machineCpu(), control: procUsage(control.pid), devServer: devServerPid ? procUsage(devServerPid) : null };
    const load = await runCycles(torpor, agents, {
      prefix: `load-${run}`,
      count: settings.cycles,
      inFlight: settings.inFlight,
      firstPort: 22000,
    });
    const after = { machine: machineCpu(), control: procUsage(control.pid), devServer: devServerPid ? procUsage(devServerPid) : null };
    const report: LoadReport = {
      settings,
      machine: { cores: os.availableParallelism(), memoryBytes: os.totalmem(), node: process.version },
      heavyStepLimit: process.env.TORPOR_HEAVY_STEPS ?? 'default (min(cores, available memory / 2 GiB))',
      loadElapsedMs: load.elapsedMs,
      machineBusy: busyFraction(before.machine, after.machine),
      baseline: await figures(client, baseline.outcomes),
      load: await figures(client, load.outcomes),
      failures: [...baseline.outcomes, ...load.outcomes].filter((o) => o.failure),
      control: { before: before.control, after: after.control },
      devServer: before.devServer && after.devServer ? { before: before.devServer, after: after.devServer } : null,
      agents: agents.map((a) => ({ node: a.node, usage: procUsage(a.pid), queueWaits: loggedQueueWaits(a.logFile) })),
    };
    printReport(report);
    await writeFile(RESULTS_JSON, `${JSON.stringify(report)}\n`);
    console.log(`\nraw figures: ${path.relative(ROOT, RESULTS_JSON)}; worker logs: ${path.relative(ROOT, DIR)}/`);
  } finally {
    for (const w of [...agents, control]) await w.stop();
    await client.connection.close();
    await server?.teardown();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
