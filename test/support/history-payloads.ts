import type { WorkflowHandle } from '@temporalio/client';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { ENCRYPTED_ENCODING } from '../../client/payload-codec.js';

/** A payload in the history's JSON form (as `temporal workflow show -o json` prints it). */
export interface JsonPayload {
  metadata: Record<string, string>;
  data?: string;
}

function isPayload(value: unknown): value is JsonPayload {
  const metadata = (value as { metadata?: { encoding?: unknown } } | null)?.metadata;
  return typeof value === 'object' && value !== null && typeof metadata?.encoding === 'string';
}

/** Every payload in a history's JSON with where it sits (inputs, results, failures, memo, user metadata, search attributes). */
export function payloadEntries(json: unknown, at = ''): Array<{ path: string; payload: JsonPayload }> {
  if (isPayload(json)) return [{ path: at, payload: json }];
  if (typeof json !== 'object' || json === null) return [];
  return Object.entries(json).flatMap(([key, value]) => payloadEntries(value, `${at}.${key}`));
}

export function payloadsOf(json: unknown): JsonPayload[] {
  return payloadEntries(json).map((e) => e.payload);
}

/** The raw history as the server stores it, in JSON. */
export async function rawHistoryJson(handle: WorkflowHandle): Promise<string> {
  return historyToJSON(await handle.fetchHistory());
}

export function encodingOf(p: JsonPayload): string {
  return Buffer.from(p.metadata.encoding ?? '', 'base64').toString('utf8');
}

function fromJson(p: JsonPayload): Payload {
  const metadata = Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))]));
  return { metadata, data: new Uint8Array(Buffer.from(p.data ?? '', 'base64')) };
}

/** Each payload decoded with `codec`, as text (its data), for asserting what a history holds in plaintext. */
export async function decodedTexts(json: unknown, codec: PayloadCodec): Promise<string[]> {
  const decoded = await codec.decode(payloadsOf(json).map(fromJson));
  return decoded.map((p) => Buffer.from(p.data ?? new Uint8Array()).toString('utf8'));
}

function toJson(p: Payload): JsonPayload {
  const metadata = Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  return { metadata, data: Buffer.from(p.data ?? new Uint8Array()).toString('base64') };
}

/** The history's JSON with every payload decoded in place: the plaintext form test/histories keeps (the replayer runs without keys). */
export async function decodedHistoryJson(json: string, codec: PayloadCodec): Promise<string> {
  const history = JSON.parse(json) as unknown;
  for (const entry of payloadEntries(history)) {
    if (encodingOf(entry.payload) !== ENCRYPTED_ENCODING) continue;
    const [plain] = await codec.decode([fromJson(entry.payload)]);
    if (plain) Object.assign(entry.payload, toJson(plain));
  }
  return JSON.stringify(history, null, 2);
}
