/**
 * The JavaScript half of the GPU-machine workflow pack (bench/gpu/pack-workflows.sh): the node
 * agent, the control worker and the runner bundled by esbuild into single ESM files, the SDK's
 * workflow thread beside them, and the workflow code prebuilt with bundleWorkflowCode (the workers
 * load it through TORPOR_WORKFLOW_BUNDLE, so nothing is bundled on the device). Usage:
 *   tsx bench/gpu/pack-bundles.ts <out dir>
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { type BuildOptions, build, type Plugin } from 'esbuild';

const out = path.resolve(process.argv[2] ?? '.gpuflow');
const require = createRequire(import.meta.url);

/**
 * CommonJS code inside an ESM bundle still calls require, __dirname and __filename; they resolve
 * against the bundle's own directory, where the pack puts what they load (the SDK's workflow
 * thread, core-bridge's native module under releases/, source-map's mappings.wasm).
 */
const BANNER = [
  "import { createRequire as __torporCreateRequire } from 'node:module';",
  "import { fileURLToPath as __torporFileUrlToPath } from 'node:url';",
  'const require = __torporCreateRequire(import.meta.url);',
  'const __torpor_filename = __torporFileUrlToPath(import.meta.url);',
  "const __torpor_dirname = __torporFileUrlToPath(new URL('.', import.meta.url));",
].join('\n');

/**
 * The SDK's bundler (webpack, swc) is never used with a prebuilt workflow bundle, and resolves
 * loader paths when loaded: a stub takes its place.
 */
const noBundler: Plugin = {
  name: 'no-workflow-bundler',
  setup(b) {
    b.onLoad({ filter: /@temporalio[\\/]worker[\\/]lib[\\/]workflow[\\/]bundler\.js$/ }, () => ({
      loader: 'js',
      contents: [
        'exports.defaultWorkflowInterceptorModules = [];',
        "const refuse = () => { throw new Error('this pack runs prebuilt workflow code only (TORPOR_WORKFLOW_BUNDLE)'); };",
        'exports.bundleWorkflowCode = refuse;',
        'exports.WorkflowCodeBundler = class { constructor() { refuse(); } };',
      ].join('\n'),
    }));
  },
};

const common: BuildOptions = {
  bundle: true,
  platform: 'node',
  target: 'node22',
  logLevel: 'warning',
  external: ['koffi'],
  define: { __dirname: '__torpor_dirname', __filename: '__torpor_filename' },
  plugins: [noBundler],
};

async function bundleEntries(): Promise<void> {
  const entries: Record<string, string> = {
    'node-agent': 'bench/gpu/flow-agent.ts',
    'control-worker': 'workers/control.ts',
    'workflow-bench': 'bench/gpu/workflow-bench.ts',
    'verify-read': 'bench/verify-read.ts',
  };
  for (const [name, entry] of Object.entries(entries)) {
    await build({ ...common, entryPoints: [entry], format: 'esm', outfile: path.join(out, `${name}.mjs`), banner: { js: BANNER } });
  }
  // The worker starts its workflow threads from require.resolve('./workflow-worker-thread'): the bundle's directory.
  await build({
    ...common,
    entryPoints: [require.resolve('@temporalio/worker/lib/workflow/workflow-worker-thread.js')],
    format: 'cjs',
    define: {},
    outfile: path.join(out, 'workflow-worker-thread.js'),
  });
  await copyFile(require.resolve('source-map/lib/mappings.wasm'), path.join(out, 'mappings.wasm'));
}

async function main(): Promise<void> {
  await mkdir(out, { recursive: true });
  await bundleEntries();
  const { code } = await bundleWorkflowCode({ workflowsPath: path.resolve('workflows/index.ts'), logger: quietLogger });
  await writeFile(path.join(out, 'workflows.js'), code);
}

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (message: string) => console.warn(message),
  error: (message: string) => console.error(message),
};

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
