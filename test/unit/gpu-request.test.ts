import { describe, expect, it } from 'vitest';
import { parseContainerCheckpointRequest } from '../../contract/containers.js';
import { parseRestoreRequest } from '../../contract/spec.js';
import { failureOf } from '../support/failures.js';

const UUID = 'GPU-1b2c3d4e-0000-1111-2222-333344445555';
const restore = { hash: 'llm-1', node: 'gpu-node-1', runtime: 'local', restoreId: 'r1' } as const;

describe('the GPU fields of requests', () => {
  it('lets a local restore name the GPUs to restore onto, by UUID or index, in order', () => {
    expect(parseRestoreRequest({ ...restore, gpus: ['1', UUID] }).gpus).toEqual(['1', UUID]);
    expect(parseRestoreRequest(restore).gpus).toBeUndefined();
  });

  it('refuses GPU names that are neither, a GPU named twice, and gpus with the kubernetes runtime', async () => {
    for (const gpus of [['../x'], ['GPU-1'], ['MIG-1b2c3d4e-0000-1111-2222-333344445555'], [], ['0', '0'], [UUID, UUID.toLowerCase()]]) {
      expect((await failureOf(Promise.resolve().then(() => parseRestoreRequest({ ...restore, gpus })))).type).toBe('InvalidSpec');
    }
    const kubernetes = { ...restore, runtime: 'kubernetes', kubernetes: { namespace: 'ml', image: 'registry/llm:1' }, gpus: ['0'] };
    const refused = await failureOf(Promise.resolve().then(() => parseRestoreRequest(kubernetes)));
    expect(refused.message).toContain('gpus is not supported by the kubernetes runtime');
  });

  it('gives a container checkpoint the GPU lock timeout the process checkpoint has', () => {
    const spec = parseContainerCheckpointRequest({ node: 'gpu-node-1', containerId: 'abc', hash: 'llm-1' });
    expect(spec.gpuLockTimeoutMs).toBe(30_000);
  });
});
