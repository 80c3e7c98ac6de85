import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { torporFailure } from '../../../../contract/failures.js';
import { activityContext } from '../../heartbeat.js';
import { inParallel } from './chunks.js';
import type { SharedStoreConfig } from './config.js';
import type { ObjectStore, StoredObject } from './object-store.js';

/** Parts of a multipart upload: S3's least is 5 MiB (all but the last). */
export const MULTIPART_PART_BYTES = 8 * 2 ** 20;

const clients = new WeakMap<SharedStoreConfig, S3Client>();

/** One client per configuration, kept for the agent's life (it pools its connections). */
function s3(config: SharedStoreConfig): S3Client {
  let client = clients.get(config);
  if (client === undefined) {
    client = new S3Client({
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      ...(config.credentials ? { credentials: config.credentials } : {}),
      // Chunks carry their own sha256 (checked on every download); the SDK's default CRC trailers
      // are not understood by every S3-compatible server.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Retries belong to Temporal: an unreachable store fails the attempt, the activity is retried.
      maxAttempts: 1,
    });
    clients.set(config, client);
  }
  return client;
}

const REFUSED = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidToken', 'ExpiredToken', 'Forbidden']);

/** S3's answers that no retry can change become clear non-retryable failures; the rest (network, 5xx) stay retryable. */
const whereIs = (config: SharedStoreConfig) => `bucket "${config.bucket}"${config.endpoint ? ` at ${config.endpoint}` : ''}`;

function classify(err: unknown, config: SharedStoreConfig, what: string): unknown {
  if (!(err instanceof S3ServiceException)) return err;
  const where = whereIs(config);
  if (err.name === 'NoSuchBucket') {
    return torporFailure('SharedStoreMisconfigured', `The shared store has no ${where} (${what})`);
  }
  if (REFUSED.has(err.name) || err.$metadata.httpStatusCode === 403) {
    return torporFailure(
      'SharedStoreMisconfigured',
      `The shared store refused the agent's credentials for ${where}: ${err.name} (${what})`,
    );
  }
  return err;
}

/** The current activity's cancellation aborts the request. */
function cancelledWithActivity(): { abortSignal?: AbortSignal } {
  const signal = activityContext()?.cancellationSignal;
  return signal ? { abortSignal: signal } : {};
}

function isMissing(err: unknown): boolean {
  return err instanceof S3ServiceException && (err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata.httpStatusCode === 404);
}

/** The few calls Torpor makes, each cancelled with its activity and with S3's refusals typed. */
export class SharedStoreClient implements ObjectStore {
  constructor(readonly config: SharedStoreConfig) {}

  get prefix(): string {
    return this.config.prefix;
  }

  get parallel(): number {
    return this.config.parallel;
  }

  get where(): string {
    return whereIs(this.config);
  }

  private async send<T>(what: string, run: (client: S3Client, options: { abortSignal?: AbortSignal }) => Promise<T>): Promise<T> {
    try {
      return await run(s3(this.config), cancelledWithActivity());
    } catch (err) {
      throw classify(err, this.config, what);
    }
  }

  /** Size and metadata of `key`, or null when there is no such object (a missing bucket is an error). */
  async head(key: string): Promise<{ sizeBytes: number; metadata: Record<string, string> } | null> {
    try {
      const out = await s3(this.config).send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: key }), cancelledWithActivity());
      return { sizeBytes: out.ContentLength ?? 0, metadata: out.Metadata ?? {} };
    } catch (err) {
      // HEAD has no body, so a missing bucket reads as a plain 404 here; head's callers PUT next, which names it.
      if (isMissing(err)) return null;
      throw classify(err, this.config, `HEAD ${key}`);
    }
  }

  /** One PUT; a body of `multipartBytes` or more goes as a multipart upload (parts in parallel, each retried alone by S3's rules). */
  put(key: string, body: Buffer | string, metadata: Record<string, string>): Promise<unknown> {
    const params = { Bucket: this.config.bucket, Key: key, Body: body, Metadata: metadata };
    if (Buffer.byteLength(body) < this.config.multipartBytes) {
      return this.send(`PUT ${key}`, (client, options) => client.send(new PutObjectCommand(params), options));
    }
    return this.send(`multipart PUT ${key}`, async (client, { abortSignal }) => {
      const abortController = new AbortController();
      abortSignal?.addEventListener('abort', () => abortController.abort(), { once: true });
      // An upload that fails aborts itself: no parts are left behind to be billed.
      const upload = new Upload({
        client,
        params,
        partSize: MULTIPART_PART_BYTES,
        queueSize: 4,
        leavePartsOnError: false,
        abortController,
      });
      return upload.done();
    });
  }

  /** The object's body as a stream and its metadata, or null when there is no such object. */
  async get(key: string): Promise<{ body: AsyncIterable<Uint8Array>; metadata: Record<string, string> } | null> {
    try {
      return await this.send(`GET ${key}`, async (client, options) => {
        const out = await client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: key }), options);
        return { body: out.Body as AsyncIterable<Uint8Array>, metadata: out.Metadata ?? {} };
      });
    } catch (err) {
      if (isMissing(err) && !(err instanceof S3ServiceException && err.name === 'NoSuchBucket')) return null;
      throw err;
    }
  }

  /** One page after another of ListObjectsV2 below `prefix`: the keys, and with a delimiter the names one level down. */
  private async listPages(prefix: string, delimiter?: string): Promise<{ objects: StoredObject[]; names: string[] }> {
    const found = { objects: [] as StoredObject[], names: [] as string[] };
    let token: string | undefined;
    do {
      const page = await this.send(`LIST ${prefix}`, (client, options) =>
        client.send(
          new ListObjectsV2Command({
            Bucket: this.config.bucket,
            Prefix: prefix,
            ...(delimiter ? { Delimiter: delimiter } : {}),
            ...(token ? { ContinuationToken: token } : {}),
          }),
          options,
        ),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key) found.objects.push({ key: o.Key, sizeBytes: o.Size ?? 0, modifiedMs: o.LastModified?.getTime() ?? 0 });
      }
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix) found.names.push(p.Prefix.slice(prefix.length).replace(/\/$/, ''));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return found;
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.listPages(prefix)).objects.map((o) => o.key);
  }

  async listObjects(prefix: string): Promise<StoredObject[]> {
    return (await this.listPages(prefix)).objects;
  }

  async listNames(prefix: string): Promise<string[]> {
    return (await this.listPages(prefix, '/')).names;
  }

  /**
   * Aborts the multipart uploads below this store's prefix started before `cutoffMs`: what an agent
   * killed mid-upload left (its parts are stored, and billed, until aborted). An upload in flight
   * started moments ago; its parts' bytes are counted before the abort.
   */
  async sweepLeftovers(cutoffMs: number): Promise<{ removed: number; freedBytes: number }> {
    const swept = { removed: 0, freedBytes: 0 };
    const bucket = this.config.bucket;
    let markers: { KeyMarker?: string; UploadIdMarker?: string } = {};
    for (;;) {
      const page = await this.send(`LIST multipart uploads ${this.prefix}`, (client, options) =>
        client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: this.prefix, ...markers }), options),
      );
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || (u.Initiated?.getTime() ?? cutoffMs + 1) > cutoffMs) continue;
        const { Key, UploadId } = u;
        const parts = await this.send(`LIST parts ${Key}`, (client, options) =>
          client.send(new ListPartsCommand({ Bucket: bucket, Key, UploadId }), options),
        );
        await this.send(`ABORT multipart ${Key}`, (client, options) =>
          client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId }), options),
        );
        swept.removed += 1;
        swept.freedBytes += (parts.Parts ?? []).reduce((sum, p) => sum + (p.Size ?? 0), 0);
      }
      if (!page.IsTruncated) return swept;
      markers = {
        ...(page.NextKeyMarker ? { KeyMarker: page.NextKeyMarker } : {}),
        ...(page.NextUploadIdMarker ? { UploadIdMarker: page.NextUploadIdMarker } : {}),
      };
    }
  }

  /** One DELETE an object: DeleteObjects needs a body checksum not every S3-compatible server accepts. */
  async delete(keys: readonly string[]): Promise<void> {
    await inParallel([...keys], this.config.parallel, async (key) => {
      await this.send(`DELETE ${key}`, (client, options) =>
        client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: key }), options),
      );
    });
  }
}
