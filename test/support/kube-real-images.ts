import { copyFile, mkdir, realpath, symlink } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { buildOciArchive } from './oci-image.js';

/** The sandbox image the test node's containerd is told to use; imported, never pulled. */
export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10';
/** The HTTP sample app (sample-app/app.py) on a Python copied from this host. */
export const SAMPLE_IMAGE = 'registry.example/torpor-sample:1';

const TOOLS = ['/usr/bin/sh', '/usr/bin/cat', '/usr/bin/sleep'];

/** Copies `file` (links followed) to the same path under `rootfs`, as the host's merged /usr names it. */
async function copyIn(rootfs: string, file: string): Promise<void> {
  const dir = await realpath(path.dirname(file));
  await mkdir(path.join(rootfs, dir), { recursive: true });
  await copyFile(file, path.join(rootfs, dir, path.basename(file)));
}

/** The shared libraries `binaries` load, as ldd resolves them on this host. */
async function libraries(binaries: string[]): Promise<string[]> {
  const { stdout } = await execa('ldd', binaries, { reject: false });
  return [...new Set([...stdout.matchAll(/(\/\S+\.so[^\s]*) \(0x/g)].map((m) => m[1] as string))];
}

/**
 * A self-contained image root: no host directory is mounted into a pod the kubelet starts from
 * the checkpoint Job, so Python, its standard library, sh and cat (the ready-file probe) are copied in.
 */
export async function buildSampleRootfs(rootfs: string, appFile: string): Promise<void> {
  // The host's Python (python3.11 on Debian bookworm): its binary and standard library by name.
  const python = await realpath('/usr/bin/python3');
  const stdlib = `usr/lib/${path.basename(python)}`;
  for (const sub of ['usr/bin', 'usr/lib', 'usr/lib64', 'etc', 'tmp', 'app', 'proc', 'dev', 'sys']) {
    await mkdir(path.join(rootfs, sub), { recursive: true });
  }
  for (const [link, target] of [
    ['bin', 'usr/bin'],
    ['lib', 'usr/lib'],
    ['lib64', 'usr/lib64'],
    ['sbin', 'usr/bin'],
  ] as const) {
    await symlink(target, path.join(rootfs, link));
  }
  await execa('tar', [
    '-C',
    '/',
    '--exclude=test',
    '--exclude=__pycache__',
    '--exclude=site-packages',
    '--exclude=dist-packages',
    '-cf',
    `${rootfs}/stdlib.tar`,
    stdlib,
  ]);
  await execa('tar', ['-C', rootfs, '-xf', `${rootfs}/stdlib.tar`]);
  await execa('rm', [`${rootfs}/stdlib.tar`]);
  const dynload = (await execa('sh', ['-c', `ls /${stdlib}/lib-dynload/*.so`])).stdout.split('\n');
  for (const file of [python, ...TOOLS, ...(await libraries([python, ...TOOLS, ...dynload]))]) await copyIn(rootfs, file);
  await symlink(path.basename(python), path.join(rootfs, 'usr/bin/python3'));
  await copyFile(appFile, path.join(rootfs, 'app', 'app.py'));
  await copyFile(path.resolve('deploy/images/smart-entrypoint.sh'), path.join(rootfs, 'app', 'smart-entrypoint.sh'));
  await execa('sh', ['-c', `printf 'root:x:0:0::/:/bin/sh\\nnobody:x:65534:65534::/:/bin/sh\\n' > ${rootfs}/etc/passwd`]);
}

/** Both images as OCI archives under `dir`, for `startRealNode` to import. */
export async function buildNodeImages(dir: string): Promise<string[]> {
  const sample = path.join(dir, 'sample');
  const pause = path.join(dir, 'pause');
  await buildSampleRootfs(sample, path.resolve('sample-app/app.py'));
  await buildPauseRootfs(pause, path.resolve('.torpor/bin/torpor-pause'));
  const archives = [path.join(dir, 'sample.tar'), path.join(dir, 'pause.tar')] as const;
  // As a ChReK image: the smart entrypoint first (a restore pod runs the image's own command).
  const run = { Entrypoint: ['sh', '/app/smart-entrypoint.sh'], Cmd: ['python3', '/app/app.py'] };
  await buildOciArchive(sample, SAMPLE_IMAGE, archives[0], { Env: ['PATH=/usr/bin:/bin'], ...run });
  await buildOciArchive(pause, PAUSE_IMAGE, archives[1], { Entrypoint: ['/pause'] });
  return [...archives];
}

/** The pause image's root: the static tools/pause binary, built by the set-up. */
export async function buildPauseRootfs(rootfs: string, pauseBinary: string): Promise<void> {
  await mkdir(rootfs, { recursive: true });
  await copyFile(pauseBinary, path.join(rootfs, 'pause'));
  await execa('chmod', ['0755', path.join(rootfs, 'pause')]);
}
