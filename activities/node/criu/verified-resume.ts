import { chmod, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * A CRIU action script that holds the restored tree at post-restore (every page is in place, no
 * instruction of the process has run yet) until the agent's verdict on the checkpoint's bytes: `ok`
 * lets CRIU resume it, `corrupt` (or the agent gone) makes CRIU kill the tree. So the restore reads
 * the image while the agent verifies it, and the process never runs on bytes that were not verified.
 */
const GATE_SCRIPT = `#!/bin/sh
[ "$CRTOOLS_SCRIPT_ACTION" = post-restore ] || exit 0
while :; do
  [ -e "$TORPOR_VERDICT.ok" ] && exit 0
  [ -e "$TORPOR_VERDICT.corrupt" ] && exit 1
  kill -0 "$TORPOR_AGENT_PID" 2>/dev/null || exit 1
  sleep 0.02
done
`;

export interface VerifiedResumeGate {
  /** CRIU flags that install the gate. */
  args: string[];
  /** The environment CRIU runs with, which the script reads. */
  env: Record<string, string>;
  /** Lets the held tree resume (`true`) or has CRIU kill it (`false`). */
  decide(ok: boolean): Promise<void>;
}

/** Writes the gate script into `dir` (the restore's own directory) and clears an earlier verdict. */
export async function verifiedResumeGate(dir: string): Promise<VerifiedResumeGate> {
  const script = path.join(dir, 'verified-resume.sh');
  const verdict = path.join(dir, 'verdict');
  await writeFile(script, GATE_SCRIPT);
  await chmod(script, 0o700);
  await rm(`${verdict}.ok`, { force: true });
  await rm(`${verdict}.corrupt`, { force: true });
  return {
    args: ['--action-script', script],
    env: { TORPOR_VERDICT: verdict, TORPOR_AGENT_PID: String(process.pid) },
    decide: (ok) => writeFile(`${verdict}.${ok ? 'ok' : 'corrupt'}`, ''),
  };
}
