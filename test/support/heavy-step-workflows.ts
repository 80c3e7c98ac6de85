/**
 * A workflow that makes two heavy steps meet on one agent: a long hash (deriveSpecHash of a large
 * file) and, a second later, a CRIU dump of a small real process, with a quick look-up beside them.
 * The heavy steps' heartbeat timeout is shorter than the dump's wait in the agent's queue.
 */
import { proxyActivities, sleep } from '@temporalio/workflow';
import type { NodeActivities } from '../../activities/node/index.js';
import type { WorkloadSpec } from '../../contract/spec.js';

export interface HeavyStepRaceInput {
  node: string;
  hash: string;
  workload: WorkloadSpec;
  /** A workload whose command names the large file deriveSpecHash reads. */
  hashedWorkload: WorkloadSpec;
  heartbeatTimeoutMs: number;
}

export async function heavyStepRace(input: HeavyStepRaceInput): Promise<{ imageBytes: number; found: unknown }> {
  const taskQueue = `torpor-node-${input.node}`;
  const once = { maximumAttempts: 1 };
  const quick = proxyActivities<NodeActivities>({ taskQueue, startToCloseTimeout: '30 seconds', retry: once });
  const heavy = proxyActivities<NodeActivities>({
    taskQueue,
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: input.heartbeatTimeoutMs,
    retry: once,
  });
  const { hash } = input;
  await quick.startWorkload({ hash, workload: input.workload });
  try {
    await heavy.waitWorkloadReady({ hash, timeoutMs: 30_000 });
    const hashing = heavy.deriveSpecHash({ name: 'big', runtime: 'local', workload: input.hashedWorkload });
    await sleep(1000);
    const dumping = heavy.dumpWorkload({ hash, dumpId: `${hash}.race` });
    const found = await quick.findCheckpoint({ hash: `${hash}-none` });
    const [, dumped] = await Promise.all([hashing, dumping]);
    await quick.discardDump({ hash, dumpId: `${hash}.race` });
    return { imageBytes: dumped.imageBytes, found };
  } finally {
    await quick.stopWorkload({ hash });
    await quick.cleanupWorkload({ hash });
  }
}
