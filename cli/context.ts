import os from 'node:os';
import { Client, Connection } from '@temporalio/client';
import type { Command } from 'commander';
import { scheduleUiUrl, TorporClient, workflowUiUrl } from '../client/index.js';
import { torporDataConverter } from '../client/payload-codec.js';
import { tlsFromEnv } from '../workers/connection.js';
import { normalizeNodeName } from '../workers/node-agent-config.js';

/** The global options every command shares (each also read from the environment). */
export interface GlobalOptions {
  address: string;
  namespace: string;
  ui: string;
  node?: string;
  json?: boolean;
  agentTimeout?: string;
}

export function globalDefaults(env: NodeJS.ProcessEnv = process.env) {
  return {
    address: env.TEMPORAL_ADDRESS ?? 'localhost:7233',
    namespace: env.TEMPORAL_NAMESPACE ?? 'default',
    ui: env.TEMPORAL_UI_URL ?? 'http://localhost:8233',
    node: env.NODE_NAME,
  };
}

/** A started workflow as the CLI reports it. */
export interface WorkflowRef {
  workflowId: string;
  runId: string;
  ui: string;
}

/** How a command's action finds the context, given the command commander passes it. */
export type ContextOf = (cmd: Command) => CliContext;

/** What a command runs with: the client, where to print, how to link to the Temporal UI. */
export class CliContext {
  private connection: Connection | undefined;
  private torporClient: TorporClient | undefined;

  constructor(readonly options: GlobalOptions) {}

  get json(): boolean {
    return this.options.json === true;
  }

  /** The node to act on: --node, NODE_NAME, or this host's name as the agent would derive it. */
  get node(): string {
    return this.options.node ?? normalizeNodeName(os.hostname());
  }

  async torpor(): Promise<TorporClient> {
    if (!this.torporClient) {
      // Lazy: input is validated before anything goes over the network.
      const tls = tlsFromEnv();
      this.connection = Connection.lazy({ address: this.options.address, connectTimeout: '5 seconds', ...(tls ? { tls } : {}) });
      const client = new Client({ connection: this.connection, namespace: this.options.namespace, dataConverter: torporDataConverter() });
      this.torporClient = new TorporClient(client);
    }
    return this.torporClient;
  }

  workflowRef(handle: { workflowId: string; firstExecutionRunId?: string; runId?: string }): WorkflowRef {
    const runId = handle.firstExecutionRunId ?? handle.runId ?? '';
    return { workflowId: handle.workflowId, runId, ui: workflowUiUrl(this.options.ui, this.options.namespace, handle.workflowId, runId) };
  }

  scheduleUi(scheduleId: string): string {
    return scheduleUiUrl(this.options.ui, this.options.namespace, scheduleId);
  }

  /** JSON for scripts on stdout, or the human lines. */
  print(value: unknown, human: () => string[]): void {
    if (this.json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    else for (const line of human()) process.stdout.write(`${line}\n`);
  }

  /** Progress and notes for people, on stderr; silent with --json. */
  note(line: string): void {
    if (!this.json) process.stderr.write(`${line}\n`);
  }

  async close(): Promise<void> {
    await this.connection?.close();
  }
}
