import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { shutdownOnTlsRotation } from '../../workers/connection.js';

it('drains the worker when a mounted certificate changes, so that it restarts with the new one (L2)', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'torpor-tls-'));
  const files = {
    TEMPORAL_TLS_CERT: path.join(dir, 'tls.crt'),
    TEMPORAL_TLS_KEY: path.join(dir, 'tls.key'),
    TEMPORAL_TLS_CA: path.join(dir, 'ca.crt'),
  };
  for (const f of Object.values(files)) await writeFile(f, 'old');
  let shutdowns = 0;
  const stop = shutdownOnTlsRotation({ shutdown: () => void shutdowns++ }, files, 20);
  try {
    await new Promise((r) => setTimeout(r, 200));
    expect(shutdowns).toBe(0);
    await writeFile(files.TEMPORAL_TLS_CERT, 'rotated');
    await expect.poll(() => shutdowns, { timeout: 3000 }).toBe(1);
  } finally {
    stop();
    await rm(dir, { recursive: true, force: true });
  }
});
