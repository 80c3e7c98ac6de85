import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENCRYPTED_ENCODING, payloadCodecFromEnv } from '../../client/payload-codec.js';
import { TorporHash, TorporNamespace } from '../../contract/search-attributes.js';
import type { Progress } from '../../contract/types.js';
import { killCheckpointProcesses } from '../support/leftovers.js';
import { recordHistory } from '../support/record-history.js';
import { testSample } from '../support/sample.js';
import { startTorpor, type TorporHarness } from '../support/torpor-harness.js';

describe('what the Temporal UI and callers see', () => {
  let h: TorporHarness;
  let hash: string;
  let workflowId: string;
  const phases: string[] = [];
  let final: Progress;

  beforeAll(async () => {
    h = await startTorpor();
    const sample = testSample(h.storage);
    hash = sample.hash;
    const handle = await h.torpor.startCheckpoint({ hash, node: h.node, runtime: 'local', workload: sample.workload });
    workflowId = handle.workflowId;
    const result = handle.result();
    let done = false;
    result.finally(() => {
      done = true;
    });
    while (!done) {
      const p = await h.torpor.progress(workflowId);
      if (phases.at(-1) !== p.phase) phases.push(p.phase);
      await new Promise((r) => setTimeout(r, 50));
    }
    await result;
    final = await h.torpor.progress(workflowId);
    if (phases.at(-1) !== final.phase) phases.push(final.phase);
  });
  afterAll(async () => {
    await killCheckpointProcesses(hash);
    await h.stop();
  });

  it('answers the progress query with the phase, per-step timings and bytes written', () => {
    expect(phases).toContain('waiting-ready');
    expect(phases.at(-1)).toBe('done');
    expect(final.phase).toBe('done');
    const steps = Object.keys(final.stepMs);
    expect(steps.slice(0, 5)).toEqual(['looking-up', 'starting-workload', 'waiting-ready', 'freezing-gpu', 'dumping']);
    // Without GPU state to thaw, the app is signalled and exits while the dump is committed: these end in any order.
    expect(steps.slice(5).sort()).toEqual(['committing', 'signalling', 'waiting-exit']);
    expect(final.bytesWritten).toBeGreaterThan(16 * 2 ** 20);
  });

  it('looks up and starts in one activity, and runs the node steps after ready as one (patches local-start-with-look-up, local-checkpoint-in-one-step)', async () => {
    const history = await h.client.workflow.getHandle(workflowId).fetchHistory();
    const scheduled = (history.events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    expect(scheduled.slice(0, 3)).toEqual(['startUnlessCommitted', 'waitWorkloadReady', 'checkpointProcess']);
    // The exit wait and clean-up follow only when the app took longer to exit than the agent's short wait.
    expect(scheduled.slice(3).filter((name) => name !== 'finishWorkload')).toEqual([]);
    // checkpoint-in-one-step-created.json, recorded here before the look-up joined the start, stays beside it.
    await recordHistory(h.client.workflow.getHandle(workflowId), 'checkpoint-start-with-look-up-created');
  });

  it('tags the execution with TorporHash, TorporNode and TorporPhase, so it can be found by hash', async () => {
    const handle = h.client.workflow.getHandle(workflowId);
    const description = await handle.describe();
    expect(description.typedSearchAttributes.get(TorporHash)).toBe(hash);
    expect(description.searchAttributes.TorporNode).toEqual([h.node]);
    expect(description.typedSearchAttributes.get(TorporNamespace)).toBe('local');
    expect(description.searchAttributes.TorporPhase).toEqual(['done']);
    expect(await description.staticSummary()).toBe(`Checkpoint ${hash} on ${h.node}`);
    // Visibility is eventually consistent: list until the execution shows up.
    let found: string[] = [];
    for (let i = 0; i < 50 && found.length === 0; i++) {
      found = [];
      for await (const wf of h.client.workflow.list({ query: `TorporHash = '${hash}'` })) found.push(wf.workflowId);
      if (found.length === 0) await new Promise((r) => setTimeout(r, 200));
    }
    expect(found).toContain(workflowId);
  });

  it('labels each activity with a summary, so the history reads as a story', async () => {
    const history = await h.client.workflow.getHandle(workflowId).fetchHistory();
    const summaries = (history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes).map((e) => e.userMetadata?.summary);
    // Look-up with start, ready wait, the one checkpoint step (patches local-start-with-look-up, local-checkpoint-in-one-step).
    expect(summaries.length).toBeGreaterThanOrEqual(3);
    expect(summaries.every((s) => s?.data && s.data.length > 0)).toBe(true);
    // Summaries are payloads too: ciphertext in the history, readable through the codec (as the UI's codec server shows them).
    expect(summaries.every((s) => Buffer.from(s?.metadata?.encoding ?? new Uint8Array()).toString() === ENCRYPTED_ENCODING)).toBe(true);
    const decoded = await payloadCodecFromEnv().decode(
      summaries.map((s) => ({ metadata: s?.metadata ?? {}, data: s?.data ?? new Uint8Array() })),
    );
    const text = decoded.map((s) => Buffer.from(s.data ?? new Uint8Array()).toString());
    expect(text.some((t) => t.includes('CRIU dump') && t.includes(hash))).toBe(true);
  });
});

describe('a node that no agent serves', () => {
  it("fails with AgentUnavailable after the request's agent timeout instead of hanging", async () => {
    const h = await startTorpor({ noAgent: true });
    try {
      const sample = testSample(h.storage);
      const started = Date.now();
      await expect(
        h.torpor.checkpoint({
          hash: sample.hash,
          node: 'no-agent-here',
          runtime: 'local',
          workload: sample.workload,
          agentTimeoutMs: 2000,
        }),
      ).rejects.toMatchObject({ type: 'AgentUnavailable', message: expect.stringContaining('no-agent-here') });
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await h.stop();
    }
  });
});
