import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { WorkloadSpec } from '../../contract/spec.js';
import { fetchSampleState, readSampleStatus, sampleHealthProbe } from '../../sample-app/workload.js';
import { freePort } from '../support/free-port.js';
import { killCheckpointProcesses, processesOfCheckpoint } from '../support/leftovers.js';
import { eventually } from '../support/runc-containers.js';
import { testSample } from '../support/sample.js';
import { startTorpor, useTorpor } from '../support/torpor-harness.js';

const NODE_APP = fileURLToPath(new URL('../support/apps/node-net-app.mjs', import.meta.url));

interface NodeAppAnswer {
  pid: number;
  instance: string;
  phase: string;
  echo?: string;
}

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  expect(response.status).toBe(200);
  return (await response.json()) as T;
}

/** One datagram to the app's UDP socket and its answer. */
async function udpAsk(port: number, text: string): Promise<NodeAppAnswer> {
  const socket = createSocket('udp4');
  try {
    socket.send(text, port, '127.0.0.1');
    const timeout = AbortSignal.timeout(5000);
    const [message] = (await once(socket, 'message', { signal: timeout })) as [Buffer];
    return JSON.parse(String(message)) as NodeAppAnswer;
  } finally {
    socket.close();
  }
}

function nodeApp(port: number): WorkloadSpec {
  return { command: [process.execPath, NODE_APP], env: { NET_APP_PORT: String(port) } };
}

describe('servers that listen on TCP and UDP: checkpoint, restore, answer (real Temporal, CRIU 4.2)', () => {
  const { h, hashes } = useTorpor();

  it('restores a Python http.server app that answers GET /state from the same process, ready by an HTTP probe', async () => {
    const sample = testSample(h.storage);
    hashes.push(sample.hash);
    const checkpointed = await h.torpor.checkpoint({ hash: sample.hash, node: h.node, runtime: 'local', workload: sample.workload });
    const atCheckpoint = await readSampleStatus(sample.options.statusFile);
    expect(checkpointed.manifest.network).toEqual({ established: 'close', lock: h.config.networkLock });
    expect(checkpointed.manifest.tools.criu).toMatch(/^4\.([2-9]|\d\d)/);
    // The original exited on the signal: nothing listens on its port until the restore.
    await expect(fetchSampleState(atCheckpoint.port)).rejects.toThrow();

    const restored = await h.torpor.restore({
      hash: sample.hash,
      node: h.node,
      runtime: 'local',
      readiness: sampleHealthProbe(atCheckpoint.port),
    });
    const answer = await fetchSampleState(atCheckpoint.port);
    expect(answer.pid).toBe(checkpointed.manifest.process.pid);
    expect(restored.pid).toBe(answer.pid);
    expect(answer.instance).toBe(atCheckpoint.instance);
    expect(answer.checksum).toBe(atCheckpoint.checksum);
    expect(answer.phase).toBe('restored');
    expect(answer.counter).toBeGreaterThan(atCheckpoint.counter);
  });

  it('restores a Node.js http server listening on IPv6 and its UDP socket, started with io_uring refused', async () => {
    expect(h.config.workloadLauncher).toMatch(/torpor-no-io-uring$/);
    const port = await freePort();
    const hash = `tcp-node-${port}`;
    hashes.push(hash);
    const checkpointed = await h.torpor.checkpoint({ hash, node: h.node, runtime: 'local', workload: nodeApp(port) });
    expect(checkpointed.workloadEnd).toBe('exited');
    expect(await processesOfCheckpoint(hash)).toEqual([]);

    await h.torpor.restore({ hash, node: h.node, runtime: 'local', readiness: { kind: 'http', host: '::1', port, path: '/state' } });
    const overIpv6 = await getJson<NodeAppAnswer>(`http://[::1]:${port}/state`);
    expect(overIpv6.pid).toBe(checkpointed.manifest.process.pid);
    await eventually(
      async () => ((await getJson<NodeAppAnswer>(`http://[::1]:${port}/state`)).phase === 'restored' ? true : undefined),
      'the restore marker',
    );
    // The instance id is drawn once per process start: the one the checkpointed process logged
    // proves the answers come from its restored memory, not from a new start.
    const logged = /instance ([0-9a-f]{16}) listening/.exec(await readFile(checkpointed.manifest.contract.logFile, 'utf8'))?.[1];
    expect(overIpv6.instance).toBe(logged);
    const overUdp = await udpAsk(port, 'hello');
    expect(overUdp).toMatchObject({ pid: overIpv6.pid, instance: logged, echo: 'hello' });
  });

  it('refuses, naming io_uring and the launcher, a Node.js server started without the launcher', async () => {
    const bare = await startTorpor({ env: { TORPOR_WORKLOAD_LAUNCHER: 'none' } });
    const port = await freePort();
    const hash = `tcp-uring-${port}`;
    try {
      expect(bare.config.workloadLauncher).toBeUndefined();
      await expect(bare.torpor.checkpoint({ hash, node: bare.node, runtime: 'local', workload: nodeApp(port) })).rejects.toMatchObject({
        type: 'DumpFailed',
        message: expect.stringMatching(/io_uring.*torpor-no-io-uring/s),
      });
      expect(await processesOfCheckpoint(hash)).toEqual([]);
    } finally {
      await killCheckpointProcesses(hash);
      await bare.stop();
    }
  });
});
