import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { type SampleOptions, sampleWorkload } from '../../sample-app/workload.js';

/** A small, quick sample app for tests: 16 MiB table, 1 s of initialization. */
export function testSample(storage: string, env: Record<string, string> = {}) {
  const options: SampleOptions = {
    tableMb: 16,
    initSeconds: 1,
    statusFile: path.join(storage, `status-${randomBytes(3).toString('hex')}.json`),
    env,
  };
  return { options, workload: sampleWorkload(options), hash: `t-${randomBytes(6).toString('hex')}` };
}
