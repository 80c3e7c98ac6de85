import { chmod, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { CheckpointManifest } from '../../../contract/types.js';
import { verifyPlanFor, verifyThreads } from '../store/chunk-digests.js';
import { manifestChunkBytes } from '../store/verify-contents.js';
import { type MappedFilesWarmth, warmingMappedFiles, warmMappedFiles } from './warm-mapped-files.js';

/**
 * A CRIU action script that holds the restored tree at post-restore (every page is in place, no
 * instruction of the process has run yet) until the agent's verdict on the checkpoint's bytes: `ok`
 * lets CRIU resume it, `corrupt` (or the agent gone) makes CRIU kill the tree. So the restore reads
 * the image while the agent verifies it, and the process never runs on bytes that were not verified.
 * CRIU that runs inside a container's PID namespace cannot see the agent's PID: there the agent
 * proves it is alive by touching a lease file, and a lease older than LEASE_STALE_S counts as gone.
 */
const GATE_SCRIPT = `#!/bin/sh
[ "$CRTOOLS_SCRIPT_ACTION" = post-restore ] || exit 0
: >"$TORPOR_VERDICT.held"
alive() {
  if [ -n "$TORPOR_AGENT_PID" ]; then kill -0 "$TORPOR_AGENT_PID" 2>/dev/null; return; fi
  touched=$(stat -c %Y "$TORPOR_AGENT_LEASE" 2>/dev/null) || return 1
  [ $(($(date +%s) - touched)) -le "$TORPOR_LEASE_STALE_S" ]
}
while :; do
  [ -e "$TORPOR_VERDICT.ok" ] && exit 0
  [ -e "$TORPOR_VERDICT.corrupt" ] && exit 1
  alive || exit 1
  sleep 0.02
done
`;

const LEASE_STALE_S = 5;
const LEASE_RENEW_MS = 500;

export interface VerifiedResumeGate {
  /** CRIU flags that install the gate. */
  args: string[];
  /** The environment CRIU runs with, which the script reads. */
  env: Record<string, string>;
  /** Lets the held tree resume (`true`) or has CRIU kill it (`false`). */
  decide(ok: boolean): Promise<void>;
  /** When CRIU reached the gate (epoch ms), if it did: with the verdict's time it tells which of the two the restore waited on. */
  heldAt(): Promise<number | undefined>;
  /** Settles when CRIU reaches the gate (every page in place, so every image byte CRIU reads is cached); never, if the verdict comes first. */
  whenHeld(): Promise<void>;
}

/** How often the agent looks for the gate's mark while no verdict is given. */
const HELD_POLL_MS = 25;

/** Once CRIU holds the tree it has read every image, so the chunks left are cached: one lane per core then. */
export function lanesOnceHeld(gate: Pick<VerifiedResumeGate, 'whenHeld'>): Promise<number> {
  return gate.whenHeld().then(() => verifyThreads(1));
}

/**
 * The lanes that hash `paths` of `dir` beside a CRIU restore (verifyPlanFor, asked before CRIU reads
 * them: call it before CRIU starts), into `progress.lanes`. From a cold cache, what CRIU reads of the
 * mapped libraries, seen from `treeRoot`, is read ahead first, ahead of the lanes' reads.
 */
export async function lanesBesideCriu(
  dir: string,
  manifest: CheckpointManifest,
  paths: string[],
  treeRoot: string,
  progress: { lanes?: number; warmth?: MappedFilesWarmth },
): Promise<number> {
  const plan = verifyPlanFor(dir, paths);
  progress.lanes = plan.lanes;
  if (!plan.cached && warmingMappedFiles())
    progress.warmth = await warmMappedFiles(dir, manifest.files, manifestChunkBytes(manifest), treeRoot);
  return plan.lanes;
}

/** How the script knows the agent still lives: its PID (CRIU sees the host's PIDs) or a lease file it renews. */
export type AgentLiveness = 'pid' | 'lease';

/** Renews the lease file until the verdict; the timer never keeps the agent's process alive. */
async function leaseUntilDecided(lease: string): Promise<() => void> {
  await writeFile(lease, '');
  const timer = setInterval(() => {
    const now = new Date();
    void utimes(lease, now, now).catch(() => undefined);
  }, LEASE_RENEW_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** Writes the gate script into `dir` (the restore's own directory) and clears an earlier verdict. */
export async function verifiedResumeGate(dir: string, liveness: AgentLiveness = 'pid'): Promise<VerifiedResumeGate> {
  const script = path.join(dir, 'verified-resume.sh');
  const verdict = path.join(dir, 'verdict');
  const lease = path.join(dir, 'agent.lease');
  await writeFile(script, GATE_SCRIPT);
  await chmod(script, 0o700);
  await rm(`${verdict}.ok`, { force: true });
  await rm(`${verdict}.corrupt`, { force: true });
  await rm(`${verdict}.held`, { force: true });
  const stopLease = liveness === 'lease' ? await leaseUntilDecided(lease) : () => undefined;
  const alive =
    liveness === 'pid'
      ? { TORPOR_AGENT_PID: String(process.pid) }
      : { TORPOR_AGENT_PID: '', TORPOR_AGENT_LEASE: lease, TORPOR_LEASE_STALE_S: String(LEASE_STALE_S) };
  const heldAt = async () => (await stat(`${verdict}.held`).catch(() => null))?.mtimeMs;
  let stopWatching: () => void = () => undefined;
  let held: Promise<void> | undefined;
  const whenHeld = () => {
    held ??= new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        void heldAt().then((at) => {
          if (at === undefined) return;
          clearInterval(timer);
          resolve();
        });
      }, HELD_POLL_MS);
      timer.unref();
      stopWatching = () => clearInterval(timer);
    });
    return held;
  };
  return {
    args: ['--action-script', script],
    env: { TORPOR_VERDICT: verdict, ...alive },
    decide: async (ok) => {
      stopLease();
      stopWatching();
      await writeFile(`${verdict}.${ok ? 'ok' : 'corrupt'}`, '');
    },
    heldAt,
    whenHeld,
  };
}
