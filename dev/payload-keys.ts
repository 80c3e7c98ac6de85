import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { newPayloadKeyLine } from '../client/payload-codec.js';

const LOCAL_KEY_FILE = fileURLToPath(new URL('../.torpor/payload-keys', import.meta.url));

/**
 * The dev, demo and test stack encrypts like production: a key file generated once under .torpor/
 * (git-ignored), used unless TORPOR_PAYLOAD_KEY_FILE names another. Sets that variable for this
 * process and the workers, CLIs and clients it starts.
 */
export function useLocalPayloadKeys(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TORPOR_PAYLOAD_KEY_FILE) return env.TORPOR_PAYLOAD_KEY_FILE;
  mkdirSync(fileURLToPath(new URL('../.torpor/', import.meta.url)), { recursive: true });
  try {
    writeFileSync(LOCAL_KEY_FILE, `# Torpor payload keys of this checkout (dev, demo, tests)\n${newPayloadKeyLine('local-1')}`, {
      flag: 'wx',
      mode: 0o600,
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  env.TORPOR_PAYLOAD_KEY_FILE = LOCAL_KEY_FILE;
  return LOCAL_KEY_FILE;
}
