import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeAgentConfig } from '../../activities/node/agent-config.js';
import { parseCgroupMounts, parseProcCgroup } from '../../activities/node/container/cgroups.js';
import { createNodeActivities, type NodeActivities } from '../../activities/node/index.js';
import { assertCanDumpLocalWorkloads } from '../../activities/node/local/runtime-switch.js';
import { WORKLOADS_CGROUP } from '../../activities/node/local/workload-cgroup.js';
import { canDumpOtherUsers } from '../../activities/node/proc/capabilities.js';
import { identify, readProcStat } from '../../activities/node/proc/identity.js';
import { MANIFEST_MAC_FILE, StoreLayout } from '../../activities/node/store/layout.js';
import { writeManifest } from '../../activities/node/store/manifest-mac.js';
import { readRecord, type WorkloadRecord, writeRecord } from '../../activities/node/store/run-records.js';
import type { WorkloadSpec } from '../../contract/spec.js';
import type { CheckpointManifest, RestoredProcess } from '../../contract/types.js';
import { nodeAgentConfigFromEnv } from '../../workers/node-agent-config.js';
import { TEST_LOCAL_USER, testAgentConfig } from '../support/agent-config.js';
import { exists, processesOfCheckpoint } from '../support/leftovers.js';
import { evictFromPageCache } from '../support/page-cache.js';
import { testSample } from '../support/sample.js';
import { refusedWith } from './hostile-files.js';

// The local runtime as an attack surface: each case is a real attempt by a caller (who can send the
// agent any activity input) or by a workload (which runs the caller's code), and each must be
// refused with a typed, non-retryable failure, or provably have no effect, leaving its target as it was.

const NOBODY = { uid: 65534, gid: 65534 };
const env = new MockActivityEnvironment();
const roots: string[] = [];
const children: ChildProcess[] = [];

async function agentOver(overrides: Partial<NodeAgentConfig>): Promise<{ agent: NodeActivities; layout: StoreLayout }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'torpor-hostile-local-'));
  roots.push(root);
  const config = testAgentConfig(root, overrides);
  return { agent: createNodeActivities(config), layout: new StoreLayout(root) };
}

/** A process of the test's own (no DYN_CHECKPOINT_HASH): a stranger the agent must never signal. */
function stranger(extraEnv: Record<string, string> = {}): ChildProcess {
  const child = spawn('sleep', ['120'], { detached: true, stdio: 'ignore', env: { PATH: process.env.PATH ?? '', ...extraEnv } });
  children.push(child);
  return child;
}

/** Alive and not a zombie (the test process, or init, may not have reaped it yet). */
const alive = async (pid: number) => {
  const state = (await readProcStat(pid))?.state;
  return state !== undefined && state !== 'Z' && state !== 'X';
};
const start = (agent: NodeActivities, input: { hash: string; workload: WorkloadSpec }) =>
  env.run(agent.startWorkload, input) as Promise<{ pid: number; logFile: string }>;
const shWorkload = (script: string, extraEnv: Record<string, string> = {}): WorkloadSpec => ({
  command: ['sh', '-c', script],
  env: extraEnv,
});

const procCgroups = async (pid: number) => parseProcCgroup(await readFile(`/proc/${pid}/cgroup`, 'utf8'));

/** `pid` is in cgroup `name` and shares no cgroup but a hierarchy's root with the agent (this test process). */
async function expectOwnCgroup(pid: number, name: string): Promise<void> {
  const theirs = await procCgroups(pid);
  for (const agent of (await procCgroups(process.pid)).filter((c) => c.path !== '/')) {
    const line = theirs.find((c) => c.controllers.join() === agent.controllers.join());
    expect(line?.path, `pid ${pid} in ${agent.controllers.join() || 'unified'}`).not.toBe(agent.path);
    expect(line?.path.startsWith(`${agent.path}/`)).toBe(false);
  }
  expect(theirs.map((c) => c.path)).toContain(`/${WORKLOADS_CGROUP}/${name}`);
}

/** The directories of cgroup `name` that still exist, in any mounted hierarchy. */
async function cgroupLeft(name: string): Promise<string[]> {
  const mounts = parseCgroupMounts(await readFile('/proc/self/mountinfo', 'utf8'));
  const dirs = mounts.map((m) => path.join(m.mountPoint, WORKLOADS_CGROUP, name));
  const left: string[] = [];
  for (const dir of dirs) if (await exists(dir)) left.push(dir);
  return left;
}

afterAll(async () => {
  for (const child of children) if (child.pid) process.kill(-child.pid, 'SIGKILL');
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

describe('the local runtime is off unless a node turns it on', () => {
  let agent: NodeActivities;
  let layout: StoreLayout;
  beforeAll(async () => {
    ({ agent, layout } = await agentOver({ localRuntime: undefined as never }));
  });

  it('refuses startWorkload with RuntimeDisabled, spawns nothing and creates no run directory', async () => {
    const hash = `off-${randomBytes(4).toString('hex')}`;
    const witness = path.join(layout.root, 'started-anyway');
    const message = await refusedWith(
      env.run(agent.startWorkload, { hash, workload: shWorkload(`touch ${witness}; sleep 60`) }),
      'RuntimeDisabled',
    );
    expect(message).toContain('TORPOR_LOCAL_RUNTIME=on');
    await sleep(300);
    expect(await processesOfCheckpoint(hash)).toEqual([]);
    expect(await exists(witness)).toBe(false);
    expect(await exists(layout.runDir(hash))).toBe(false);
  });

  it('refuses an exec readiness probe with RuntimeDisabled before running it', async () => {
    const witness = path.join(layout.root, 'probed-anyway');
    const probe = { kind: 'exec' as const, command: ['touch', witness] };
    await refusedWith(
      env.run(agent.waitRestoredReady, { hash: 'h1', restoreId: 'r1', readiness: probe, timeoutMs: 1000 }),
      'RuntimeDisabled',
    );
    expect(await exists(witness)).toBe(false);
  });

  it('refuses restoreCheckpoint with RuntimeDisabled and writes no restore directory', async () => {
    await refusedWith(env.run(agent.restoreCheckpoint, { hash: 'h1', restoreId: 'r1' }), 'RuntimeDisabled');
    expect(await exists(layout.restoresRoot())).toBe(false);
  });

  it('is off when TORPOR_LOCAL_RUNTIME is not set, and refuses a value that is neither on nor off', () => {
    const base = { TORPOR_STORAGE_ROOT: layout.root, NODE_NAME: 'n1', PATH: process.env.PATH };
    expect(nodeAgentConfigFromEnv(base).localRuntime).toBeUndefined();
    expect(() => nodeAgentConfigFromEnv({ ...base, TORPOR_LOCAL_RUNTIME: 'yes' })).toThrow(/on or off/);
    expect(nodeAgentConfigFromEnv({ ...base, TORPOR_LOCAL_RUNTIME: 'on' }).localRuntime).toEqual(NOBODY);
  });

  it.each([
    ['TORPOR_LOCAL_UID', '0'],
    ['TORPOR_LOCAL_GID', '0'],
  ])('refuses to start an agent with %s=%s (root)', (name, value) => {
    const base = { TORPOR_STORAGE_ROOT: layout.root, NODE_NAME: 'n1', PATH: process.env.PATH, TORPOR_LOCAL_RUNTIME: 'on' };
    expect(() => nodeAgentConfigFromEnv({ ...base, [name]: value })).toThrow(/never run as root/);
  });
});

describe('an agent refuses local workloads it could not checkpoint', () => {
  it('refuses to start with workloads of another user when it lacks CAP_SYS_RESOURCE (CRIU could not dump them)', () => {
    expect(() => assertCanDumpLocalWorkloads({ localRuntime: NOBODY }, false)).toThrow(/CAP_SYS_RESOURCE/);
    expect(() => assertCanDumpLocalWorkloads({ localRuntime: NOBODY }, true)).not.toThrow();
    expect(() => assertCanDumpLocalWorkloads({}, false)).not.toThrow();
    expect(canDumpOtherUsers('CapEff:\t000001fffeffffff\n')).toBe(false);
    expect(canDumpOtherUsers('CapEff:\t000001ffffffffff\n')).toBe(true);
  });
});

describe('a workload runs as the configured non-root user and cannot touch the agent files', () => {
  let agent: NodeActivities;
  let layout: StoreLayout;
  beforeAll(async () => {
    ({ agent, layout } = await agentOver({ localRuntime: NOBODY }));
  });

  it('runs the workload as uid/gid 65534 without supplementary groups; its attacks on its run directory fail', async () => {
    const hash = `uid-${randomBytes(4).toString('hex')}`;
    const record = layout.workloadRecord(hash);
    const run = layout.runDir(hash);
    const script = [
      'echo up > "$DYN_CHECKPOINT_READY_FILE"',
      'sleep 0.5',
      `echo forged > ${record}`,
      `rm -f ${record}`,
      `ln -s /etc/shadow ${run}/evil`,
      `echo forged > ${run}/restored`,
      'exec sleep 60',
    ].join('; ');
    const { pid } = await start(agent, { hash, workload: shWorkload(script) });
    await env.run(agent.waitWorkloadReady, { hash, timeoutMs: 10_000 });
    const before = await readFile(record, 'utf8');
    await sleep(1000);
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    expect(status).toMatch(/^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
    expect(status).toMatch(/^Gid:\s+65534\s+65534\s+65534\s+65534$/m);
    expect(status).toMatch(/^Groups:\s*$/m);
    expect(await readFile(record, 'utf8')).toBe(before);
    expect(JSON.parse(before).pid).toBe(pid);
    expect(await exists(path.join(run, 'evil'))).toBe(false);
    expect(await exists(path.join(run, 'restored'))).toBe(false);
    expect((await stat(record)).mode & 0o777).toBe(0o600);
    await env.run(agent.stopWorkload, { hash });
  });

  it('runs an exec readiness probe as that user, without the agent environment', async () => {
    const hash = `probe-${randomBytes(4).toString('hex')}`;
    const target = stranger();
    const id = await identify(target.pid as number);
    await writeRecord(layout.restoreFiles(hash, 'r1').record, { ...id, hash, restoreId: 'r1', logFile: '', criuMs: 0 });
    process.env.TORPOR_HOSTILE_SECRET = 'agent-only';
    // Ready only as nobody and without the agent's variables; otherwise the wait times out.
    const probe = {
      kind: 'exec' as const,
      command: ['sh', '-c', '[ "$(id -u):$(id -g)" = 65534:65534 ] && [ -z "$TORPOR_HOSTILE_SECRET" ]'],
    };
    await env.run(agent.waitRestoredReady, { hash, restoreId: 'r1', readiness: probe, timeoutMs: 5000 });
    delete process.env.TORPOR_HOSTILE_SECRET;
  });

  it('records an exit by SIGKILL as 137 and one by SIGTERM as 143 (128 + signo)', async () => {
    for (const [signal, code] of [
      ['SIGKILL', 137],
      ['SIGTERM', 143],
    ] as const) {
      const hash = `sig-${randomBytes(4).toString('hex')}`;
      const { pid } = await start(agent, { hash, workload: shWorkload('exec sleep 60') });
      process.kill(pid, signal);
      const exit = await env.run(agent.waitWorkloadExit, { hash, timeoutMs: 5000 });
      expect(exit).toMatchObject({ exited: true, exitCode: code });
      await env.run(agent.cleanupWorkload, { hash });
    }
  });
});

describe("a workload lives in a cgroup of its own, outside the agent's, and stops with it", () => {
  it('leaves the agent cgroup before the command runs; stop kills every process of the cgroup, a detached one too, and removes it', async () => {
    const { agent, layout } = await agentOver({ localRuntime: NOBODY });
    const hash = `cg-${randomBytes(4).toString('hex')}`;
    const script = 'setsid sleep 300 & echo "detached $!"; echo up > "$DYN_CHECKPOINT_READY_FILE"; exec sleep 300';
    const { pid, logFile } = await start(agent, { hash, workload: shWorkload(script) });
    await env.run(agent.waitWorkloadReady, { hash, timeoutMs: 10_000 });
    const detached = Number(/detached (\d+)/.exec(await readFile(logFile, 'utf8'))?.[1]);
    expect(detached).toBeGreaterThan(0);
    // `setsid` runs in the background child: its own group may come a moment after the ready file.
    for (let i = 0; i < 100 && (await readProcStat(detached))?.pgid !== detached; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await readProcStat(detached))?.pgid).toBe(detached);
    await expectOwnCgroup(pid, hash);
    await expectOwnCgroup(detached, hash);
    expect(await cgroupLeft(hash)).not.toEqual([]);
    expect(await env.run(agent.stopWorkload, { hash })).toEqual({ stopped: true });
    for (const p of [pid, detached]) expect(await alive(p), `pid ${p}`).toBe(false);
    expect(await cgroupLeft(hash)).toEqual([]);
    await env.run(agent.cleanupWorkload, { hash });
    expect(await exists(layout.workloadRecord(hash))).toBe(false);
  });
});

describe('records never make the agent signal a process that is not the workload', () => {
  let agent: NodeActivities;
  let layout: StoreLayout;
  beforeAll(async () => {
    ({ agent, layout } = await agentOver({ localRuntime: NOBODY }));
  });

  async function forgedRecord(hash: string, pid: number): Promise<void> {
    const id = await identify(pid);
    const record = { ...id, hash, runId: 'forged', workload: { command: ['x'], envNames: [] }, contract: layout.workloadFiles(hash) };
    await writeRecord(layout.workloadRecord(hash), record);
  }

  it('stopWorkload and cleanupWorkload leave a process alone whose environment lacks the hash', async () => {
    const target = stranger();
    await forgedRecord('stranger', target.pid as number);
    expect(await env.run(agent.stopWorkload, { hash: 'stranger' })).toEqual({ stopped: false });
    await env.run(agent.cleanupWorkload, { hash: 'stranger' });
    await sleep(200);
    expect(await alive(target.pid as number)).toBe(true);
  });

  it('stopWorkload leaves alone a process that carries another checkpoint hash', async () => {
    const target = stranger({ DYN_CHECKPOINT_HASH: 'other' });
    await forgedRecord('mine', target.pid as number);
    expect(await env.run(agent.stopWorkload, { hash: 'mine' })).toEqual({ stopped: false });
    expect(await alive(target.pid as number)).toBe(true);
  });

  it('stopRestored leaves alone a process its restored.json names when it lacks the hash', async () => {
    const target = stranger();
    const id = await identify(target.pid as number);
    await writeRecord(layout.restoreFiles('h2', 'r1').record, { ...id, hash: 'h2', restoreId: 'r1', logFile: '', criuMs: 0 });
    expect(await env.run(agent.stopRestored, { hash: 'h2', restoreId: 'r1' })).toEqual({ stopped: false });
    expect(await alive(target.pid as number)).toBe(true);
  });

  /** What an attempt interrupted between its intent record (start id attempt-1) and its own record leaves: the record, and a process carrying the hash and `startId`. */
  async function interruptedStart(prefix: string, startId: string) {
    const hash = `${prefix}-${randomBytes(4).toString('hex')}`;
    const runId = env.context.info.workflowExecution?.runId ?? '';
    const leader = stranger({ DYN_CHECKPOINT_HASH: hash, TORPOR_START_ID: startId });
    await mkdir(layout.runDir(hash), { recursive: true });
    const intent = { pid: 0, startTime: 0, hash, runId, startId: 'attempt-1', workload: { command: ['sleep'], envNames: [] } };
    await writeRecord(layout.workloadRecord(hash), { ...intent, contract: layout.workloadFiles(hash) });
    return { hash, leader };
  }

  it('a retried start adopts the process an interrupted attempt spawned instead of starting a second', async () => {
    const { hash, leader: stray } = await interruptedStart('stray', 'attempt-1');
    const started = await start(agent, { hash, workload: shWorkload('exec sleep 60') });
    expect(started.pid).toBe(stray.pid);
    expect(await processesOfCheckpoint(hash)).toEqual([stray.pid]);
    expect((await readRecord<WorkloadRecord>(layout.workloadRecord(hash)))?.pid).toBe(stray.pid);
  });

  it('a retried start neither adopts nor signals a process with the hash but another start id (a restored copy)', async () => {
    const { hash, leader: copy } = await interruptedStart('copy', 'someone-else');
    const started = await start(agent, { hash, workload: shWorkload('exec sleep 60') });
    expect(started.pid).not.toBe(copy.pid);
    expect(await alive(copy.pid as number)).toBe(true);
    await env.run(agent.stopWorkload, { hash });
    expect(await alive(copy.pid as number)).toBe(true);
  });
});

describe('a local restore trusts no path from manifest.json, and no environment value is stored', () => {
  let agent: NodeActivities;
  let layout: StoreLayout;
  let victims: string;
  const secret = `s3cret-${randomBytes(8).toString('hex')}`;
  const hash = `h2-${randomBytes(4).toString('hex')}`;
  const results: unknown[] = [];

  /** Rewrites the committed manifest as a tenant with a valid MAC could have made it (e.g. from a container dump). */
  async function reseal(edit: (m: CheckpointManifest) => void): Promise<void> {
    const dir = layout.checkpointDir(hash);
    const manifest = JSON.parse(await readFile(layout.manifestFile(hash), 'utf8')) as CheckpointManifest;
    edit(manifest);
    await rm(layout.manifestFile(hash));
    await rm(path.join(dir, MANIFEST_MAC_FILE), { force: true });
    await writeManifest(layout, dir, manifest);
  }
  const outside = () => ({
    readyFile: path.join(victims, 'ready'),
    signalFile: path.join(victims, 'precious'),
    restoreMarkerFile: path.join(victims, 'marker'),
    logFile: path.join(victims, 'log'),
    location: victims,
  });
  const expectVictimsUntouched = async () => {
    expect(await readFile(path.join(victims, 'precious'), 'utf8')).toBe('precious\n');
    expect((await readdir(victims)).sort()).toEqual(['precious']);
  };

  beforeAll(async () => {
    // CRIU dumps this one: as nobody where root may read its rlimits, else as root (see TEST_LOCAL_USER).
    ({ agent, layout } = await agentOver({ localRuntime: TEST_LOCAL_USER }));
    victims = await mkdtemp(path.join(os.tmpdir(), 'torpor-victims-'));
    roots.push(victims);
    await writeFile(path.join(victims, 'precious'), 'precious\n');
    const sample = testSample(layout.root, { TOP_SECRET: secret });
    results.push(await env.run(agent.startWorkload, { hash, workload: sample.workload }));
    results.push(await env.run(agent.waitWorkloadReady, { hash, timeoutMs: 30_000 }));
    results.push(await env.run(agent.dumpWorkload, { hash, dumpId: `${hash}.d1` }));
    results.push(await env.run(agent.commitCheckpoint, { hash, dumpId: `${hash}.d1`, startToReadyMs: 0, dumpMs: 0, gpu: null }));
    const { pid } = results[0] as { pid: number };
    await env.run(agent.stopWorkload, { hash });
    while (await alive(pid)) await sleep(20);
  }, 60_000);

  it('writes no environment value into the store (outside the memory images) nor into activity results', async () => {
    const hits: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        // CRIU's images are the process's memory, which holds its environment by nature.
        if (entry.isDirectory() && entry.name !== 'images') await walk(full);
        else if (entry.isFile() && (await readFile(full)).includes(secret)) hits.push(full);
      }
    };
    await walk(layout.root);
    expect(hits).toEqual([]);
    expect(JSON.stringify(results)).not.toContain(secret);
    const manifest = JSON.parse(await readFile(layout.manifestFile(hash), 'utf8')) as CheckpointManifest;
    expect(manifest.workload.envNames).toContain('TOP_SECRET');
  });

  it('refuses a checkpoint whose manifest says another runtime, touching none of its paths', async () => {
    await reseal((m) => {
      m.runtime = 'kubernetes';
      m.contract = outside();
    });
    const message = await refusedWith(env.run(agent.restoreCheckpoint, { hash, restoreId: 'r1' }), 'TargetNotAllowed');
    expect(message).toContain('kubernetes runtime');
    await expectVictimsUntouched();
    expect(await exists(layout.workloadFiles(hash).restoreMarkerFile)).toBe(false);
  });

  it('restores with the marker and signal paths of its own layout, never those manifest.json names', async () => {
    await reseal((m) => {
      m.runtime = 'local';
      m.contract = outside();
    });
    // From a cold page cache, what CRIU reads of the libraries the process had mapped is read ahead first.
    await evictFromPageCache(layout.checkpointDir(hash));
    const restored = (await env.run(agent.restoreCheckpoint, { hash, restoreId: 'r2' })) as RestoredProcess;
    expect(restored.mappedFilesWarmed).toBeGreaterThan(0);
    try {
      // In a cgroup of its own, never the agent's: CRIU's default would recreate the dumped one.
      await expectOwnCgroup(restored.pid, `${hash}.r2`);
      expect(await readFile(layout.workloadFiles(hash).restoreMarkerFile, 'utf8')).toBe('r2\n');
      await expectVictimsUntouched();
    } finally {
      await env.run(agent.stopRestored, { hash, restoreId: 'r2' });
    }
    expect(await alive(restored.pid)).toBe(false);
    expect(await cgroupLeft(`${hash}.r2`)).toEqual([]);
    await expectVictimsUntouched();
  });
});
