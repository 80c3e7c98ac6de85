import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Context } from '@temporalio/activity';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';

/**
 * Fault injection for the node agent's activities, through a real worker interceptor (test only).
 * - gate: hold the named activity at `when` until released, heartbeating so a cancellation reaches it.
 * - kill: SIGKILL the agent process at `when` (once per marker file), as a crash would.
 */
export type When = 'before' | 'during' | 'after';

export interface Gate {
  activity: string;
  when: Exclude<When, 'during'>;
  reached: Promise<void>;
  release(): void;
}

export function createGate(activity: string, when: Gate['when']): Gate {
  let reach!: () => void;
  let release!: () => void;
  const reached = new Promise<void>((r) => {
    reach = r;
  });
  const released = new Promise<void>((r) => {
    release = r;
  });
  return Object.assign({ activity, when, reached, release }, { _reach: reach, _released: released });
}

async function holdAtGate(gate: Gate, ctx: Context): Promise<void> {
  const internal = gate as Gate & { _reach: () => void; _released: Promise<void> };
  internal._reach();
  const beat = setInterval(() => ctx.heartbeat({ phase: 'gated' }), 300);
  try {
    await Promise.race([internal._released, ctx.cancelled]);
  } finally {
    clearInterval(beat);
  }
}

export function gateInterceptor(gates: Gate[]): ActivityInterceptorsFactory {
  return (actx) => ({
    inbound: {
      async execute(input, next) {
        const name = actx.info.activityType;
        const before = gates.find((g) => g.activity === name && g.when === 'before');
        if (before) await holdAtGate(before, actx);
        const result = await next(input);
        const after = gates.find((g) => g.activity === name && g.when === 'after');
        if (after) await holdAtGate(after, actx);
        return result;
      },
    },
  });
}

export interface KillPoint {
  activity: string;
  when: When;
  /** For `during`: how long the activity runs before the agent dies. */
  afterMs?: number;
}

export function parseKillPoint(spec: string | undefined): KillPoint | null {
  if (!spec) return null;
  const [when, activity, afterMs] = spec.split(':');
  if (!activity || (when !== 'before' && when !== 'during' && when !== 'after')) throw new Error(`bad kill point ${spec}`);
  return { activity, when, ...(afterMs ? { afterMs: Number(afterMs) } : {}) };
}

/** Kills this process at the kill point, once: the marker file makes the restarted agent run clean. */
export function killInterceptor(point: KillPoint, markerFile: string): ActivityInterceptorsFactory {
  const die = () => {
    if (existsSync(markerFile)) return;
    writeFileSync(markerFile, `${point.when}:${point.activity}\n`);
    process.kill(process.pid, 'SIGKILL');
  };
  return (actx) => ({
    inbound: {
      async execute(input, next) {
        const hit = actx.info.activityType === point.activity;
        appendFileSync(`${markerFile}.log`, `${actx.info.activityType} attempt ${actx.info.attempt}\n`);
        if (hit && point.when === 'before') die();
        if (hit && point.when === 'during') {
          const running = next(input);
          await Promise.race([running, sleep(point.afterMs ?? 300)]);
          die();
          return running;
        }
        const result = await next(input);
        if (hit && point.when === 'after') die();
        return result;
      },
    },
  });
}
