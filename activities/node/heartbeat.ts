import { Context } from '@temporalio/activity';

/** Counts bytes and heartbeats them at most once a second, so a stalled agent is noticed by heartbeat timeout. */
export function byteHeartbeat(phase: string): { add: (n: number) => void; readonly bytes: number } {
  let bytes = 0;
  let last = 0;
  return {
    add(n: number) {
      bytes += n;
      const now = Date.now();
      if (now - last >= 1000) {
        last = now;
        Context.current().heartbeat({ phase, bytes });
      }
    },
    get bytes() {
      return bytes;
    },
  };
}

/** Heartbeats `details()` every `intervalMs` while `work` runs. */
export async function heartbeatWhile<T>(work: Promise<T>, details: () => Promise<unknown>, intervalMs = 1000): Promise<T> {
  const ctx = Context.current();
  const timer = setInterval(() => {
    details().then(
      (d) => ctx.heartbeat(d),
      () => undefined,
    );
  }, intervalMs);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}
