import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { AuthorizationV1Api, CoreV1Api, type KubernetesObject, KubernetesObjectApi, loadAllYaml } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KubeCluster, startKubeCluster } from '../support/kube-cluster.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HELM = path.join(ROOT, '.torpor/bin/helm');
const CHART = path.join(ROOT, 'deploy/helm/torpor');
const RELEASE_NS = 'torpor-system';

async function helm(args: string[]): Promise<string> {
  const { stdout } = await run(HELM, args, {
    maxBuffer: 16 << 20,
    env: { ...process.env, HELM_CACHE_HOME: os.tmpdir(), HELM_CONFIG_HOME: os.tmpdir() },
  });
  return stdout;
}

const combos: Record<string, string[]> = {
  'namespace RBAC, no TLS, chart-created PVC': ['--set', 'rbac.allowedNamespaces={ml,research}'],
  'cluster RBAC, mTLS, existing PVC': [
    '--set',
    'rbac.scope=cluster',
    '--set',
    'temporal.tls.enabled=true',
    '--set',
    'temporal.tls.secretName=temporal-client-tls',
    '--set',
    'temporal.tls.serverName=temporal.example',
    '--set',
    'storage.pvc.existingClaim=shared-checkpoints',
  ],
  'namespace RBAC, mTLS, existing PVC, no metrics': [
    '--set',
    'rbac.allowedNamespaces={ml}',
    '--set',
    'temporal.tls.enabled=true',
    '--set',
    'temporal.tls.secretName=temporal-client-tls',
    '--set',
    'storage.pvc.existingClaim=shared-checkpoints',
    '--set',
    'metrics.enabled=false',
    '--set',
    'nodeAgent.containers.enabled=true',
    '--set',
    'nodeAgent.containers.allowedNamespaces={ml,research}',
  ],
};

function template(values: string[]): Promise<string> {
  // The version of the test control plane (tools/kube); helm built from source would assume 1.20.
  return helm(['template', 'torpor', CHART, '--namespace', RELEASE_NS, '--kube-version', '1.37.2', ...values]);
}

let cluster: KubeCluster;
let objects: KubernetesObjectApi;
const rendered: Record<string, { bytes: number; objects: number }> = {};

beforeAll(async () => {
  cluster = await startKubeCluster(path.join(os.tmpdir(), `torpor-kube-helm-${process.pid}`));
  const admin = cluster.kubeConfig(cluster.adminToken);
  objects = KubernetesObjectApi.makeApiClient(admin);
  const core = admin.makeApiClient(CoreV1Api);
  for (const name of [RELEASE_NS, 'ml', 'research']) await core.createNamespace({ body: { metadata: { name } } });
}, 180_000);
afterAll(async () => {
  await cluster?.stop();
  console.log(`helm template: ${JSON.stringify(rendered)}`);
});

describe('the Helm chart', () => {
  it('passes helm lint', async () => {
    expect(await helm(['lint', CHART, '--set', 'rbac.allowedNamespaces={ml}'])).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it('refuses namespace-scoped RBAC without namespaces, saying what to set', async () => {
    await expect(template([])).rejects.toMatchObject({
      stderr: expect.stringContaining('rbac.scope=namespace needs rbac.allowedNamespaces'),
    });
  });

  for (const [name, values] of Object.entries(combos)) {
    it(`renders objects the real API server accepts (server-side dry run): ${name}`, async () => {
      const yaml = await template(values);
      const docs = (loadAllYaml(yaml) as KubernetesObject[]).filter(Boolean);
      for (const doc of docs) {
        const namespaced = !['ClusterRole', 'ClusterRoleBinding'].includes(doc.kind ?? '');
        const body = namespaced ? { ...doc, metadata: { ...doc.metadata, namespace: doc.metadata?.namespace ?? RELEASE_NS } } : doc;
        await objects.create(body, undefined, 'All').catch((err: { body?: unknown }) => {
          throw new Error(`${doc.kind} ${doc.metadata?.name} was rejected: ${String(err.body)}`);
        });
      }
      rendered[name] = { bytes: yaml.length, objects: docs.length };
      const kinds = docs.map((d) => d.kind);
      expect(kinds).toContain('Deployment');
      expect(kinds).toContain('DaemonSet');
      expect(kinds.includes('PersistentVolumeClaim')).toBe(!values.some((v) => v.startsWith('storage.pvc.existingClaim')));
    });
  }

  it('gives the node agent what CRIU needs: privileged, host PID, signal host path, NODE_NAME from the downward API', async () => {
    const docs = loadAllYaml(await template(combos['namespace RBAC, no TLS, chart-created PVC'] as string[])) as KubernetesObject[];
    const ds = docs.find((d) => d.kind === 'DaemonSet') as unknown as {
      spec: {
        template: {
          spec: {
            hostPID: boolean;
            containers: { securityContext: { privileged: boolean }; env: { name: string; value?: string; valueFrom?: unknown }[] }[];
            volumes: { name: string; hostPath?: { path: string } }[];
          };
        };
      };
    };
    const pod = ds.spec.template.spec;
    expect(pod.hostPID).toBe(true);
    expect(pod.containers[0]?.securityContext.privileged).toBe(true);
    expect(pod.containers[0]?.env.find((e) => e.name === 'NODE_NAME')?.valueFrom).toEqual({ fieldRef: { fieldPath: 'spec.nodeName' } });
    expect(pod.volumes.find((v) => v.name === 'signals')?.hostPath?.path).toBe('/var/lib/chrek/signals');
    // Container support (the kubernetes runtime's node steps) is on, for the namespaces RBAC allows.
    expect(pod.containers[0]?.env.find((e) => e.name === 'TORPOR_CONTAINER_NAMESPACES')).toMatchObject({ value: 'ml,research' });
  });

  it('with container support, points the agent at runc state under /run/containerd and lets it see host mounts', async () => {
    const docs = loadAllYaml(await template(combos['namespace RBAC, mTLS, existing PVC, no metrics'] as string[])) as KubernetesObject[];
    const ds = docs.find((d) => d.kind === 'DaemonSet') as unknown as {
      spec: {
        template: {
          spec: {
            containers: { env: { name: string; value?: string }[]; volumeMounts: { name: string; mountPropagation?: string }[] }[];
          };
        };
      };
    };
    const agent = ds.spec.template.spec.containers[0];
    const env = Object.fromEntries((agent?.env ?? []).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ TORPOR_RUNC_ROOT: '/run/containerd/runc/k8s.io', TORPOR_CONTAINER_NAMESPACES: 'ml,research' });
    expect(agent?.volumeMounts.find((m) => m.name === 'containerd-run')?.mountPropagation).toBe('HostToContainer');
  });
});

describe('the rendered RBAC, checked by the real authorizer', () => {
  const sa = (name: string) => `system:serviceaccount:${RELEASE_NS}:torpor-torpor-${name}`;

  async function allowed(user: string, namespace: string, verb: string, resource: string, group = ''): Promise<boolean> {
    const authz = cluster.kubeConfig(cluster.adminToken).makeApiClient(AuthorizationV1Api);
    const review = await authz.createSubjectAccessReview({
      body: { spec: { user, resourceAttributes: { namespace, verb, resource, group } } },
    });
    return review.status?.allowed === true;
  }

  beforeAll(async () => {
    const docs = (
      loadAllYaml(await template(combos['namespace RBAC, no TLS, chart-created PVC'] as string[])) as KubernetesObject[]
    ).filter((d) => d?.kind?.startsWith('Role') || d?.kind === 'ServiceAccount');
    for (const doc of docs)
      await objects.create({ ...doc, metadata: { ...doc.metadata, namespace: doc.metadata?.namespace ?? RELEASE_NS } });
  });

  it('lets the control worker do exactly what its activities need, in its namespaces only', async () => {
    const needed: [string, string, string][] = [
      ['create', 'jobs', 'batch'],
      ['get', 'jobs', 'batch'],
      ['delete', 'jobs', 'batch'],
      ['create', 'pods', ''],
      ['get', 'pods', ''],
      ['list', 'pods', ''],
      ['watch', 'pods', ''],
      ['delete', 'pods', ''],
      ['list', 'events', ''],
    ];
    for (const [verb, resource, group] of needed)
      expect(await allowed(sa('control'), 'ml', verb, resource, group), `${verb} ${resource}`).toBe(true);
    const beyond: [string, string, string][] = [
      ['get', 'secrets', ''],
      ['create', 'configmaps', ''],
      ['update', 'pods', ''],
      ['create', 'pods/exec', ''],
      ['update', 'jobs', 'batch'],
      ['create', 'deployments', 'apps'],
      ['create', 'rolebindings', 'rbac.authorization.k8s.io'],
    ];
    for (const [verb, resource, group] of beyond)
      expect(await allowed(sa('control'), 'ml', verb, resource, group), `${verb} ${resource}`).toBe(false);
    expect(await allowed(sa('control'), 'kube-system', 'create', 'jobs', 'batch')).toBe(false);
  });

  it('lets the node agent read pods, and nothing else', async () => {
    expect(await allowed(sa('agent'), 'ml', 'get', 'pods')).toBe(true);
    expect(await allowed(sa('agent'), 'ml', 'create', 'pods')).toBe(false);
    expect(await allowed(sa('agent'), 'ml', 'get', 'secrets')).toBe(false);
  });
});

describe('images', () => {
  it('has every input the Dockerfiles copy in the build context (the repository root)', async () => {
    for (const file of ['deploy/images/worker.Dockerfile', 'deploy/images/placeholder.Dockerfile']) {
      const sources = (await readFile(path.join(ROOT, file), 'utf8'))
        .split('\n')
        .filter((l) => /^COPY\s/.test(l) && !l.includes('--from='))
        .flatMap((l) => l.trim().split(/\s+/).slice(1, -1));
      expect(sources.length).toBeGreaterThan(0);
      for (const source of sources) expect(existsSync(path.join(ROOT, source)), `${file}: ${source}`).toBe(true);
    }
  });

  it('smart-entrypoint runs the original command on a cold start, and waits to be restored into when a checkpoint exists', async () => {
    const script = path.join(ROOT, 'deploy/images/smart-entrypoint.sh');
    const checkpoints = await mkdtemp(path.join(os.tmpdir(), 'torpor-entry-'));
    const env = { ...process.env, DYN_CHECKPOINT_PATH: checkpoints, DYN_CHECKPOINT_HASH: 'llm-1' };
    const cold = await run('sh', [script, 'echo', 'cold start ran'], { env });
    expect(cold.stdout).toContain('cold start ran');
    await mkdir(path.join(checkpoints, 'llm-1'));
    await writeFile(path.join(checkpoints, 'llm-1', 'checkpoint.done'), '');
    const waiting = await run('timeout', ['2', 'sh', script, 'echo', 'cold start ran'], { env }).catch(
      (e: { stdout: string; code: number }) => e,
    );
    expect(waiting.stdout).toContain('waiting for the node agent to restore');
    expect(waiting.stdout).not.toContain('cold start ran');
    expect((waiting as { code?: number }).code).toBe(124);
  });

  it('compiles the workers the image runs (tsc -p tsconfig.build.json)', async () => {
    const out = path.join(os.tmpdir(), `torpor-build-${process.pid}`);
    await run(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', out]);
    for (const f of ['workers/control.js', 'workers/node-agent.js', 'workflows/index.js'])
      expect(existsSync(path.join(out, f)), f).toBe(true);
  });
});
