import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { ENCRYPTED_ENCODING } from './payload-codec.js';

/** A payload as the codec server protocol carries it: metadata values and data in base64. */
interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** The Temporal UI's origin (e.g. http://localhost:8233): the only one CORS lets read the answers. */
  origin: string;
  host: string;
  port: number;
}

/**
 * Temporal's remote codec protocol: POST /encode and /decode take and return {"payloads": [...]}, so
 * the Temporal UI (or `temporal --codec-endpoint`) shows plaintext. Whoever reaches it can decrypt:
 * it binds to loopback unless told otherwise.
 */
export async function startCodecServer(options: CodecServerOptions): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    handle(options, req, res).catch((err: unknown) => reply(res, options.origin, 400, { message: (err as Error).message }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, resolve);
  });
  const { address, port } = server.address() as AddressInfo;
  return { server, url: `http://${address.includes(':') ? `[${address}]` : address}:${port}` };
}

async function handle(options: CodecServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method === 'OPTIONS') return reply(res, options.origin, 204);
  const route = req.url?.replace(/\?.*$/, '').replace(/\/+$/, '');
  if (req.method !== 'POST' || (route !== '/encode' && route !== '/decode'))
    return reply(res, options.origin, 404, { message: 'not found' });
  const body = JSON.parse(await readBody(req)) as { payloads?: JsonPayload[] };
  const payloads = (body.payloads ?? []).map(fromJson);
  const out = route === '/encode' ? await options.codec.encode(payloads) : await decodeEncrypted(options.codec, payloads);
  reply(res, options.origin, 200, { payloads: out.map(toJson) });
}

// The UI also shows histories written before encryption: it gets their plaintext payloads back as they are.
async function decodeEncrypted(codec: PayloadCodec, payloads: Payload[]): Promise<Payload[]> {
  return Promise.all(payloads.map(async (p) => (isEncrypted(p) ? ((await codec.decode([p]))[0] ?? p) : p)));
}

function isEncrypted(p: Payload): boolean {
  return Buffer.from(p.metadata?.encoding ?? new Uint8Array()).toString('utf8') === ENCRYPTED_ENCODING;
}

function reply(res: ServerResponse, origin: string, status: number, body?: unknown): void {
  res.writeHead(status, {
    'Access-Control-Allow-Origin': origin,
    'Access-Control-Allow-Methods': 'POST, OPTIONS',
    'Access-Control-Allow-Headers': 'X-Namespace, Content-Type, Authorization',
    'Access-Control-Allow-Credentials': 'true',
    Vary: 'Origin',
    ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
  });
  res.end(body === undefined ? undefined : JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Error('request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function fromJson(p: JsonPayload): Payload {
  const metadata = Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))]));
  return { metadata, data: new Uint8Array(Buffer.from(p.data ?? '', 'base64')) };
}

function toJson(p: Payload): JsonPayload {
  const metadata = Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  return { metadata, data: Buffer.from(p.data ?? new Uint8Array()).toString('base64') };
}
