import { mkdtemp, rm, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifiedResumeGate } from '../../activities/node/criu/verified-resume.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'torpor-gate-lease-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Runs the gate as CRIU runs an action script at post-restore, with the gate's environment. */
function postRestore(gate: Awaited<ReturnType<typeof verifiedResumeGate>>, env: Record<string, string> = {}) {
  const script = gate.args[gate.args.indexOf('--action-script') + 1] as string;
  const run = execa(script, [], { reject: false, env: { ...gate.env, CRTOOLS_SCRIPT_ACTION: 'post-restore', ...env } });
  const state = { finished: false };
  void run.finally(() => {
    state.finished = true;
  });
  return Object.assign(run, { state });
}

describe('the gate of a restore whose CRIU cannot see the agent’s PID (a container’s PID namespace): a lease file', () => {
  it('holds while the agent renews its lease, and follows the verdict', async () => {
    const gate = await verifiedResumeGate(dir, 'lease');
    expect(gate.env.TORPOR_AGENT_PID).toBe('');
    const held = postRestore(gate);
    await sleep(300);
    expect(held.state.finished).toBe(false);
    await gate.decide(false);
    expect((await held).exitCode).toBe(1);

    const again = await verifiedResumeGate(dir, 'lease');
    const resumed = postRestore(again);
    await again.decide(true);
    expect((await resumed).exitCode).toBe(0);
  });

  it('fails (CRIU then kills the tree) when the lease went stale: the agent is gone', async () => {
    const gate = await verifiedResumeGate(dir, 'lease');
    const lease = gate.env.TORPOR_AGENT_LEASE as string;
    // Another, stale lease: as the agent's would be once nobody renewed it for a minute.
    const stale = path.join(dir, 'stale.lease');
    await execa('cp', [lease, stale]);
    const minuteAgo = new Date(Date.now() - 60_000);
    await utimes(stale, minuteAgo, minuteAgo);
    expect((await postRestore(gate, { TORPOR_AGENT_LEASE: stale })).exitCode).toBe(1);
    expect((await postRestore(gate, { TORPOR_AGENT_LEASE: path.join(dir, 'no-such.lease') })).exitCode).toBe(1);
    await gate.decide(false);
  });
});
