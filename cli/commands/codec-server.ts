import { once } from 'node:events';
import type { Command } from 'commander';
import { startCodecServer } from '../../client/codec-server.js';
import { payloadCodecFromEnv } from '../../client/payload-codec.js';
import { positiveInt } from '../options.js';
import { UsageError } from './checkpoints.js';

interface CodecServerOptions {
  host: string;
  port: number;
  origin: string;
}

/** `torpor codec-server`: lets the Temporal UI show Torpor's encrypted payloads (README "Encrypted payloads"). */
export function registerCodecServerCommand(program: Command): void {
  program
    .command('codec-server')
    .description('serve /encode and /decode with the keys of TORPOR_PAYLOAD_KEY_FILE, for the Temporal UI (--ui-codec-endpoint)')
    .option('--host <address>', 'address to listen on (anyone who reaches it can decrypt)', '127.0.0.1')
    .option('--port <port>', 'port to listen on', positiveInt, 8888)
    .option('--origin <url>', 'the Temporal UI origin allowed by CORS', process.env.TEMPORAL_UI_URL ?? 'http://localhost:8233')
    .action(async (o: CodecServerOptions) => {
      if (!process.env.TORPOR_PAYLOAD_KEY_FILE) throw new UsageError('set TORPOR_PAYLOAD_KEY_FILE to the key file the workers use');
      const { server, url } = await startCodecServer({
        codec: payloadCodecFromEnv(),
        origin: new URL(o.origin).origin,
        host: o.host,
        port: o.port,
      });
      process.stderr.write(`codec server on ${url} for the UI at ${o.origin}; Ctrl+C stops it\n`);
      await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
      server.close();
    });
}
