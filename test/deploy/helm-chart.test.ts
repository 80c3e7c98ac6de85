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

/** The images requests may run (every render needs at least one), and the TLS and payload key Secrets (required too). */
const IMAGES = [
  '--set',
  `workloads.allowedImages={registry.example/llm@sha256:${'a'.repeat(64)},registry.example/tools/*}`,
  '--set',
  'temporal.payloadKeys.secretName=torpor-payload-keys',
  '--set',
  'temporal.tls.secretName=temporal-client-tls',
];

const combos: Record<string, string[]> = {
  'namespace RBAC, no TLS': ['--set', 'rbac.allowedNamespaces={ml,research}', '--set', 'temporal.tls.insecure=true', ...IMAGES],
  'cluster RBAC, mTLS, digests required, a custom store': [
    '--set',
    'rbac.scope=cluster',
    '--set',
    'rbac.allowedNamespaces={ml}',
    '--set',
    'temporal.tls.secretName=temporal-client-tls',
    '--set',
    'temporal.tls.serverName=temporal.example',
    '--set',
    'workloads.requireImageDigest=true',
    '--set',
    'workloads.allowedServiceAccounts={llm-server}',
    '--set',
    'storage.hostPath=/data/torpor',
    '--set',
    'nodeAgent.manifestKeySecret=torpor-manifest-key',
    '--set',
    'nodeAgent.localRuntime.enabled=true',
    ...IMAGES,
  ],
  'a shared store with credentials from a Secret and a node cache limit': [
    '--set',
    'rbac.allowedNamespaces={ml}',
    '--set',
    'nodeAgent.manifestKeySecret=torpor-manifest-key',
    '--set',
    'sharedStore.bucket=checkpoints',
    '--set',
    'sharedStore.endpoint=http://seaweedfs.storage.svc:8333',
    '--set',
    'sharedStore.prefix=cluster-1/',
    '--set',
    'sharedStore.existingSecret=torpor-s3',
    '--set',
    'sharedStore.nodeCacheBytes=500000000000',
    ...IMAGES,
  ],
  'a shared directory (RWX claim) as the shared store': [
    '--set',
    'rbac.allowedNamespaces={ml}',
    '--set',
    'nodeAgent.manifestKeySecret=torpor-manifest-key',
    '--set',
    'sharedStore.directory.claimName=torpor-shared',
    '--set',
    'sharedStore.directory.mountPath=/mnt/torpor-shared',
    ...IMAGES,
  ],
  'namespace RBAC, mTLS, no metrics': [
    '--set',
    'rbac.allowedNamespaces={ml}',
    '--set',
    'temporal.tls.secretName=temporal-client-tls',
    '--set',
    'metrics.enabled=false',
    '--set',
    'nodeAgent.containers.enabled=true',
    '--set',
    'nodeAgent.containers.allowedNamespaces={ml,research}',
    ...IMAGES,
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
    expect(await helm(['lint', CHART, '--set', 'rbac.allowedNamespaces={ml}', ...IMAGES])).toMatch(
      /1 chart\(s\) linted, 0 chart\(s\) failed/,
    );
  });

  // An empty allow-list refuses everything: the chart does not render, with either RBAC scope.
  it('refuses namespace-scoped RBAC without namespaces, saying what to set', async () => {
    await expect(template([...IMAGES])).rejects.toMatchObject({
      stderr: expect.stringContaining('rbac.scope=namespace needs rbac.allowedNamespaces'),
    });
  });

  it('refuses cluster-scoped RBAC without namespaces (it would be every namespace, kube-system included)', async () => {
    await expect(template(['--set', 'rbac.scope=cluster', ...IMAGES])).rejects.toMatchObject({
      stderr: expect.stringContaining('rbac.scope=cluster needs rbac.allowedNamespaces'),
    });
  });

  // Temporal namespace access is root on every node: without mTLS or payload encryption the chart does
  // not render, unless the values opt out by name.
  it('refuses to render without a TLS Secret or a payload key Secret, unless opted out explicitly', async () => {
    const base = ['--set', 'rbac.allowedNamespaces={ml}', '--set', 'workloads.allowedImages={x}'];
    await expect(template(base)).rejects.toMatchObject({ stderr: expect.stringContaining('temporal.tls.secretName is required') });
    const noKeys = [...base, '--set', 'temporal.tls.secretName=tls'];
    await expect(template(noKeys)).rejects.toMatchObject({
      stderr: expect.stringContaining('temporal.payloadKeys.secretName is required'),
    });
    const optedOut = await template([...noKeys, '--set', 'temporal.payloadKeys.insecure=true']);
    expect(optedOut).not.toContain('TORPOR_PAYLOAD_KEY_FILE');
  });

  it('mounts the TLS and payload key Secrets into both workers and points them at the files', async () => {
    const docs = loadAllYaml(await template(combos['namespace RBAC, mTLS, no metrics'] as string[])) as KubernetesObject[];
    type Pod = {
      containers: { env: { name: string; value?: string }[]; volumeMounts: { name: string; mountPath: string }[] }[];
      volumes: { name: string; secret?: { secretName: string } }[];
    };
    for (const kind of ['Deployment', 'DaemonSet']) {
      const pod = (docs.find((d) => d.kind === kind) as unknown as { spec: { template: { spec: Pod } } }).spec.template.spec;
      const env = Object.fromEntries((pod.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
      expect(env).toMatchObject({
        TORPOR_PAYLOAD_KEY_FILE: '/etc/torpor/payload-keys/payload-keys',
        TEMPORAL_TLS_CERT: '/etc/torpor/tls/tls.crt',
      });
      expect(pod.volumes.find((v) => v.name === 'payload-keys')?.secret).toEqual({ secretName: 'torpor-payload-keys' });
      expect(pod.volumes.find((v) => v.name === 'temporal-tls')?.secret).toEqual({ secretName: 'temporal-client-tls' });
      expect(pod.containers[0]?.volumeMounts.map((m) => m.mountPath)).toEqual(
        expect.arrayContaining(['/etc/torpor/payload-keys', '/etc/torpor/tls']),
      );
    }
  });

  it('refuses an empty image allow-list, with either scope', async () => {
    for (const scope of ['namespace', 'cluster']) {
      await expect(template(['--set', `rbac.scope=${scope}`, '--set', 'rbac.allowedNamespaces={ml}'])).rejects.toMatchObject({
        stderr: expect.stringContaining('workloads.allowedImages needs at least one image'),
      });
    }
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
      // The store is per node and the agent's: no claim shared by a DaemonSet.
      expect(kinds).not.toContain('PersistentVolumeClaim');
    });
  }

  it('gives the node agent what CRIU needs: privileged, host PID, signal host path, NODE_NAME from the downward API', async () => {
    const docs = loadAllYaml(await template(combos['namespace RBAC, no TLS'] as string[])) as KubernetesObject[];
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

  it("keeps the checkpoint store per node and the agent's, binds metrics to the pod's IP, and shares no more of the host than CRIU needs", async () => {
    const docs = loadAllYaml(await template(combos['namespace RBAC, no TLS'] as string[])) as KubernetesObject[];
    type Env = { name: string; value?: string; valueFrom?: unknown }[];
    type PodSpec = {
      hostIPC?: boolean;
      containers: { env: Env; volumeMounts: { name: string }[] }[];
      volumes: { name: string; hostPath?: { path: string }; persistentVolumeClaim?: unknown }[];
    };
    const spec = (kind: string) =>
      (docs.find((d) => d.kind === kind) as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
    const agent = spec('DaemonSet');
    expect(agent.volumes.find((v) => v.name === 'checkpoints')).toEqual({
      name: 'checkpoints',
      hostPath: { path: '/var/lib/torpor/checkpoints', type: 'DirectoryOrCreate' },
    });
    expect(agent.hostIPC).toBeUndefined();
    expect(agent.volumes.map((v) => v.name)).not.toContain('runtime-socket');
    for (const pod of [agent, spec('Deployment')]) {
      const env = pod.containers[0]?.env ?? [];
      expect(env.find((e) => e.name === 'POD_IP')?.valueFrom).toEqual({ fieldRef: { fieldPath: 'status.podIP' } });
      expect(env.find((e) => e.name === 'TORPOR_METRICS_ADDRESS')?.value).toBe('$(POD_IP):9464');
    }
    const control = Object.fromEntries((spec('Deployment').containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    expect(control).toMatchObject({
      TORPOR_ALLOWED_NAMESPACES: 'ml,research',
      TORPOR_ALLOWED_IMAGES: `registry.example/llm@sha256:${'a'.repeat(64)},registry.example/tools/*`,
      TORPOR_REQUIRE_IMAGE_DIGEST: 'false',
      TORPOR_ALLOWED_SERVICE_ACCOUNTS: '',
      TORPOR_CHECKPOINT_HOST_PATH: '/var/lib/torpor/checkpoints',
      TORPOR_CHECKPOINT_MOUNT_PATH: '/checkpoints',
      TORPOR_SIGNAL_HOST_PATH: '/var/lib/chrek/signals',
    });
  });

  it('keeps the local runtime off unless enabled, runs it as the configured user, and mounts a shared manifest key only when given', async () => {
    type Agent = {
      containers: { env: { name: string; value?: string }[]; volumeMounts: { name: string; mountPath: string }[] }[];
      volumes: { name: string; secret?: { secretName: string } }[];
    };
    const agentOf = async (args: string[]) =>
      (
        (loadAllYaml(await template(args)) as KubernetesObject[]).find((d) => d.kind === 'DaemonSet') as unknown as {
          spec: { template: { spec: Agent } };
        }
      ).spec.template.spec;
    const envOf = (a: Agent) => Object.fromEntries((a.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    const plain = await agentOf(combos['namespace RBAC, no TLS'] as string[]);
    expect(envOf(plain).TORPOR_LOCAL_RUNTIME).toBe('off');
    expect(envOf(plain)).not.toHaveProperty('TORPOR_LOCAL_UID');
    expect(envOf(plain)).not.toHaveProperty('TORPOR_MANIFEST_KEY_FILE');
    expect(plain.volumes.map((v) => v.name)).not.toContain('manifest-key');
    const shared = await agentOf(combos['cluster RBAC, mTLS, digests required, a custom store'] as string[]);
    expect(envOf(shared)).toMatchObject({
      TORPOR_LOCAL_RUNTIME: 'on',
      TORPOR_LOCAL_UID: '65534',
      TORPOR_LOCAL_GID: '65534',
      TORPOR_MANIFEST_KEY_FILE: '/etc/torpor/manifest-key/manifest-key',
    });
    expect(shared.volumes.find((v) => v.name === 'manifest-key')?.secret?.secretName).toBe('torpor-manifest-key');
    expect(shared.containers[0]?.volumeMounts).toContainEqual(
      expect.objectContaining({ name: 'manifest-key', mountPath: '/etc/torpor/manifest-key' }),
    );
  });

  it('passes the load tuning to the workers: heavy steps derived unless set, many agent slots, control concurrency only when set', async () => {
    const envOf = async (kind: string, args: string[]) => {
      const all = loadAllYaml(await template(args)) as KubernetesObject[];
      const found = all.find((o) => o.kind === kind) as unknown as {
        spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
      };
      return Object.fromEntries((found.spec.template.spec.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    };
    const base = combos['namespace RBAC, no TLS'] as string[];
    const agent = await envOf('DaemonSet', base);
    expect(agent).not.toHaveProperty('TORPOR_HEAVY_STEPS');
    expect(agent.TORPOR_AGENT_ACTIVITY_SLOTS).toBe('200');
    const control = await envOf('Deployment', base);
    expect(Object.keys(control).filter((n) => n.startsWith('TORPOR_CONTROL_'))).toEqual([]);
    expect(control.NODE_OPTIONS).toBe('--max-old-space-size=512');
    const tuned = [
      ...base,
      ...['--set', 'nodeAgent.heavySteps=3', '--set', 'controlWorker.workflowTaskSlots=80'],
      ...['--set', 'controlWorker.cachedWorkflows=600', '--set', 'controlWorker.activitySlots=150'],
      ...['--set', 'controlWorker.workflowThreads=2', '--set', 'controlWorker.maxOldSpaceMiB=1024'],
    ];
    expect(await envOf('DaemonSet', tuned)).toMatchObject({ TORPOR_HEAVY_STEPS: '3' });
    expect(await envOf('Deployment', tuned)).toMatchObject({
      TORPOR_CONTROL_WORKFLOW_TASK_SLOTS: '80',
      TORPOR_CONTROL_CACHED_WORKFLOWS: '600',
      TORPOR_CONTROL_ACTIVITY_SLOTS: '150',
      TORPOR_CONTROL_WORKFLOW_THREADS: '2',
      NODE_OPTIONS: '--max-old-space-size=1024',
    });
  });

  it('with container support, points the agent at runc state under /run/containerd and lets it see host mounts', async () => {
    const docs = loadAllYaml(await template(combos['namespace RBAC, mTLS, no metrics'] as string[])) as KubernetesObject[];
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
    const docs = (loadAllYaml(await template(combos['namespace RBAC, no TLS'] as string[])) as KubernetesObject[]).filter(
      (d) => d?.kind?.startsWith('Role') || d?.kind === 'ServiceAccount',
    );
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

  it('wires the shared store into both workers, credentials only from the Secret, the cache limit into the agent; off by default', async () => {
    type Env = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } };
    const workers = async (args: string[]) => {
      const docs = loadAllYaml(await template(args)) as { kind: string; spec: { template: { spec: { containers: { env: Env[] }[] } } } }[];
      const envOf = (kind: string) => docs.find((d) => d.kind === kind)?.spec.template.spec.containers[0]?.env ?? [];
      return { agent: envOf('DaemonSet'), control: envOf('Deployment') };
    };
    const byName = (env: Env[]) => Object.fromEntries(env.map((e) => [e.name, e.value ?? e.valueFrom]));
    const { agent, control } = await workers(combos['a shared store with credentials from a Secret and a node cache limit'] as string[]);
    const settings = {
      TORPOR_S3_BUCKET: 'checkpoints',
      TORPOR_S3_ENDPOINT: 'http://seaweedfs.storage.svc:8333',
      TORPOR_S3_REGION: 'us-east-1',
      TORPOR_S3_PREFIX: 'cluster-1/',
      TORPOR_S3_ACCESS_KEY_ID: { secretKeyRef: { name: 'torpor-s3', key: 'access-key-id' } },
      TORPOR_S3_SECRET_ACCESS_KEY: { secretKeyRef: { name: 'torpor-s3', key: 'secret-access-key' } },
    };
    expect(byName(agent)).toMatchObject({ ...settings, TORPOR_NODE_CACHE_BYTES: '500000000000' });
    expect(byName(control)).toMatchObject(settings);
    expect(byName(control)).not.toHaveProperty('TORPOR_NODE_CACHE_BYTES');
    const plain = await workers(combos['namespace RBAC, no TLS'] as string[]);
    for (const env of [plain.agent, plain.control]) expect(env.map((e) => e.name).filter((n) => /S3|NODE_CACHE/.test(n))).toEqual([]);
    await expect(template(['--set', 'rbac.allowedNamespaces={ml}', '--set', 'sharedStore.bucket=checkpoints', ...IMAGES])).rejects.toThrow(
      /sharedStore needs nodeAgent.manifestKeySecret/,
    );
  });

  it('mounts a shared directory claim in both workers (read-only in the control worker) as TORPOR_SHARED_DIR; never with S3 too, never without a claim', async () => {
    type Mount = { name: string; mountPath: string; readOnly?: boolean };
    type Pod = { containers: { env: { name: string; value?: string }[]; volumeMounts?: Mount[] }[]; volumes?: { name: string }[] };
    const pods = async (args: string[]) => {
      const docs = loadAllYaml(await template(args)) as { kind: string; spec: { template: { spec: Pod } } }[];
      return ['DaemonSet', 'Deployment'].map((kind) => docs.find((d) => d.kind === kind)?.spec.template.spec as Pod);
    };
    const shared = (pod: Pod) => ({
      env: pod.containers[0]?.env.filter((e) => /SHARED_DIR|S3/.test(e.name)),
      mounts: (pod.containers[0]?.volumeMounts ?? []).filter((m) => m.name === 'shared-store'),
      volumes: (pod.volumes ?? []).filter((v) => v.name === 'shared-store'),
    });
    const [agent, control] = await pods(combos['a shared directory (RWX claim) as the shared store'] as string[]);
    const volumes = [{ name: 'shared-store', persistentVolumeClaim: { claimName: 'torpor-shared' } }];
    const env = [{ name: 'TORPOR_SHARED_DIR', value: '/mnt/torpor-shared' }];
    expect(shared(agent as Pod)).toEqual({ env, mounts: [{ name: 'shared-store', mountPath: '/mnt/torpor-shared' }], volumes });
    expect(shared(control as Pod)).toEqual({
      env,
      mounts: [{ name: 'shared-store', mountPath: '/mnt/torpor-shared', readOnly: true }],
      volumes,
    });
    for (const pod of await pods(combos['namespace RBAC, no TLS'] as string[]))
      expect(shared(pod)).toEqual({ env: [], mounts: [], volumes: [] });
    const base = ['--set', 'rbac.allowedNamespaces={ml}', '--set', 'nodeAgent.manifestKeySecret=torpor-manifest-key', ...IMAGES];
    await expect(
      template([...base, '--set', 'sharedStore.directory.claimName=torpor-shared', '--set', 'sharedStore.bucket=checkpoints']),
    ).rejects.toThrow(/sharedStore.bucket and sharedStore.directory each name a shared store/);
    await expect(template([...base, '--set', 'sharedStore.directory.enabled=true'])).rejects.toThrow(
      /sharedStore.directory.enabled needs sharedStore.directory.claimName/,
    );
    await expect(template([...base.slice(0, 2), ...IMAGES, '--set', 'sharedStore.directory.claimName=torpor-shared'])).rejects.toThrow(
      /sharedStore needs nodeAgent.manifestKeySecret/,
    );
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

  it('smart-entrypoint of a placeholder placed by the scheduler waits for the checkpoint its node is fetching, instead of a cold start', async () => {
    const script = path.join(ROOT, 'deploy/images/smart-entrypoint.sh');
    const checkpoints = await mkdtemp(path.join(os.tmpdir(), 'torpor-entry-'));
    const env = { ...process.env, DYN_CHECKPOINT_PATH: checkpoints, DYN_CHECKPOINT_HASH: 'llm-2', TORPOR_CHECKPOINT_WAIT_SECONDS: '30' };
    const waiting = run('timeout', ['4', 'sh', script, 'echo', 'cold start ran'], { env }).catch(
      (e: { stdout: string; code: number }) => e,
    );
    await mkdir(path.join(checkpoints, 'llm-2'));
    await writeFile(path.join(checkpoints, 'llm-2', 'checkpoint.done'), '');
    const ended = await waiting;
    expect(ended.stdout).toContain('waiting for the node agent to restore');
    expect(ended.stdout).not.toContain('cold start ran');
  });

  it('compiles the workers the image runs (tsc -p tsconfig.build.json)', async () => {
    const out = path.join(os.tmpdir(), `torpor-build-${process.pid}`);
    await run(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', out]);
    for (const f of ['workers/control.js', 'workers/node-agent.js', 'workflows/index.js'])
      expect(existsSync(path.join(out, f)), f).toBe(true);
  });
});
