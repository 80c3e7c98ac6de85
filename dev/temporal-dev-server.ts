import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { TORPOR_SEARCH_ATTRIBUTES } from '../contract/search-attributes.js';

/** The Temporal CLI the set-up built (scripts/setup.sh); TORPOR_TEMPORAL_CLI overrides it. */
export function temporalCliPath(): string {
  const path = process.env.TORPOR_TEMPORAL_CLI ?? fileURLToPath(new URL('../.torpor/bin/temporal', import.meta.url));
  if (!existsSync(path)) throw new Error(`Temporal CLI not found at ${path}: run "npm run setup" first`);
  return path;
}

export interface DevServerOptions {
  ui?: boolean;
  uiPort?: number;
  port?: number;
  /** Persist to this SQLite file (so a restarted server keeps its workflows); in memory when omitted. */
  dbFilename?: string;
  /** The codec server the UI decrypts payloads with (`torpor codec-server`). */
  uiCodecEndpoint?: string;
}

/** Starts the official CLI's dev server (real Temporal) with Torpor's search attributes registered. */
export function startDevServer(options: DevServerOptions = {}): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalCliPath() },
      ip: '127.0.0.1',
      ui: options.ui ?? false,
      ...(options.uiPort === undefined ? {} : { uiPort: options.uiPort }),
      ...(options.port === undefined ? {} : { port: options.port }),
      ...(options.dbFilename === undefined ? {} : { dbFilename: options.dbFilename }),
      searchAttributes: TORPOR_SEARCH_ATTRIBUTES,
      ...(options.uiCodecEndpoint === undefined ? {} : { extraArgs: ['--ui-codec-endpoint', options.uiCodecEndpoint] }),
      log: { format: 'pretty', level: 'warn' },
    },
  });
}
