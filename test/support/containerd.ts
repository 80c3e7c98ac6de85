import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';

const TORPOR_BIN = path.resolve('.torpor/bin');
/** containerd's runc shim keeps runc's state here, per containerd namespace. */
export const CONTAINERD_RUNC_ROOT = '/run/containerd/runc/k8s.io';

/**
 * A real containerd (Debian's, from the set-up) with its own root, state and socket, the CRI
 * plugin off (no kubelet here): containers are created through its API with `ctr`, in the k8s.io
 * namespace, carrying the annotations containerd's CRI plugin would give them.
 */
export class Containerd {
  private daemon: ChildProcess | undefined;
  private readonly ids: string[] = [];
  readonly socket: string;

  constructor(readonly dir: string) {
    this.socket = path.join(dir, 'containerd.sock');
  }

  private env() {
    return { ...process.env, PATH: `${TORPOR_BIN}:${process.env.PATH ?? ''}` };
  }

  async start(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true });
    const config = path.join(this.dir, 'config.toml');
    await writeFile(
      config,
      [
        'version = 2',
        `root = "${path.join(this.dir, 'root')}"`,
        `state = "${path.join(this.dir, 'state')}"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${this.socket}"`,
        '',
      ].join('\n'),
    );
    this.daemon = spawn(path.join(TORPOR_BIN, 'containerd'), ['--config', config], { env: this.env(), stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      if ((await this.ctr(['version'])).exitCode === 0) return;
      await sleep(100);
    }
    throw new Error('containerd did not start');
  }

  ctr(args: string[]) {
    return execa(path.join(TORPOR_BIN, 'ctr'), ['--address', this.socket, '-n', 'k8s.io', ...args], { reject: false, env: this.env() });
  }

  async importImage(archive: string): Promise<void> {
    const result = await this.ctr(['images', 'import', archive]);
    if (result.exitCode !== 0) throw new Error(`ctr images import: ${result.stderr}`);
  }

  /** `ctr run -d`: stdout and stderr go through the shim's pipes into `logFile` (its `kubectl logs`). */
  async run(
    id: string,
    image: string,
    options: { annotations: Record<string, string>; binds: Array<[string, string, 'ro' | 'rw']>; env?: string[]; logFile: string },
    command: string[],
  ): Promise<void> {
    this.ids.push(id);
    const args = ['run', '-d', '--log-uri', `file://${options.logFile}`];
    for (const [key, value] of Object.entries(options.annotations)) args.push('--annotation', `${key}=${value}`);
    for (const [src, dst, mode] of options.binds) args.push('--mount', `type=bind,src=${src},dst=${dst},options=rbind:${mode}`);
    for (const e of options.env ?? []) args.push('--env', e);
    const result = await this.ctr([...args, image, id, ...command]);
    if (result.exitCode !== 0) throw new Error(`ctr run ${id}: ${result.stderr}`);
  }

  async remove(id: string): Promise<void> {
    await this.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
    for (let i = 0; i < 50; i++) {
      if ((await this.ctr(['task', 'rm', '-f', id])).exitCode === 0) break;
      await sleep(100);
    }
    await this.ctr(['containers', 'rm', id]);
  }

  async stop(): Promise<void> {
    for (const id of this.ids) await this.remove(id);
    this.daemon?.kill('SIGTERM');
    await sleep(500);
    await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
