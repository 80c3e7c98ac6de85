import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { ContainerAgentConfig } from '../../activities/node/container/types.js';

const TORPOR_BIN = path.resolve('.torpor/bin');

/**
 * A python loop that builds state (a random instance id and a 64 KiB table), writes a file into
 * its rootfs, and reports both through /data (a bind mount) five times a second. Its stdio points
 * inside the container: CRIU cannot dump a host file outside the container's mounts.
 */
const APP = `import hashlib, json, os, random, time
iid = os.urandom(8).hex()
table = bytearray(random.getrandbits(8) for _ in range(1 << 16))
checksum = hashlib.sha256(table).hexdigest()
with open('/app/written.txt', 'w') as f:
    f.write('written by ' + iid)
n = 0
while True:
    n += 1
    with open('/app/written.txt') as f:
        written = f.read()
    status = {'iid': iid, 'checksum': hashlib.sha256(table).hexdigest(), 'built': checksum, 'n': n, 'written': written}
    with open('/data/status.json.tmp', 'w') as f:
        f.write(json.dumps(status))
    os.replace('/data/status.json.tmp', '/data/status.json')
    time.sleep(0.2)
`;

export interface AppStatus {
  iid: string;
  checksum: string;
  built: string;
  n: number;
  written: string;
}

/**
 * Real runc containers on this host: one local image directory (no registry) whose /usr and /etc
 * are read-only bind mounts of the host's; each container's rootfs is an overlay of that image,
 * as containerd's overlayfs snapshotter makes it.
 */
export class RuncWorld {
  readonly image: string;
  readonly runcRoot: string;
  private readonly bundles: string[] = [];
  private readonly ids: string[] = [];

  constructor(readonly dir: string) {
    this.image = path.join(dir, 'image');
    this.runcRoot = path.join(dir, 'runc-root');
  }

  config(allowedNamespaces: string[]): ContainerAgentConfig {
    return {
      runcPath: path.join(TORPOR_BIN, 'runc'),
      runcRoot: this.runcRoot,
      criuPath: path.join(TORPOR_BIN, 'criu'),
      allowedNamespaces,
      checkpointSourceLabel: 'torpor.dev/checkpoint-source',
      workRoot: path.join(this.dir, 'work'),
    };
  }

  async createImage(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    for (const sub of ['usr', 'etc', 'tmp', 'data', 'app', 'proc', 'dev', 'sys'])
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
  }

  /** A bundle with its own overlay rootfs and /data directory; returns the bundle path. */
  async createBundle(name: string, annotations: Record<string, string>): Promise<string> {
    const bundle = path.join(this.dir, 'bundles', name);
    for (const sub of ['rootfs', 'upper', 'overlay-work', 'data']) await mkdir(path.join(bundle, sub), { recursive: true });
    const rootfs = path.join(bundle, 'rootfs');
    const options = `lowerdir=${this.image},upperdir=${path.join(bundle, 'upper')},workdir=${path.join(bundle, 'overlay-work')}`;
    await execa('mount', ['-t', 'overlay', 'overlay', '-o', options, rootfs]);
    this.bundles.push(bundle);
    await execa(path.join(TORPOR_BIN, 'runc'), ['spec', '--bundle', bundle]);
    const spec = JSON.parse(await readFile(path.join(bundle, 'config.json'), 'utf8'));
    spec.process.terminal = false;
    spec.process.args = ['sh', '-c', 'exec python3 /app/app.py </dev/null >/tmp/app.log 2>&1'];
    spec.root = { path: rootfs, readonly: false };
    spec.mounts.push(
      ...['/usr', '/etc'].map((dir) => ({ destination: dir, type: 'bind', source: dir, options: ['rbind', 'ro'] })),
      { destination: '/data', type: 'bind', source: path.join(bundle, 'data'), options: ['rbind', 'rw'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev'] },
    );
    spec.annotations = annotations;
    await writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
    return bundle;
  }

  async run(id: string, bundle: string): Promise<void> {
    this.ids.push(id);
    await execa(path.join(TORPOR_BIN, 'runc'), ['--root', this.runcRoot, 'run', '--detach', '--bundle', bundle, id], { stdio: 'ignore' });
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
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await readStatus(bundle);
    if (status && accept(status)) return status;
    if (Date.now() > deadline) throw new Error(`no matching status in ${bundle} after ${timeoutMs} ms (last: ${JSON.stringify(status)})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
