import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertSupportedCriu, describeCriu } from '../../activities/node/criu/runner.js';
import { createNodeAgent } from '../../workers/node-agent.js';
import { nodeAgentConfigFromEnv } from '../../workers/node-agent-config.js';

let dir: string;

/** A stand-in `criu` that only answers --version as the given CRIU release does (the check runs nothing else). */
async function criuPrinting(version: string): Promise<string> {
  const file = path.join(dir, `criu-${version}`);
  await writeFile(file, `#!/bin/sh\necho "Version: ${version}"\n`);
  await chmod(file, 0o755);
  return file;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'torpor-criu-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("the node agent's CRIU version check", () => {
  it('refuses to start with CRIU 4.1.1, saying which it found, where, and what it needs', async () => {
    const old = await criuPrinting('4.1.1');
    const config = nodeAgentConfigFromEnv({
      ...process.env,
      TORPOR_STORAGE_ROOT: path.join(dir, 'store'),
      TORPOR_CRIU: old,
      NODE_NAME: 'n1',
    });
    // The check comes before any connection is used: a worker is never created.
    await expect(createNodeAgent({} as NativeConnection, 'default', config)).rejects.toThrow(
      `Torpor needs CRIU 4.2.0 or newer, but found CRIU 4.1.1 at ${old}`,
    );
  });

  it('refuses a CRIU that does not run', async () => {
    await expect(assertSupportedCriu(path.join(dir, 'no-such-criu'))).rejects.toThrow(/could not read/);
  });

  it('accepts the CRIU the set-up installs', async () => {
    expect(await assertSupportedCriu('criu')).toMatch(/^4\.([2-9]|\d\d)/);
  });

  it('tells the patched CRIU the set-up makes the default from the stock one beside it', async () => {
    const patched = path.resolve('.torpor/bin/criu');
    const stock = path.resolve('.torpor/bin/criu-stock');
    expect(await describeCriu(patched)).toBe(`${patched} 4.2.1 (parallel page restore, parallel page write)`);
    expect(await describeCriu(stock)).toBe(`${stock} 4.2.1 (stock page restore)`);
  });
});
