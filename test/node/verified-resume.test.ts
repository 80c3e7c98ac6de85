import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifiedResumeGate } from '../../activities/node/criu/verified-resume.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'torpor-gate-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Runs the gate as CRIU runs an action script: its path, the action in CRTOOLS_SCRIPT_ACTION, the gate's environment. */
function runAs(gate: Awaited<ReturnType<typeof verifiedResumeGate>>, action: string, env: Record<string, string> = {}) {
  const script = gate.args[gate.args.indexOf('--action-script') + 1] as string;
  const run = execa(script, [], { reject: false, env: { ...gate.env, CRTOOLS_SCRIPT_ACTION: action, ...env } });
  const state = { finished: false };
  void run.finally(() => {
    state.finished = true;
  });
  return Object.assign(run, { state });
}

describe('the gate CRIU runs before a restored tree resumes (real shell script)', () => {
  it('holds post-restore until the verdict, then lets the tree resume when the bytes matched', async () => {
    const gate = await verifiedResumeGate(dir);
    expect(await gate.heldAt()).toBeUndefined();
    const before = Date.now();
    const held = runAs(gate, 'post-restore');
    await sleep(300);
    expect(held.state.finished).toBe(false);
    // When CRIU reached the gate: what a restore reports beside its verification's end.
    const heldAt = await gate.heldAt();
    expect(heldAt).toBeGreaterThanOrEqual(before - 1000);
    expect(heldAt).toBeLessThanOrEqual(Date.now());
    await gate.decide(true);
    expect((await held).exitCode).toBe(0);
  });

  it('tells the agent when CRIU reaches the gate, so the verification can widen then', async () => {
    const gate = await verifiedResumeGate(dir);
    const state = { held: false };
    void gate.whenHeld().then(() => {
      state.held = true;
    });
    await sleep(200);
    expect(state.held).toBe(false);
    const held = runAs(gate, 'post-restore');
    await gate.whenHeld();
    expect(await gate.heldAt()).toBeDefined();
    await gate.decide(true);
    expect((await held).exitCode).toBe(0);
  });

  it('fails post-restore (CRIU then kills the tree) when the bytes did not match', async () => {
    const gate = await verifiedResumeGate(dir);
    const held = runAs(gate, 'post-restore');
    await gate.decide(false);
    expect((await held).exitCode).toBe(1);
  });

  it('fails post-restore when the agent that would decide is gone, instead of waiting forever', async () => {
    const gate = await verifiedResumeGate(dir);
    const gone = await execa('sh', ['-c', 'echo $$']);
    expect((await runAs(gate, 'post-restore', { TORPOR_AGENT_PID: gone.stdout.trim() })).exitCode).toBe(1);
  });

  it('lets every other action pass at once, and a new restore starts without an earlier verdict', async () => {
    const first = await verifiedResumeGate(dir);
    await first.decide(true);
    const second = await verifiedResumeGate(dir);
    expect(await second.heldAt()).toBeUndefined();
    expect((await runAs(second, 'pre-restore')).exitCode).toBe(0);
    expect(await second.heldAt()).toBeUndefined();
    const held = runAs(second, 'post-restore');
    await sleep(200);
    expect(held.state.finished).toBe(false);
    await second.decide(false);
    expect((await held).exitCode).toBe(1);
  });
});
