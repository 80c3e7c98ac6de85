import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_ESTABLISHED,
  establishedPolicy,
  parseCheckpointRequest,
  parseOrReject,
  restoreRequestSchema,
} from '../../contract/spec.js';

const valid = { hash: 'llama-8b-abc123', node: 'gpu-node-1', runtime: 'local', workload: { command: ['python3', 'app.py'] } };

function rejection(input: unknown): ApplicationFailure {
  try {
    parseCheckpointRequest(input);
  } catch (err) {
    return err as ApplicationFailure;
  }
  throw new Error('accepted');
}

describe('checkpoint request validation', () => {
  it('fills defaults for optional fields', () => {
    const spec = parseCheckpointRequest(valid);
    expect(spec.readyTimeoutMs).toBe(600_000);
    expect(spec.exitTimeoutMs).toBe(60_000);
    expect(spec.workload.env).toEqual({});
  });

  it.each([
    ['hash', { hash: 'Bad_Hash' }],
    ['hash', { hash: '-leading-dash' }],
    ['hash', { hash: 'a/b' }],
    ['hash', { hash: 'x'.repeat(64) }],
    ['node', { node: '' }],
    ['node', { node: '../queue' }],
    ['runtime', { runtime: 'docker' }],
    ['kubernetes is required', { runtime: 'kubernetes' }],
    ['only allowed with the kubernetes runtime', { kubernetes: { namespace: 'ml', image: 'img' } }],
    [
      'workload.cwd is not supported',
      {
        runtime: 'kubernetes',
        kubernetes: { namespace: 'ml', image: 'img' },
        workload: { command: ['x'], cwd: '/srv' },
      },
    ],
    ['kubernetes.namespace', { runtime: 'kubernetes', kubernetes: { namespace: 'Bad_NS', image: 'img' } }],
    ['kubernetes.gpus', { runtime: 'kubernetes', kubernetes: { namespace: 'ml', image: 'img', gpus: -1 } }],
    ['readyTimeoutMs', { readyTimeoutMs: 0 }],
    ['readyTimeoutMs', { readyTimeoutMs: 1.5 }],
    ['exitTimeoutMs', { exitTimeoutMs: 25 * 3600 * 1000 }],
    ['workload.command', { workload: { command: [] } }],
    ['workload.command.0', { workload: { command: [''] } }],
    ['workload.command.0', { workload: { command: ['a\0b'] } }],
    ['workload.command', { workload: { command: Array(257).fill('x') } }],
    ['workload.cwd', { workload: { command: ['x'], cwd: 'rel' } }],
    ['workload.cwd', { workload: { command: ['x'], cwd: '/a/../b' } }],
    ['workload.env', { workload: { command: ['x'], env: { DYN_CHECKPOINT_SIGNAL_FILE: '/x' } } }],
    ['workload.env', { workload: { command: ['x'], env: { TORPOR_X: '1' } } }],
    ['workload.env.1BAD', { workload: { command: ['x'], env: { '1BAD': 'v' } } }],
    ['workload.command.0', { workload: { command: ['x'.repeat(4097)] } }],
    ['workload.env.BIG', { workload: { command: ['x'], env: { BIG: 'v'.repeat(65537) } } }],
    ['workload.env', { workload: { command: ['x'], env: Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`V${i}`, '1'])) } }],
    ['node', { node: 'n'.repeat(254) }],
    ['agentTimeoutMs', { agentTimeoutMs: 10 }],
    ['hash', { hash: 42 }],
    ['network.established must be "close" or "keep"', { network: { established: 'maybe' } }],
    [
      'network.established "keep" is not supported by the kubernetes runtime',
      { runtime: 'kubernetes', kubernetes: { namespace: 'ml', image: 'img' }, network: { established: 'keep' } },
    ],
  ])('rejects a bad %s as a non-retryable InvalidSpec naming the field', (field, patch) => {
    const failure = rejection({ ...valid, ...patch });
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure.type).toBe('InvalidSpec');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain(field);
    expect(failure.message).toContain('Fix the request');
  });

  it("accepts a kubernetes request with its section and fills the section's defaults", () => {
    const spec = parseCheckpointRequest({
      ...valid,
      runtime: 'kubernetes',
      kubernetes: { namespace: 'ml', image: 'img:1' },
    });
    expect(spec.kubernetes).toEqual({ namespace: 'ml', image: 'img:1', gpus: 1 });
  });

  it('closes established connections by default in both runtimes, and keeps them on request in the local one', () => {
    expect(establishedPolicy(parseCheckpointRequest(valid))).toBe('close');
    const k8s = { ...valid, runtime: 'kubernetes', kubernetes: { namespace: 'ml', image: 'img' } };
    expect(establishedPolicy(parseCheckpointRequest(k8s))).toBe('close');
    expect(establishedPolicy(parseCheckpointRequest({ ...valid, network: { established: 'keep' } }))).toBe('keep');
    expect(DEFAULT_ESTABLISHED).toEqual({ local: 'close', kubernetes: 'close' });
  });

  it('rejects input that is not an object at all', () => {
    expect(rejection(null).type).toBe('InvalidSpec');
    expect(rejection('checkpoint please').type).toBe('InvalidSpec');
  });
});

describe('restore request validation', () => {
  it('defaults the readiness probe to process-alive', () => {
    const spec = parseOrReject(restoreRequestSchema, { hash: 'h1', node: 'n1', runtime: 'local', restoreId: 'r1' }, 'restore request');
    expect(spec.readiness).toEqual({ kind: 'process-alive' });
  });

  const restoreWith = (readiness: unknown) =>
    parseOrReject(restoreRequestSchema, { hash: 'h1', node: 'n1', runtime: 'local', restoreId: 'r1', readiness }, 'restore request');

  it('accepts an HTTP probe on the loopback and fills its path and host', () => {
    expect(restoreWith({ kind: 'http', port: 8000 }).readiness).toEqual({ kind: 'http', port: 8000, path: '/', host: '127.0.0.1' });
    expect(restoreWith({ kind: 'http', port: 8000, host: '::1', path: '/health' }).readiness).toMatchObject({ host: '::1' });
  });

  it.each([
    ['readiness.host', { kind: 'http', port: 80, host: '10.0.0.1' }],
    ['readiness.host', { kind: 'http', port: 80, host: 'metadata.google.internal' }],
    ['readiness.port', { kind: 'http', port: 0 }],
    ['readiness.port', { kind: 'http', port: 70000 }],
    ['readiness.path', { kind: 'http', port: 80, path: 'health' }],
  ])('rejects an HTTP probe the agent must not run (%s)', (field, readiness) => {
    expect(() => restoreWith(readiness)).toThrow(field);
  });

  it('rejects an exec probe without a command', () => {
    expect(() =>
      parseOrReject(
        restoreRequestSchema,
        { hash: 'h1', node: 'n1', runtime: 'local', restoreId: 'r1', readiness: { kind: 'exec', command: [] } },
        'restore request',
      ),
    ).toThrow(/readiness.command/);
  });
});
