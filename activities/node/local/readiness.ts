import { execa } from 'execa';
import type { ReadinessProbe } from '../../../contract/spec.js';
import type { LocalRuntimeConfig } from '../agent-config.js';

const PROBE_TIMEOUT_MS = 10_000;

/** One GET against the agent's own loopback (the schema allows no other host); 2xx is ready. */
export async function httpProbe(probe: Extract<ReadinessProbe, { kind: 'http' }>): Promise<boolean> {
  const host = probe.host.includes(':') ? `[${probe.host}]` : probe.host;
  try {
    const response = await fetch(`http://${host}:${probe.port}${probe.path}`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

/**
 * Runs a restored process's readiness probe once: alive, an exec probe's exit code 0 (run as the
 * local runtime's non-root user: the command is the caller's), or an HTTP 2xx.
 */
export async function probeOnce(probe: ReadinessProbe, owner: LocalRuntimeConfig): Promise<boolean> {
  if (probe.kind === 'process-alive') return true;
  if (probe.kind === 'http') return httpProbe(probe);
  const [program, ...args] = probe.command;
  const result = await execa(program as string, args, {
    reject: false,
    timeout: PROBE_TIMEOUT_MS,
    stdin: 'ignore',
    uid: owner.uid,
    gid: owner.gid,
    // Nothing of the agent's own environment (its keys, its credentials) reaches the caller's command.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    extendEnv: false,
  });
  return result.exitCode === 0;
}
