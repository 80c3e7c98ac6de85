import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { torporFailure } from '../../../../contract/failures.js';
import { activityContext } from '../../heartbeat.js';
import type { SharedStoreConfig } from './config.js';

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
function classify(err: unknown, config: SharedStoreConfig, what: string): unknown {
  if (!(err instanceof S3ServiceException)) return err;
  const where = `bucket "${config.bucket}"${config.endpoint ? ` at ${config.endpoint}` : ''}`;
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
export class SharedStoreClient {
  constructor(readonly config: SharedStoreConfig) {}

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

  put(key: string, body: Buffer | string, metadata: Record<string, string>): Promise<unknown> {
    return this.send(`PUT ${key}`, (client, options) =>
      client.send(new PutObjectCommand({ Bucket: this.config.bucket, Key: key, Body: body, Metadata: metadata }), options),
    );
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
}
