import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type SampleOptions, sampleWorkload } from '../../sample-app/workload.js';

/**
 * Where sample apps write their status: the agent runs them as nobody, who may write neither the
 * storage root nor a test's temporary directory; sticky and world-writable, as /tmp is.
 */
function statusDir(): string {
  const dir = path.join(os.tmpdir(), 'torpor-sample-status');
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o1777);
  return dir;
}

/** A small, quick sample app for tests: 16 MiB table, 1 s of initialization. */
export function testSample(storage: string, env: Record<string, string> = {}) {
  const options: SampleOptions = {
    tableMb: 16,
    initSeconds: 1,
    statusFile: path.join(statusDir(), `${path.basename(storage)}-${randomBytes(3).toString('hex')}.json`),
    env,
  };
  return { options, workload: sampleWorkload(options), hash: `t-${randomBytes(6).toString('hex')}` };
}
