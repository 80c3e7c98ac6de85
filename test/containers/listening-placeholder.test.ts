import { readlink, stat } from 'node:fs/promises';
import { request } from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContainerActivities } from '../../activities/node/container/activities.js';
import { createNetns, type TestNetns } from '../support/netns.js';
import { checkpointContainer, eventually, RuncWorld, waitForStatus } from '../support/runc-containers.js';

const world = new RuncWorld(path.resolve('.torpor/test/listening'));
const activities = createContainerActivities(world.config(['team-a']));
const pod = (name: string) => ({
  'io.kubernetes.pod.namespace': 'team-a',
  'io.kubernetes.pod.name': name,
  'io.kubernetes.container.name': 'main',
});
const HASH = 'listening-v1';
const PORT = 8080;

/** What the app answers on GET /state. */
interface ServedState {
  iid: string;
  checksum: string;
  n: number;
  restored: boolean;
  pid: number;
}

interface HttpAnswer {
  status: number;
  body: string;
}

/** One GET on a connection of its own, closed after the answer (no pool keeps it open). */
function httpGet(url: string, timeoutMs = 2000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** The readiness check a Service would wait for: GET /health answers 200. */
async function waitUntilReady(base: string, timeoutMs = 20_000): Promise<void> {
  await eventually(
    async () => ((await httpGet(`${base}/health`).catch(() => undefined))?.status === 200 ? true : undefined),
    `${base}/health to answer 200`,
    timeoutMs,
  );
}

async function servedState(base: string): Promise<ServedState> {
  const answer = await httpGet(`${base}/state`);
  expect(answer.status).toBe(200);
  return JSON.parse(answer.body) as ServedState;
}

describe('restore a listening server into a placeholder on a pod network (real runc and CRIU)', () => {
  let netns: TestNetns;
  let before: ServedState;

  beforeAll(async () => {
    await world.createImage();
    netns = await createNetns();
    // The source listens in a network namespace of its own (loopback only), as another pod's would.
    const source = await world.createBundle('source', { ...pod('server-0'), 'torpor.dev/checkpoint-source': 'true' });
    await world.run('source', source);
    await waitForStatus(source, (s) => s.n >= 3);
    const probe = await world.exec('source', [
      'python3',
      '-c',
      `import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:${PORT}/state').read().decode())`,
    ]);
    expect(probe.exitCode, String(probe.stderr)).toBe(0);
    before = JSON.parse(String(probe.stdout)) as ServedState;
    await checkpointContainer(world, activities, { containerId: 'source', hash: HASH, nodeName: 'node-a' });
    await world.deleteContainer('source');
  });
  afterAll(async () => {
    await world.cleanUp();
    await netns?.remove();
  });

  it('serves the checkpointed state on the placeholder’s pod address and port once restored, and nothing there before', async () => {
    const bundle = await world.createBundle('placeholder', pod('server-0-restore'), {
      placeholderFor: { hash: HASH, store: world.store },
      netns: netns.path,
    });
    await world.run('placeholder', bundle);
    await eventually(
      async () => ((await world.output('placeholder')).includes('waiting for the node agent') ? true : undefined),
      'the placeholder to wait',
    );
    const base = `http://${netns.address}:${PORT}`;
    // The pod's address is up, but nothing listens on it yet: the connection is refused, not lost.
    await expect(httpGet(`${base}/state`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    const restored = await activities.restoreIntoPlaceholder({ hash: HASH, placeholderContainerId: 'placeholder', nodeName: 'node-a' });
    expect(restored.alreadyRestored).toBe(false);
    await waitUntilReady(base);

    // The listening socket came back in the placeholder's network namespace, the one the "CNI" made.
    const { ino } = await stat(netns.path);
    expect(await readlink(`/proc/${restored.hostPid}/ns/net`)).toBe(`net:[${ino}]`);

    // The same process answers: the instance drawn at start, the table's checksum, its own PID, the count going on.
    const first = await servedState(base);
    expect(first).toMatchObject({ iid: before.iid, checksum: before.checksum, pid: before.pid });
    expect(first.n).toBeGreaterThanOrEqual(before.n);
    const seen = await eventually(async () => {
      const state = await servedState(base);
      return state.restored ? state : undefined;
    }, 'GET /state to report the restore marker');
    expect(seen).toMatchObject({ iid: before.iid, checksum: before.checksum });
    expect(before.restored).toBe(false);
  });
});
