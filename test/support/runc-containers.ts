import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import type { createContainerActivities } from '../../activities/node/container/activities.js';
import type { ContainerAgentConfig } from '../../activities/node/container/types.js';
import { checkpointStoreActivities } from '../../activities/node/store/checkpoints.js';
import { StoreLayout } from '../../activities/node/store/layout.js';
import type { CheckpointManifest, VerifiedCheckpoint } from '../../contract/types.js';
import { testAgentConfig } from './agent-config.js';

const TORPOR_BIN = path.resolve('.torpor/bin');
const SMART_ENTRYPOINT = path.resolve('deploy/images/smart-entrypoint.sh');

/**
 * A python loop that builds state (a random instance id and a table, APP_TABLE_KB, 64 KiB by default), writes a file into
 * its rootfs and one into /dev/shm, reads its service-account token, and reports all of it through
 * /data (a bind mount) and its stdout five times a second. Once it sees ChReK's restore marker it
 * writes /app/serving (what a readiness probe of the restored app would check). It also serves
 * HTTP on 0.0.0.0:8080 from before its loop starts (GET /health, GET /state: the loop's current
 * values), so a checkpoint holds a listening TCP socket as a real server's does.
 */
const APP = `import hashlib, json, os, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
iid = os.urandom(8).hex()
size = int(os.environ.get('APP_TABLE_KB', '64')) * 1024
table = bytearray(os.urandom(size))
checksum = hashlib.sha256(table).hexdigest()
current = checksum
with open('/app/written.txt', 'w') as f:
    f.write('written by ' + iid)
with open('/dev/shm/app-state', 'w') as f:
    f.write('shm of ' + iid)
marker = os.environ.get('DYN_RESTORE_MARKER_FILE', '/tmp/dynamo-restored')
n = 0
restored = False

class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def do_GET(self):
        if self.path == '/health':
            body = b'ok'
        elif self.path == '/state':
            body = json.dumps({'iid': iid, 'checksum': current, 'n': n, 'restored': restored,
                               'pid': os.getpid()}).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header('Content-Type', 'application/json' if self.path == '/state' else 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # Requests are not logged: the container's log carries the loop's ticks only.
    def log_message(self, format, *args):
        pass

# The constructor binds and listens, so the port answers before the loop's first report.
server = ThreadingHTTPServer(('0.0.0.0', 8080), Handler)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
while True:
    n += 1
    restored = os.path.exists(marker)
    if restored and not os.path.exists('/app/serving'):
        with open('/app/serving', 'w') as f:
            f.write(iid)
    with open('/app/written.txt') as f:
        written = f.read()
    with open('/dev/shm/app-state') as f:
        shm = f.read()
    with open('/var/run/secrets/kubernetes.io/serviceaccount/token') as f:
        token = f.read()
    # A large table is hashed again every 20th report only, so the app stays mostly idle.
    if size <= (4 << 20) or n % 20 == 0:
        current = hashlib.sha256(table).hexdigest()
    status = {'iid': iid, 'checksum': current, 'built': checksum, 'n': n, 'written': written,
              'shm': shm, 'token': token, 'restored': restored, 'pid': os.getpid()}
    with open('/data/status.json.tmp', 'w') as f:
        f.write(json.dumps(status))
    os.replace('/data/status.json.tmp', '/data/status.json')
    print('tick', n, iid, flush=True)
    time.sleep(0.2)
`;

export interface AppStatus {
  iid: string;
  checksum: string;
  built: string;
  n: number;
  written: string;
  shm: string;
  token: string;
  restored: boolean;
  pid: number;
}

/** A restore pod's container: the app's command behind ChReK's smart entrypoint, waiting for checkpoint `hash`. */
export const PLACEHOLDER_COMMAND = ['sh', '/app/smart-entrypoint.sh', 'python3', '/app/app.py'];
export const placeholderEnv = (hash: string) => [`DYN_CHECKPOINT_HASH=${hash}`, 'DYN_CHECKPOINT_PATH=/checkpoints'];

export interface BundleOptions {
  /** Make it a placeholder for checkpoint `hash` of the store `store` (mounted at /checkpoints). */
  placeholderFor?: { hash: string; store: string };
  /** The container's command; the app by default. */
  args?: string[];
  env?: string[];
  /** The image directory (overlay lower layer); this world's image by default. */
  image?: string;
  /**
   * A network namespace to join (its path, e.g. from `ip netns add`), as a CNI-configured pod
   * sandbox's; by default runc makes a new one with loopback only.
   */
  netns?: string;
}

/**
 * Real runc containers on this host: one local image directory (no registry) whose /usr and /etc
 * are read-only bind mounts of the host's; each container's rootfs is an overlay of that image,
 * as containerd's overlayfs snapshotter makes it.
 */
export class RuncWorld {
  readonly image: string;
  readonly runcRoot: string;
  /** The agent's container checkpoint store. */
  readonly store: string;
  private readonly bundles: string[] = [];
  private readonly ids: string[] = [];

  constructor(readonly dir: string) {
    this.image = path.join(dir, 'image');
    this.runcRoot = path.join(dir, 'runc-root');
    this.store = path.join(dir, 'store');
  }

  config(allowedNamespaces: string[]): ContainerAgentConfig {
    return {
      runcPath: path.join(TORPOR_BIN, 'runc'),
      runcRoot: this.runcRoot,
      criuPath: path.join(TORPOR_BIN, 'criu'),
      // nftables: the lock that needs no iptables binary on the node (the GPU machines have none).
      networkLock: 'nftables',
      allowedNamespaces,
      checkpointSourceLabel: 'torpor.dev/checkpoint-source',
      workRoot: path.join(this.dir, 'work'),
      storeRoot: this.store,
      nodeName: 'node-a',
      // The commit's (testAgentConfig's), so the chunks hashed during a container dump are the commit's chunks.
      digestChunkBytes: testAgentConfig(this.store).digestChunkBytes,
    };
  }

  async createImage(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.store, { recursive: true });
    for (const sub of [
      'usr',
      'etc',
      'tmp',
      'data',
      'app',
      'proc',
      'dev',
      'sys',
      'checkpoints',
      'var/run/secrets/kubernetes.io/serviceaccount',
    ])
      await mkdir(path.join(this.image, sub), { recursive: true });
    for (const [link, target] of [
      ['bin', 'usr/bin'],
      ['lib', 'usr/lib'],
      ['lib64', 'usr/lib64'],
      ['sbin', 'usr/sbin'],
    ] as const) {
      await execa('ln', ['-s', target, path.join(this.image, link)]);
    }
    await writeFile(path.join(this.image, 'app', 'app.py'), APP);
    await copyFile(SMART_ENTRYPOINT, path.join(this.image, 'app', 'smart-entrypoint.sh'));
  }

  /**
   * A bundle shaped like a Kubernetes container's: its own overlay rootfs and, bind-mounted from the
   * host as kubelet and containerd do it, a /data volume, /dev/shm and a service-account token.
   */
  async createBundle(name: string, annotations: Record<string, string>, options: BundleOptions = {}): Promise<string> {
    const bundle = path.join(this.dir, 'bundles', name);
    for (const sub of ['rootfs', 'upper', 'overlay-work', 'data', 'shm', 'token']) await mkdir(path.join(bundle, sub), { recursive: true });
    await writeFile(path.join(bundle, 'token', 'token'), `token of ${name}`);
    const rootfs = path.join(bundle, 'rootfs');
    const overlay = `lowerdir=${options.image ?? this.image},upperdir=${path.join(bundle, 'upper')},workdir=${path.join(bundle, 'overlay-work')}`;
    await execa('mount', ['-t', 'overlay', 'overlay', '-o', overlay, rootfs]);
    this.bundles.push(bundle);
    await execa(path.join(TORPOR_BIN, 'runc'), ['spec', '--bundle', bundle]);
    const spec = JSON.parse(await readFile(path.join(bundle, 'config.json'), 'utf8'));
    spec.process.terminal = false;
    const placeholder = options.placeholderFor;
    spec.process.args = options.args ?? (placeholder ? PLACEHOLDER_COMMAND : ['sh', '-c', 'exec python3 /app/app.py </dev/null']);
    spec.process.env.push(...(placeholder ? placeholderEnv(placeholder.hash) : []), ...(options.env ?? []));
    spec.root = { path: rootfs, readonly: false };
    const bind = (destination: string, source: string, mode: 'ro' | 'rw') => ({
      destination,
      type: 'bind',
      source,
      options: ['rbind', mode],
    });
    spec.mounts = spec.mounts.filter((m: { destination: string }) => m.destination !== '/dev/shm');
    spec.mounts.push(
      ...['/usr', '/etc'].map((dir) => bind(dir, dir, 'ro')),
      bind('/data', path.join(bundle, 'data'), 'rw'),
      bind('/dev/shm', path.join(bundle, 'shm'), 'rw'),
      bind('/var/run/secrets/kubernetes.io/serviceaccount', path.join(bundle, 'token'), 'ro'),
      ...(placeholder ? [bind('/checkpoints', placeholder.store, 'ro')] : []),
    );
    if (options.netns) {
      spec.linux.namespaces = spec.linux.namespaces.map((ns: { type: string }) =>
        ns.type === 'network' ? { type: 'network', path: options.netns } : ns,
      );
    }
    spec.annotations = annotations;
    await writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
    return bundle;
  }

  /**
   * Starts the container detached. Its stdout and stderr are one pipe (not a socket: a container
   * runtime's shim hands runc pipes, and CRIU restores a pipe by inheriting the new one) drained
   * into a log file, read by `output(id)`.
   */
  async run(id: string, bundle: string): Promise<void> {
    this.ids.push(id);
    await mkdir(path.join(this.dir, 'logs'), { recursive: true });
    const runc = [path.join(TORPOR_BIN, 'runc'), '--root', this.runcRoot, 'run', '--detach', '--bundle', bundle, id];
    await execa('bash', ['-c', 'log="$1"; shift; exec "$@" > >(exec cat >> "$log" 2>/dev/null) 2>&1', 'bash', this.logFile(id), ...runc], {
      stdin: 'ignore',
      stdout: 'ignore',
      stderr: 'ignore',
    });
  }

  private logFile(id: string): string {
    return path.join(this.dir, 'logs', `${id}.log`);
  }

  /** What the container wrote to its stdout and stderr so far (its `kubectl logs`). */
  async output(id: string): Promise<string> {
    return readFile(this.logFile(id), 'utf8').catch(() => '');
  }

  async initPid(id: string): Promise<number> {
    const result = await execa(path.join(TORPOR_BIN, 'runc'), ['--root', this.runcRoot, 'state', id]);
    return (JSON.parse(result.stdout) as { pid: number }).pid;
  }

  /** Runs a command in the container's namespaces, as an exec readiness probe does. */
  async exec(id: string, args: string[]) {
    return execa(path.join(TORPOR_BIN, 'runc'), ['--root', this.runcRoot, 'exec', id, ...args], { reject: false });
  }

  /** Containers restored by the code under test are cleaned up too. */
  adopt(id: string): void {
    this.ids.push(id);
  }

  async state(id: string): Promise<string | undefined> {
    const result = await execa(path.join(TORPOR_BIN, 'runc'), ['--root', this.runcRoot, 'state', id], { reject: false });
    return result.exitCode === 0 ? (JSON.parse(result.stdout) as { status: string }).status : undefined;
  }

  async deleteContainer(id: string): Promise<void> {
    await execa(path.join(TORPOR_BIN, 'runc'), ['--root', this.runcRoot, 'delete', '--force', id], { reject: false });
  }

  async cleanUp(): Promise<void> {
    for (const id of this.ids) await this.deleteContainer(id);
    for (const bundle of this.bundles) await execa('umount', [path.join(bundle, 'rootfs')], { reject: false });
    await rm(this.dir, { recursive: true, force: true });
  }
}

export async function readStatus(bundle: string): Promise<AppStatus | undefined> {
  const text = await readFile(path.join(bundle, 'data', 'status.json'), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as AppStatus);
}

/** Waits until the app has reported a status for which `accept` holds. */
export async function waitForStatus(bundle: string, accept: (status: AppStatus) => boolean, timeoutMs = 20_000): Promise<AppStatus> {
  let last: AppStatus | undefined;
  const check = async () => {
    last = await readStatus(bundle);
    return last && accept(last) ? last : undefined;
  };
  return eventually(check, () => `a matching status in ${bundle} (last: ${JSON.stringify(last)})`, timeoutMs);
}

/** Waits until `check` returns a value that is not undefined; `what` names it in the timeout error. */
export async function eventually<T>(check: () => Promise<T | undefined>, what: string | (() => string), timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The node agent's store steps over this world's store, run as activities (they heartbeat). */
function storeSteps(world: RuncWorld) {
  const config = testAgentConfig(world.store, { nodeName: 'node-a', criuPath: path.join(TORPOR_BIN, 'criu') });
  return checkpointStoreActivities(config, new StoreLayout(world.store));
}

/** What the containerCheckpoint workflow does: dump the container, then commit the dump. */
export async function checkpointContainer(
  world: RuncWorld,
  activities: ReturnType<typeof createContainerActivities>,
  input: { containerId: string; hash: string; nodeName?: string },
) {
  const dumped = await activities.dumpContainer({ ...input, dumpId: `${input.hash}.test` });
  const manifest = (await new MockActivityEnvironment().run(storeSteps(world).commitCheckpoint, {
    hash: input.hash,
    dumpId: dumped.dumpId,
    startToReadyMs: 0,
    dumpMs: dumped.dumpMs,
    gpu: null,
  })) as CheckpointManifest;
  return { ...dumped, manifest };
}

/**
 * A checkpoint of the app as a source container `source` of pod `labels` (marked as a checkpoint
 * source) makes one, taken once the app has reported twice; the container is gone afterwards.
 */
export async function checkpointedSource(
  world: RuncWorld,
  activities: ReturnType<typeof createContainerActivities>,
  input: { hash: string; labels: Record<string, string>; env?: string[] },
) {
  const source = await world.createBundle(
    'source',
    { ...input.labels, 'torpor.dev/checkpoint-source': 'true' },
    input.env ? { env: input.env } : {},
  );
  await world.run('source', source);
  await waitForStatus(source, (s) => s.n >= 2);
  const checkpointed = await checkpointContainer(world, activities, { containerId: 'source', hash: input.hash, nodeName: 'node-a' });
  await world.deleteContainer('source');
  return checkpointed;
}

/** The restore workflows' first step: every file's size and sha256 against the manifest. */
export async function verifyCheckpoint(world: RuncWorld, hash: string) {
  return (await new MockActivityEnvironment().run(storeSteps(world).verifyCheckpoint, { hash })) as VerifiedCheckpoint;
}
