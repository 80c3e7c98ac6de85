import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { findOverlayRootfs } from '../../activities/node/container/overlay-layers.js';
import { checkContainerId, checkPod, verifyContainerTarget } from '../../activities/node/container/target-policy.js';
import type { RuncContainer } from '../../activities/node/container/types.js';

const policy = { allowedNamespaces: ['team-a'], checkpointSourceLabel: 'torpor.dev/checkpoint-source' };
const container: RuncContainer = {
  id: 'app',
  initPid: 4242,
  status: 'running',
  bundle: '/run/bundles/app',
  rootfs: '/run/bundles/app/rootfs',
  args: ['python3', '/app/app.py'],
  env: [],
  mounts: [],
  annotations: {
    'io.kubernetes.pod.namespace': 'team-a',
    'io.kubernetes.pod.name': 'app-0',
    'io.kubernetes.container.name': 'main',
    'torpor.dev/checkpoint-source': 'true',
  },
};

function refusal(run: () => unknown): ApplicationFailure {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ApplicationFailure);
    return error as ApplicationFailure;
  }
  throw new Error('expected a refusal');
}

describe('container target verification', () => {
  it('accepts a labelled running container in an allowed namespace and reads its pod labels', () => {
    expect(verifyContainerTarget(container, policy).labels).toEqual({ podNamespace: 'team-a', podName: 'app-0', containerName: 'main' });
  });

  it.each([
    [
      'without the checkpoint-source label',
      { ...container, annotations: { ...container.annotations, 'torpor.dev/checkpoint-source': 'false' } },
    ],
    ['in a namespace not allowed', { ...container, annotations: { ...container.annotations, 'io.kubernetes.pod.namespace': 'team-b' } }],
    ['without a pod namespace', { ...container, annotations: { 'torpor.dev/checkpoint-source': 'true' } }],
    ['that is not running', { ...container, status: 'stopped', initPid: 0 }],
  ])('refuses a container %s as TargetNotAllowed, non-retryable', (_, target) => {
    const failure = refusal(() => verifyContainerTarget(target, policy));
    expect(failure.type).toBe('TargetNotAllowed');
    expect(failure.nonRetryable).toBe(true);
  });

  it('reads the pod from containerd’s CRI annotations, and on a cluster node takes the label from the pod in the API', () => {
    const containerd: RuncContainer = {
      ...container,
      annotations: {
        'io.kubernetes.cri.sandbox-namespace': 'team-a',
        'io.kubernetes.cri.sandbox-name': 'llm-0',
        'io.kubernetes.cri.container-name': 'main',
      },
    };
    const labels = { podNamespace: 'team-a', podName: 'llm-0', containerName: 'main' };
    const facts = { labels: { 'torpor.dev/checkpoint-source': 'true' }, nodeName: 'node-a', containerIds: ['app'] };
    expect(verifyContainerTarget(containerd, policy, { facts, nodeName: 'node-a' }).labels).toEqual(labels);
    // Without the API, the label must be on the container itself.
    expect(refusal(() => verifyContainerTarget(containerd, policy)).message).toContain('does not carry');
    expect(refusal(() => verifyContainerTarget(containerd, policy, { facts, nodeName: 'node-b' })).message).toContain('not on this agent');
    expect(refusal(() => checkPod('other', labels, facts, 'node-a')).message).toContain('does not list container other');
    expect(refusal(() => checkPod('app', labels, undefined, 'node-a')).message).toContain('does not know');
  });

  it('refuses container IDs runc would not accept, or that could be read as options or paths', () => {
    for (const id of ['', '-f', '../app', 'a/b', 'a b']) expect(refusal(() => checkContainerId(id)).type).toBe('InvalidSpec');
    expect(checkContainerId('abc-1.2_3')).toBe('abc-1.2_3');
  });
});

describe('overlay rootfs from mountinfo', () => {
  const mountinfo = [
    '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
    '90 22 0:50 / /run/bundles/app/rootfs rw,relatime - overlay overlay rw,lowerdir=/img/l2:/img/l1,upperdir=/snap/up\\040per,workdir=/snap/work',
    '91 22 0:51 / /run/bundles/plain/rootfs rw,relatime - ext4 /dev/sdb rw',
  ].join('\n');

  it('finds the lower and upper layers of an overlay rootfs, unescaping mountinfo', () => {
    expect(findOverlayRootfs(mountinfo, '/run/bundles/app/rootfs')).toEqual({ lowerDir: '/img/l2:/img/l1', upperDir: '/snap/up per' });
  });

  it('returns nothing for a rootfs that is not an overlay, or not mounted', () => {
    expect(findOverlayRootfs(mountinfo, '/run/bundles/plain/rootfs')).toBeUndefined();
    expect(findOverlayRootfs(mountinfo, '/nowhere')).toBeUndefined();
  });
});
