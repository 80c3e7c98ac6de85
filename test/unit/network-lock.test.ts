import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { networkLockFromEnv } from '../../workers/node-agent-config.js';

let dir: string;
let withIptables: string;
let empty: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'torpor-lock-'));
  withIptables = path.join(dir, 'with');
  empty = path.join(dir, 'empty');
  await mkdir(withIptables);
  await mkdir(empty);
  await writeFile(path.join(withIptables, 'iptables-restore'), '#!/bin/sh\n');
  await chmod(path.join(withIptables, 'iptables-restore'), 0o755);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("the agent's CRIU network lock method", () => {
  it('uses iptables where iptables-restore is on PATH, and nftables (no binary needed) where it is not', () => {
    expect(networkLockFromEnv({ PATH: `${empty}:${withIptables}` }, 'criu')).toBe('iptables');
    expect(networkLockFromEnv({ PATH: empty }, 'criu')).toBe('nftables');
  });

  it('counts an iptables-restore beside the CRIU wrapper, as runc puts that directory first on PATH', () => {
    expect(networkLockFromEnv({ PATH: empty }, path.join(withIptables, 'criu'))).toBe('iptables');
  });

  it('takes the method named in TORPOR_CRIU_NETWORK_LOCK and refuses anything else', () => {
    expect(networkLockFromEnv({ PATH: withIptables, TORPOR_CRIU_NETWORK_LOCK: 'nftables' }, 'criu')).toBe('nftables');
    expect(networkLockFromEnv({ PATH: empty, TORPOR_CRIU_NETWORK_LOCK: 'iptables' }, 'criu')).toBe('iptables');
    expect(() => networkLockFromEnv({ TORPOR_CRIU_NETWORK_LOCK: 'ebtables' }, 'criu')).toThrow(/iptables, nftables or auto/);
  });
});
