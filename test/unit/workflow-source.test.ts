import { describe, expect, it } from 'vitest';
import { workflowSource } from '../../workers/workflow-source.js';

describe('where workers take the workflow code from', () => {
  it('loads the prebuilt bundle TORPOR_WORKFLOW_BUNDLE names instead of bundling the sources (a machine without them)', () => {
    const source = workflowSource(undefined, { TORPOR_WORKFLOW_BUNDLE: '/var/tmp/torpor-gpu/js/workflows.js' });
    expect(source).toEqual({ workflowBundle: { codePath: '/var/tmp/torpor-gpu/js/workflows.js' } });
  });

  it('bundles workflows/index from source without it, and a bundle handed in code wins over the variable', () => {
    expect(workflowSource(undefined, {})).toEqual({ workflowsPath: expect.stringMatching(/workflows\/index\.(ts|js)$/) });
    const handed = { code: 'prebuilt by a test' };
    expect(workflowSource(handed, { TORPOR_WORKFLOW_BUNDLE: '/elsewhere.js' })).toEqual({ workflowBundle: handed });
  });
});
