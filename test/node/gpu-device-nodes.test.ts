import { type ChildProcess, spawn } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { provideGpuNodes } from '../../activities/node/container/gpu-device-nodes.js';

/** /dev/null's numbers: a harmless node to create under a GPU's name. */
const NODE = { type: 'c', major: 1, minor: 3 };

/**
 * A process whose root is a directory of its own (the host's /usr bound in, so it can run sleep),
 * like a tree CRIU restored into a placeholder: its /dev is `dev` inside that root, made by `makeDev`.
 */
async function processInOwnRoot(makeDev: (root: string) => Promise<void>): Promise<{ child: ChildProcess; pid: number; root: string }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'gpu-nodes-root-'));
  await mkdir(path.join(root, 'usr'));
  for (const link of ['lib', 'lib64', 'bin']) await symlink(`usr/${link}`, path.join(root, link));
  await makeDev(root);
  const script = `mount --bind /usr ${root}/usr && exec chroot ${root} /usr/bin/sleep 30`;
  const child = spawn('unshare', ['--mount', '--propagation=private', 'sh', '-c', script], { stdio: 'ignore' });
  const pid = child.pid as number;
  for (let i = 0; i < 100; i++) {
    if ((await readlink(`/proc/${pid}/root`).catch(() => '')) === root) return { child, pid, root };
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error('the test process never entered its root');
}

describe("a placeholder's GPU device nodes in a restored tree's /dev", () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const undo of cleanups.splice(0).reverse()) await undo();
  });

  async function started(makeDev: (root: string) => Promise<void>) {
    const proc = await processInOwnRoot(makeDev);
    cleanups.push(() => rm(proc.root, { recursive: true, force: true }));
    cleanups.push(() => void proc.child.kill('SIGKILL'));
    return proc;
  }

  it('creates the missing nodes in the process’s own /dev (not the host’s), once per root, leaving existing ones', async () => {
    const { pid, root } = await started(async (r) => {
      await mkdir(path.join(r, 'dev'));
      await writeFile(path.join(r, 'dev', 'nvidiactl'), '');
    });
    const nodes = [
      { path: '/dev/nvidia7', ...NODE },
      { path: '/dev/nvidiactl', ...NODE },
    ];
    await provideGpuNodes([pid, pid], nodes);
    await provideGpuNodes([pid], nodes);
    const made = await lstat(path.join(root, 'dev', 'nvidia7'));
    expect(made.isCharacterDevice()).toBe(true);
    expect(made.mode & 0o777).toBe(0o666);
    expect((await lstat(path.join(root, 'dev', 'nvidiactl'))).isFile()).toBe(true);
    expect(
      await lstat('/dev/nvidia7').then(
        () => true,
        () => false,
      ),
    ).toBe(false);
  });

  it('refuses a /dev the restored app replaced with a link, creating nothing where the link points', async () => {
    const outside = await mkdtemp(path.join(os.tmpdir(), 'gpu-nodes-outside-'));
    cleanups.push(() => rm(outside, { recursive: true, force: true }));
    const { pid } = await started((r) => symlink(outside, path.join(r, 'dev')));
    expect((await lstat(`/proc/${pid}/root/dev`)).isSymbolicLink()).toBe(true);
    await expect(provideGpuNodes([pid], [{ path: '/dev/nvidia7', ...NODE }])).rejects.toThrow(/ELOOP|ENOTDIR/);
    expect(await readdir(outside)).toEqual([]);
  });

  it('does nothing for a container given no GPU nodes', async () => {
    await expect(provideGpuNodes([process.pid], [])).resolves.toBeUndefined();
  });
});
