import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultHeavyStepLimit } from '../../activities/node/heavy-steps.js';
import { controlWorkerTuningFromEnv } from '../../workers/control-config.js';
import { agentWorkerTuningFromEnv, nodeAgentConfigFromEnv } from '../../workers/node-agent-config.js';

const storage = mkdtempSync(path.join(os.tmpdir(), 'torpor-tuning-'));
const agentEnv = (env: Record<string, string>) => nodeAgentConfigFromEnv({ TORPOR_STORAGE_ROOT: storage, NODE_NAME: 'n1', ...env });

describe('load tuning from the environment (pure parsing)', () => {
  it('reads TORPOR_HEAVY_STEPS, derives it from the node when unset, and refuses what is not a positive whole number', () => {
    expect(agentEnv({ TORPOR_HEAVY_STEPS: '3' }).heavyStepLimit).toBe(3);
    expect(agentEnv({}).heavyStepLimit).toBe(defaultHeavyStepLimit());
    expect(() => agentEnv({ TORPOR_HEAVY_STEPS: '0' })).toThrow(/TORPOR_HEAVY_STEPS must be a positive whole number/);
    expect(() => agentEnv({ TORPOR_HEAVY_STEPS: 'two' })).toThrow(/TORPOR_HEAVY_STEPS/);
  });

  it('gives the agent 200 activity slots unless TORPOR_AGENT_ACTIVITY_SLOTS says otherwise', () => {
    expect(agentWorkerTuningFromEnv({})).toEqual({ maxConcurrentActivityTaskExecutions: 200 });
    expect(agentWorkerTuningFromEnv({ TORPOR_AGENT_ACTIVITY_SLOTS: '500' })).toEqual({ maxConcurrentActivityTaskExecutions: 500 });
    expect(() => agentWorkerTuningFromEnv({ TORPOR_AGENT_ACTIVITY_SLOTS: '-1' })).toThrow(/TORPOR_AGENT_ACTIVITY_SLOTS/);
  });

  it("leaves the control worker at the SDK's defaults unless a knob is set", () => {
    expect(controlWorkerTuningFromEnv({})).toEqual({});
    expect(
      controlWorkerTuningFromEnv({
        TORPOR_CONTROL_WORKFLOW_TASK_SLOTS: '80',
        TORPOR_CONTROL_CACHED_WORKFLOWS: '600',
        TORPOR_CONTROL_ACTIVITY_SLOTS: '150',
        TORPOR_CONTROL_WORKFLOW_THREADS: '2',
      }),
    ).toEqual({
      maxConcurrentWorkflowTaskExecutions: 80,
      maxCachedWorkflows: 600,
      maxConcurrentActivityTaskExecutions: 150,
      workflowThreadPoolSize: 2,
    });
    expect(() => controlWorkerTuningFromEnv({ TORPOR_CONTROL_CACHED_WORKFLOWS: '1.5' })).toThrow(/TORPOR_CONTROL_CACHED_WORKFLOWS/);
  });
});
