import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants, lstat, open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { MANIFEST_FILE } from '../../../contract/chrek.js';
import { torporFailure } from '../../../contract/failures.js';
import type { CheckpointManifest } from '../../../contract/types.js';
import { MANIFEST_MAC_FILE, type StoreLayout } from './layout.js';
import { parseManifest } from './manifest.js';
import { inVerifiedDir } from './safe-files.js';

/**
 * manifest.json says which files a checkpoint has and their digests, so whoever can write the
 * store could rewrite files and manifest consistently. The agent therefore MACs the manifest's
 * bytes (HMAC-SHA256, bound to the hash) with a key only it holds, and checks the MAC before it
 * trusts anything in the manifest. Nodes that restore each other's checkpoints share the key file
 * (a Secret mounted at TORPOR_MANIFEST_KEY_FILE on every node).
 */
const KEY_BYTES = 32;
const keys = new Map<string, Promise<Buffer>>();

async function readKey(file: string): Promise<Buffer> {
  const info = await lstat(file);
  if (!info.isFile()) throw new Error(`manifest key ${file} is not a regular file`);
  const key = await readFile(file);
  if (key.length < KEY_BYTES) throw new Error(`manifest key ${file} has ${key.length} bytes; it needs at least ${KEY_BYTES}`);
  return key;
}

/** Made once, 0600 in a 0700 directory; a concurrent maker's key wins (O_EXCL). */
async function generateKey(file: string): Promise<Buffer> {
  try {
    return await readKey(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await inVerifiedDir(
    path.dirname(file),
    async (dir) => {
      const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
      const handle = await open(dir.at(path.basename(file)), flags, 0o600).catch((err) =>
        (err as NodeJS.ErrnoException).code === 'EEXIST' ? null : Promise.reject(err),
      );
      if (handle === null) return;
      try {
        await handle.writeFile(randomBytes(KEY_BYTES));
        await handle.sync();
      } finally {
        await handle.close();
      }
    },
    { mode: 0o700 },
  );
  return readKey(file);
}

export function manifestKey(layout: StoreLayout): Promise<Buffer> {
  const { file, generate } = layout.manifestKeyFile();
  let key = keys.get(file);
  if (key === undefined) {
    key = generate ? generateKey(file) : readKey(file);
    keys.set(file, key);
    key.catch(() => keys.delete(file));
  }
  return key;
}

export function manifestMac(key: Buffer, hash: string, manifestText: string): string {
  return createHmac('sha256', key).update(`torpor-manifest-v1\0${hash}\0`).update(manifestText).digest('hex');
}

/** Writes manifest.json and its MAC into `dir` (the dump's staging directory), both fsynced. */
export async function writeManifest(layout: StoreLayout, dir: string, manifest: CheckpointManifest): Promise<void> {
  const text = `${JSON.stringify(manifest, null, 2)}\n`;
  const mac = manifestMac(await manifestKey(layout), manifest.hash, text);
  await inVerifiedDir(dir, async (d) => {
    await d.writeNew(MANIFEST_FILE, text);
    await d.writeNew(MANIFEST_MAC_FILE, `${mac}\n`);
  });
}

/**
 * The manifest of checkpoint directory `dir` for `hash`, once its MAC matches; CheckpointCorrupt
 * otherwise (edited, forged, made with another key, or committed before manifests had a MAC).
 */
export async function readAuthenticManifest(
  layout: StoreLayout,
  hash: string,
  dir = layout.checkpointDir(hash),
): Promise<CheckpointManifest> {
  const text = await readFile(path.join(dir, MANIFEST_FILE), 'utf8');
  const stored = await readFile(path.join(dir, MANIFEST_MAC_FILE), 'utf8').catch((err) => {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    throw torporFailure(
      'CheckpointCorrupt',
      `Checkpoint ${hash} was committed without a manifest MAC (by an older agent); delete it and checkpoint again`,
    );
  });
  const expected = Buffer.from(manifestMac(await manifestKey(layout), hash, text), 'hex');
  const got = Buffer.from(stored.trim(), 'hex');
  if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
    throw torporFailure(
      'CheckpointCorrupt',
      `Checkpoint ${hash}: manifest.json does not match its MAC (edited, forged, or made with another node's key); delete it and checkpoint again`,
    );
  }
  const manifest = parseManifest(text);
  if (manifest.hash !== hash)
    throw torporFailure('CheckpointCorrupt', `Checkpoint directory ${hash} holds the manifest of ${manifest.hash}`);
  return manifest;
}
