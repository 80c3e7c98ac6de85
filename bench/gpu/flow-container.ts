import { chmod, mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { ContainerCheckpointResult, ContainerRestoreResult, TorporClient } from '../../client/index.js';
import { CHECKPOINT_SOURCE_LABEL } from '../../contract/chrek.js';
import type { ImageRead } from './bench-host.js';
import type { Generation } from './bench-table.js';
import { type AppSetup, dropPageCache, gpusOfProcess, imageReadBack, readJson, sameGeneration, step, waitForFile } from './flow-app.js';
import type { ContainerSetup } from './flow-container-setup.js';
import { type ActivityRecord, activityRecords } from './flow-history.js';
import { type ContainerGpu, createBundle, createImage, execInContainer, removeContainer, runContainer } from './flow-runc.js';

export interface ContainerPhaseResult {
  hash: string;
  sourceGpu: string;
  placeholderGpu: string;
  sourceReadyMs: number;
  checkpoint: { wallMs: number; result: ContainerCheckpointResult; activities: ActivityRecord[] };
  pageCacheDropped: boolean;
  restore: { wallMs: number; result: ContainerRestoreResult; activities: ActivityRecord[] };
  restoreToGenerationMs: number;
  before: Generation;
  after: Generation;
  answered: Generation & { phase: string };
  identical: boolean;
  /** Where nvidia-smi saw the restored process (host PID) hold memory. */
  gpusAfter: string[];
  /** After the restore (BENCH_IMAGE_READ, default on): the pages images read back from a cold page cache. */
  imageRead?: ImageRead | null;
}

const MINUTE = 60_000;
const PORT_IN_CONTAINER = 8080;
const MARKER = '/tmp/dynamo-restored';
const FETCH_GENERATION = `import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:${PORT_IN_CONTAINER}/generation', timeout=10).read().decode())`;

/** What both containers share: the app, the model, one compile cache (the restored process maps its compiled kernels from there). */
function containerOptions(setup: ContainerSetup, app: AppSetup, work: string, gpu: ContainerGpu | null) {
  const model = app.env.BENCH_MODEL_DIR;
  const env = [
    `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`,
    'HOME=/cache/home',
    'BENCH_OUTPUT_DIR=/work',
    `BENCH_HTTP_PORT=${PORT_IN_CONTAINER}`,
    'DYN_CHECKPOINT_READY_FILE=/work/ready',
    'DYN_CHECKPOINT_SIGNAL_FILE=/work/signal',
    `DYN_RESTORE_MARKER_FILE=${MARKER}`,
    'TORCHINDUCTOR_CACHE_DIR=/cache/inductor',
    'TRITON_CACHE_DIR=/cache/triton',
    'XDG_CACHE_HOME=/cache/xdg',
    'TORCHINDUCTOR_COMPILE_THREADS=1',
    'PYTHONUNBUFFERED=1',
    ...(model ? ['BENCH_MODEL_DIR=/model'] : []),
    ...['NCCL_NVLS_ENABLE', 'TORCH_SYMM_MEM_DISABLE_MULTICAST', 'NVSHMEM_DISABLE_NVLS'].flatMap((k) =>
      process.env[k] ? [`${k}=${process.env[k]}`] : [],
    ),
    ...(gpu ? [`NVIDIA_VISIBLE_DEVICES=${gpu.uuid}`] : []),
  ];
  const ro: Record<string, string> = { [app.appDir]: '/app', ...(model ? { [model]: '/model' } : {}) };
  return { env, ro, rw: { [work]: '/work', [path.join(setup.dir, 'cache')]: '/cache' }, gpu };
}

async function fetchInContainer(setup: ContainerSetup, id: string, app: AppSetup) {
  const out = await execInContainer(setup.runc, setup.runcRoot, id, [app.python, '-c', FETCH_GENERATION]);
  if (out.exitCode !== 0) throw new Error(`GET /generation in ${id} failed: ${out.stderr}`);
  return JSON.parse(out.stdout) as Generation & { phase: string };
}

async function workDir(dir: string): Promise<string> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o1777);
  return dir;
}

const pod = (namespace: string, name: string) => ({
  'io.kubernetes.pod.namespace': namespace,
  'io.kubernetes.pod.name': name,
  'io.kubernetes.container.name': 'llm',
});

/** One run of the container phase: its two containers, their bundles over one image, their work directories and logs. */
class ContainerRun {
  readonly hash = `gpu-ctr-${Date.now().toString(36)}`;
  readonly ids = { source: `${this.hash}-source`, placeholder: `${this.hash}-placeholder` };
  private image: { dir: string; binds: Awaited<ReturnType<typeof createImage>> } | undefined;

  constructor(
    readonly setup: ContainerSetup,
    readonly app: AppSetup,
  ) {}

  bundle = (id: string) => path.join(this.setup.dir, id);
  work = (role: 'source' | 'placeholder') => path.join(this.setup.dir, 'work', role);
  log = (id: string) => path.join(this.setup.dir, `${id}.log`);

  async prepare(): Promise<void> {
    for (const role of ['source', 'placeholder'] as const) await workDir(this.work(role));
    await mkdir(path.join(this.setup.dir, 'cache', 'home'), { recursive: true });
    const dir = path.join(this.setup.dir, 'image');
    this.image = { dir, binds: await createImage(dir, ['/app', '/model', '/work', '/cache', '/checkpoints']) };
  }

  /** Starts the source container (the app holding its GPU) and waits for its ready file; returns the ms it took. */
  async startSource(): Promise<number> {
    const { setup, app, ids } = this;
    await createBundle(setup.runc, this.bundle(ids.source), this.image as NonNullable<typeof this.image>, {
      annotations: { ...pod(setup.namespace, `${this.hash}-0`), [CHECKPOINT_SOURCE_LABEL]: 'true' },
      args: ['sh', '-c', `exec ${app.python} /app/${app.script} </dev/null`],
      ...containerOptions(setup, app, this.work('source'), setup.gpus?.source ?? null),
    });
    const started = performance.now();
    await runContainer(setup.runc, setup.runcRoot, ids.source, this.bundle(ids.source), this.log(ids.source));
    await waitForFile(path.join(this.work('source'), 'ready'), 20 * MINUTE);
    return performance.now() - started;
  }

  /** Starts a restore pod's container (ChReK's smart entrypoint, the checkpoint mounted) and waits until it waits. */
  async startPlaceholder(): Promise<void> {
    const { setup, app, ids } = this;
    const options = containerOptions(setup, app, this.work('placeholder'), setup.gpus?.placeholder ?? null);
    await createBundle(setup.runc, this.bundle(ids.placeholder), this.image as NonNullable<typeof this.image>, {
      ...options,
      annotations: pod(setup.namespace, `${this.hash}-1`),
      args: ['sh', '/app/smart-entrypoint.sh', app.python, `/app/${app.script}`],
      env: [...options.env, `DYN_CHECKPOINT_HASH=${this.hash}`, 'DYN_CHECKPOINT_PATH=/checkpoints'],
      ro: { ...options.ro, [setup.storageRoot]: '/checkpoints' },
    });
    await runContainer(setup.runc, setup.runcRoot, ids.placeholder, this.bundle(ids.placeholder), this.log(ids.placeholder));
    for (let i = 0; i < 300 && !(await this.output(ids.placeholder)).includes('waiting for the node agent'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  output = (id: string) => readFile(this.log(id), 'utf8').catch(() => '');

  remove = (id: string) => removeContainer(this.setup.runc, this.setup.runcRoot, id, this.bundle(id));

  /** The error with both containers' output, which is where the app says what went wrong. */
  async explain(err: unknown): Promise<Error> {
    const tails = await Promise.all(Object.values(this.ids).map(async (id) => `${id}: ${(await this.output(id)).slice(-3000)}`));
    return new Error(`${err instanceof Error ? err.message : String(err)}\ncontainer logs:\n${tails.join('\n')}`);
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/**
 * A runc container holding the GPU, checkpointed by the containerCheckpoint workflow and restored
 * by containerRestore into a placeholder container (ChReK's smart entrypoint waiting for the
 * checkpoint) on the other GPU where there are two; the restored app must answer HTTP there.
 */
export async function runContainerPhase(
  torpor: TorporClient,
  node: string,
  app: AppSetup,
  setupOf: () => Promise<ContainerSetup>,
): Promise<ContainerPhaseResult> {
  const run = new ContainerRun(await setupOf(), app);
  const { hash, ids, setup } = run;
  try {
    await run.prepare();
    const sourceReadyMs = await run.startSource();
    step(`source container ready after ${seconds(sourceReadyMs)}; containerCheckpoint workflow`);
    let started = performance.now();
    const handle = await torpor.startContainerCheckpoint({ node, containerId: ids.source, hash });
    const checkpoint = await torpor.result(handle);
    const checkpointWallMs = performance.now() - started;
    step(`container checkpointed in ${seconds(checkpointWallMs)}: ${JSON.stringify(checkpoint.stepMs)}`);
    const before = await readJson<Generation>(path.join(run.work('source'), 'generation-before.json'));
    await run.remove(ids.source);

    await run.startPlaceholder();
    const pageCacheDropped = await dropPageCache();
    step(`placeholder waiting; page cache dropped: ${pageCacheDropped}; containerRestore workflow`);
    started = performance.now();
    const restoreHandle = await torpor.startContainerRestore({
      node,
      hash,
      placeholderContainerId: ids.placeholder,
      restoreMarkerFile: MARKER,
    });
    const restored = await torpor.result(restoreHandle);
    const restoreWallMs = performance.now() - started;
    step(`restored into ${ids.placeholder} in ${seconds(restoreWallMs)}: ${JSON.stringify(restored.stepMs)}`);
    const afterFile = path.join(run.work('placeholder'), 'generation-after.json');
    await waitForFile(afterFile, 10 * MINUTE);
    const restoreToGenerationMs = performance.now() - started;
    const after = await readJson<Generation>(afterFile);
    const answered = await fetchInContainer(setup, ids.placeholder, app);
    const identical = sameGeneration(before, after) && sameGeneration(after, answered) && answered.phase === 'after-restore';
    step(`placeholder answered GET /generation (${answered.phase}); identical to before: ${identical}`);
    const gpusAfter = await gpusOfProcess(restored.hostPid);
    const imageRead = await imageReadBack(hash, checkpoint.manifest.files);
    return {
      hash,
      sourceGpu: setup.gpus?.source.uuid ?? 'none (dry run)',
      placeholderGpu: setup.gpus?.placeholder.uuid ?? 'none (dry run)',
      sourceReadyMs,
      checkpoint: { wallMs: checkpointWallMs, result: checkpoint, activities: await activityRecords(handle) },
      pageCacheDropped,
      restore: { wallMs: restoreWallMs, result: restored, activities: await activityRecords(restoreHandle) },
      restoreToGenerationMs,
      before,
      after,
      answered,
      identical,
      gpusAfter,
      ...(imageRead === undefined ? {} : { imageRead }),
    };
  } catch (err) {
    throw await run.explain(err);
  } finally {
    for (const id of Object.values(ids)) await run.remove(id);
  }
}
