import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { TorporError, workflowUiUrl } from '../client/index.js';
import { registerCheckpointCommands, UsageError } from './commands/checkpoints.js';
import { registerCodecServerCommand } from './commands/codec-server.js';
import { registerContainerCommands } from './commands/containers.js';
import { registerScheduleCommands } from './commands/schedules.js';
import { CliContext, type GlobalOptions, globalDefaults } from './context.js';
import { ExitCode, exitCodeOf } from './exit-codes.js';

const DEMO = fileURLToPath(new URL('../demo/main.ts', import.meta.url));

function buildProgram(contextOf: (cmd: Command) => CliContext, json: boolean): Command {
  const defaults = globalDefaults();
  const program = new Command('torpor')
    .description('Checkpoint an initialized (GPU) process with CRIU and restore it on demand, as durable Temporal workflows')
    .version(process.env.npm_package_version ?? '0.1.0')
    .option('--address <host:port>', 'Temporal frontend (TEMPORAL_ADDRESS)', defaults.address)
    .option('--namespace <namespace>', 'Temporal namespace (TEMPORAL_NAMESPACE)', defaults.namespace)
    .option('--ui <url>', 'Temporal Web UI, for the links printed (TEMPORAL_UI_URL)', defaults.ui)
    .option('--node <name>', 'node to act on (NODE_NAME; default: this host)', defaults.node)
    .option('--json', 'print one JSON document on stdout (errors too), nothing on stderr')
    .showHelpAfterError('(torpor --help for usage)')
    .exitOverride();
  // With --json, a usage error is reported as JSON on stdout instead.
  if (json) program.configureOutput({ writeErr: () => undefined });
  registerCheckpointCommands(program, contextOf);
  registerScheduleCommands(program, contextOf);
  registerContainerCommands(program, contextOf);
  registerCodecServerCommand(program);
  program
    .command('demo')
    .description('run the demo: checkpoint and restore the sample app on a local dev server (Temporal UI on :8233)')
    .action(async () => {
      const child = spawn(process.execPath, ['--import', 'tsx', DEMO], { stdio: 'inherit' });
      const [code] = (await once(child, 'exit')) as [number | null];
      if (code !== 0) throw new DemoFailed(code ?? ExitCode.failed);
    });
  return program;
}

class DemoFailed extends Error {
  constructor(readonly code: number) {
    super(`the demo exited with code ${code}`);
  }
}

/** Prints `err` (as JSON on stdout with --json) and returns its exit code. */
function report(err: unknown, context: CliContext | undefined, json: boolean): number {
  const fail = (type: string, message: string, code: number, extra: Record<string, unknown> = {}) => {
    if (json) process.stdout.write(`${JSON.stringify({ error: { type, message, exitCode: code, ...extra } }, null, 2)}\n`);
    else process.stderr.write(`torpor: ${type}: ${message}${extra.ui ? `\n  ui: ${extra.ui}` : ''}\n`);
    return code;
  };
  if (err instanceof CommanderError) {
    if (err.exitCode === 0) return ExitCode.ok;
    return json ? fail('Usage', err.message, ExitCode.usage) : ExitCode.usage;
  }
  if (err instanceof DemoFailed) return err.code;
  if (err instanceof UsageError) return fail('Usage', err.message, ExitCode.usage);
  if (err instanceof TorporError) {
    const o = context?.options;
    const ui = err.workflowId && o ? workflowUiUrl(o.ui, o.namespace, err.workflowId) : undefined;
    return fail(err.type, err.message, exitCodeOf(err.type), {
      ...(err.workflowId ? { workflowId: err.workflowId } : {}),
      ...(ui ? { ui } : {}),
    });
  }
  const message = err instanceof Error ? err.message : String(err);
  if (/connect|UNAVAILABLE|ECONNREFUSED|transport|DNS/i.test(message)) {
    return fail('TemporalUnavailable', `cannot reach Temporal at ${context?.options.address ?? '?'}: ${message}`, ExitCode.unavailable);
  }
  return fail('Unexpected', err instanceof Error ? (err.stack ?? message) : message, ExitCode.unexpected);
}

/** Runs the CLI on `argv` (as process.argv) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let context: CliContext | undefined;
  const ownArgs = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  const program = buildProgram((cmd) => {
    context ??= new CliContext(cmd.optsWithGlobals() as GlobalOptions);
    return context;
  }, ownArgs.includes('--json'));
  try {
    await program.parseAsync(argv);
    return ExitCode.ok;
  } catch (err) {
    return report(err, context, context?.json ?? ownArgs.includes('--json'));
  } finally {
    await context?.close();
  }
}
