import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';

export const ENCRYPTED_ENCODING = 'binary/torpor-aes256gcm';
export const KEY_ID_METADATA = 'torpor-key-id';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const utf8 = new TextEncoder();

export interface PayloadKey {
  id: string;
  key: Buffer;
}

/** A codec failure that names its cause, so a misconfigured party says what to fix. */
export class PayloadCodecError extends Error {
  override name = 'PayloadCodecError';
}

/**
 * The key file (TORPOR_PAYLOAD_KEY_FILE, e.g. a mounted Secret): one `<id> <base64 of 32 bytes>` per
 * line, `#` comments allowed. The first key encrypts; every key decrypts (add the new key first to rotate).
 */
export function parsePayloadKeys(text: string, source = 'payload key file'): PayloadKey[] {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const keys = lines.map((line, i) => {
    const [id, b64, extra] = line.split(/\s+/);
    const key = Buffer.from(b64 ?? '', 'base64');
    if (!id || !/^[A-Za-z0-9._-]{1,64}$/.test(id) || extra !== undefined || key.length !== 32) {
      throw new PayloadCodecError(`${source}: line ${i + 1} is not "<key-id> <base64 of 32 random bytes>"`);
    }
    return { id, key };
  });
  if (keys.length === 0) throw new PayloadCodecError(`${source} holds no key`);
  return keys;
}

/** The key line for a fresh random key (`torpor codec-server` documents how to rotate). */
export function newPayloadKeyLine(id: string): string {
  return `${id} ${randomBytes(32).toString('base64')}\n`;
}

/**
 * AES-256-GCM over each whole payload (metadata and data), the key id in clear beside it. With no
 * keys it passes payloads through and refuses encrypted ones; with keys it refuses plaintext ones,
 * so a caller without the key cannot start work on a worker that has one.
 */
export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly byId: Map<string, Buffer>;

  constructor(private readonly keys: PayloadKey[]) {
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const first = this.keys[0];
    if (!first) return payloads;
    return payloads.map((p) => encrypt(p, first));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.decodeOne(p));
  }

  private decodeOne(payload: Payload): Payload {
    const encoding = metadataString(payload, 'encoding');
    if (encoding !== ENCRYPTED_ENCODING) {
      if (this.keys.length === 0) return payload;
      throw new PayloadCodecError(
        'plaintext payload refused: Torpor requires payloads encrypted with a key of TORPOR_PAYLOAD_KEY_FILE; configure the caller with the same key file',
      );
    }
    const id = metadataString(payload, KEY_ID_METADATA) ?? '?';
    const key = this.byId.get(id);
    if (!key) {
      const have = this.keys.length === 0 ? 'none configured' : `configured: ${[...this.byId.keys()].join(', ')}`;
      throw new PayloadCodecError(`payload encrypted with key ${id} (${have}); configure TORPOR_PAYLOAD_KEY_FILE with that key`);
    }
    return decrypt(payload.data ?? new Uint8Array(), key, id);
  }
}

function metadataString(payload: Payload, name: string): string | undefined {
  const value = payload.metadata?.[name];
  return value ? Buffer.from(value).toString('utf8') : undefined;
}

function encrypt(payload: Payload, { id, key }: PayloadKey): Payload {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(utf8.encode(id));
  const body = cipher.update(serialize(payload));
  const data = Buffer.concat([iv, body, cipher.final(), cipher.getAuthTag()]);
  return { metadata: { encoding: utf8.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8.encode(id) }, data };
}

function decrypt(data: Uint8Array, key: Buffer, id: string): Payload {
  const bytes = Buffer.from(data);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, IV_BYTES));
    decipher.setAAD(utf8.encode(id));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    const plain = Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
    return deserialize(plain);
  } catch {
    throw new PayloadCodecError(`payload encrypted with key ${id} does not decrypt with the configured key ${id}: the key files differ`);
  }
}

// The inner payload as JSON with base64 bytes: no protobuf dependency, and the codec server reads the same form.
function serialize(payload: Payload): Buffer {
  const metadata = Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  return Buffer.from(JSON.stringify({ metadata, data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64') }));
}

function deserialize(plain: Buffer): Payload {
  const parsed = JSON.parse(plain.toString('utf8')) as { metadata: Record<string, string>; data: string };
  const metadata = Object.fromEntries(Object.entries(parsed.metadata).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))]));
  return { metadata, data: new Uint8Array(Buffer.from(parsed.data, 'base64')) };
}

/** The codec every Torpor party uses: the keys of TORPOR_PAYLOAD_KEY_FILE, or none (refuses encrypted payloads clearly). */
export function payloadCodecFromEnv(env: NodeJS.ProcessEnv = process.env): AesGcmPayloadCodec {
  const file = env.TORPOR_PAYLOAD_KEY_FILE;
  if (!file) return new AesGcmPayloadCodec([]);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PayloadCodecError(`cannot read TORPOR_PAYLOAD_KEY_FILE ${file}: ${(err as Error).message}`);
  }
  return new AesGcmPayloadCodec(parsePayloadKeys(text, file));
}

/** The data converter of Torpor's clients and workers (the worker's, not the workflow bundle's). */
export function torporDataConverter(env: NodeJS.ProcessEnv = process.env): DataConverter {
  return { payloadCodecs: [payloadCodecFromEnv(env)] };
}
