import { lstat, mkdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';

/** A GPU as the NVIDIA container runtime hands it to a container: its device node and its UUID. */
export interface ContainerGpu {
  uuid: string;
  /** /dev/nvidiaN of this GPU; null where the driver's /proc does not say (then every GPU node is bound). */
  deviceNode: string | null;
}

export interface ContainerBundleOptions {
  annotations: Record<string, string>;
  args: string[];
  env: string[];
  /** Host directory → container path, read-write. */
  rw: Record<string, string>;
  /** Host directory → container path, read-only. */
  ro: Record<string, string>;
  /** The GPU to hand the container; none in a dry run. */
  gpu: ContainerGpu | null;
}

/** The host's root directories a container's image is made of: merged-/usr links stay links, the rest is bound read-only. */
const HOST_ROOTS = ['usr', 'lib', 'lib64', 'lib32', 'bin', 'sbin', 'etc', 'opt'];
/** The driver's control nodes every CUDA process opens, beside its GPU's own node. */
const NVIDIA_CONTROL = ['/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools', '/dev/nvidia-modeset'];

async function charDevice(node: string) {
  const st = await stat(node).catch(() => null);
  if (!st?.isCharacterDevice()) return null;
  return {
    path: node,
    type: 'c',
    major: Math.floor(st.rdev / 256) & 0xfff,
    minor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00),
    fileMode: 0o666,
    uid: 0,
    gid: 0,
  };
}

/** The device nodes of `gpu` (or of every GPU), as the NVIDIA runtime adds them: linux.devices plus the cgroup's allow rules. */
async function nvidiaDevices(gpu: ContainerGpu) {
  const own = gpu.deviceNode
    ? [gpu.deviceNode]
    : (await execa('sh', ['-c', 'ls /dev/nvidia[0-9]* 2>/dev/null || true'])).stdout.split('\n').filter(Boolean);
  const devices = (await Promise.all([...own, ...NVIDIA_CONTROL].map(charDevice))).filter((d) => d !== null);
  const allow = devices.map(({ major, minor }) => ({ allow: true, type: 'c', major, minor, access: 'rwm' }));
  return { devices, allow };
}

type Bind = { destination: string; type: string; source: string; options: string[] };

/**
 * Mounts of the host below the bound roots (the GPU machine mounts the driver at /usr/local/nvidia),
 * each bound on its own: runc tells CRIU that a bind of the config is external, whereas a submount
 * brought in by a recursive bind is dumped as a file system, and CRIU cannot dump the driver's
 * ("FS mnt ./usr/local/nvidia ... unsupported").
 */
async function hostSubmounts(roots: string[]): Promise<Bind[]> {
  const decodeOctal = (p: string) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  const points = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((line) => decodeOctal(line.split(' ')[4] ?? ''))
    .filter((mp) => roots.some((root) => mp.startsWith(`${root}/`)));
  return [...new Set(points)]
    .sort((a, b) => a.split('/').length - b.split('/').length)
    .map((mp) => ({ destination: mp, type: 'bind', source: mp, options: ['bind', 'ro'] }));
}

/**
 * The image both containers run (the agent restores only into a placeholder of the checkpoint's
 * image): the host's root directories, merged-/usr links kept as links, the rest bound read-only
 * (so python and the driver's libraries are the host's, as the NVIDIA runtime binds the driver's),
 * and a mount point for every volume either container binds.
 */
export async function createImage(image: string, mountPoints: string[]): Promise<Bind[]> {
  const binds: Bind[] = [];
  await mkdir(image, { recursive: true });
  for (const root of HOST_ROOTS) {
    const info = await lstat(`/${root}`).catch(() => null);
    if (info?.isSymbolicLink()) await symlink(await readlink(`/${root}`), path.join(image, root)).catch(() => undefined);
    else if (info?.isDirectory()) binds.push({ destination: `/${root}`, type: 'bind', source: `/${root}`, options: ['bind', 'ro'] });
  }
  binds.push(...(await hostSubmounts(binds.map((b) => b.destination))));
  for (const m of [...binds.map((b) => b.destination), ...mountPoints, '/tmp', '/proc', '/dev', '/sys'])
    await mkdir(path.join(image, m), { recursive: true });
  return binds;
}

/** A runc bundle shaped as a Kubernetes GPU container's: an overlay rootfs over `image`, volumes bound in, the GPU's device nodes. */
export async function createBundle(
  runc: string,
  dir: string,
  image: { dir: string; binds: Bind[] },
  options: ContainerBundleOptions,
): Promise<string> {
  const bind =
    (mode: 'ro' | 'rw') =>
    ([source, destination]: [string, string]) => ({ destination, type: 'bind', source, options: ['rbind', mode] });
  const binds = [...image.binds, ...Object.entries(options.ro).map(bind('ro')), ...Object.entries(options.rw).map(bind('rw'))];
  const rootfs = path.join(dir, 'rootfs');
  for (const sub of ['rootfs', 'upper', 'overlay-work', 'shm']) await mkdir(path.join(dir, sub), { recursive: true });
  await execa('mount', [
    '-t',
    'overlay',
    'overlay',
    '-o',
    `lowerdir=${image.dir},upperdir=${dir}/upper,workdir=${dir}/overlay-work`,
    rootfs,
  ]);
  await execa(runc, ['spec', '--bundle', dir]);
  const spec = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8'));
  spec.process.terminal = false;
  spec.process.args = options.args;
  spec.process.env.push(...options.env);
  spec.root = { path: rootfs, readonly: false };
  spec.mounts = spec.mounts.filter((m: { destination: string }) => m.destination !== '/dev/shm');
  spec.mounts.push(...binds, { destination: '/dev/shm', type: 'bind', source: path.join(dir, 'shm'), options: ['rbind', 'rw'] });
  if (options.gpu) {
    const { devices, allow } = await nvidiaDevices(options.gpu);
    spec.linux.devices = devices;
    spec.linux.resources = { ...spec.linux.resources, devices: [...(spec.linux.resources?.devices ?? []), ...allow] };
  }
  spec.annotations = options.annotations;
  await writeFile(path.join(dir, 'config.json'), JSON.stringify(spec, null, 2));
  return dir;
}

/** Starts a container detached; its stdout and stderr are one pipe drained into `log` (runtimes hand runc pipes, never a file or socket). */
export async function runContainer(runc: string, runcRoot: string, id: string, bundle: string, log: string): Promise<void> {
  const command = [runc, '--root', runcRoot, 'run', '--detach', '--bundle', bundle, id];
  await execa('bash', ['-c', 'log="$1"; shift; exec "$@" > >(exec cat >> "$log" 2>/dev/null) 2>&1', 'bash', log, ...command], {
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'ignore',
  });
}

export async function execInContainer(runc: string, runcRoot: string, id: string, args: string[]) {
  return execa(runc, ['--root', runcRoot, 'exec', id, ...args], { reject: false });
}

export async function removeContainer(runc: string, runcRoot: string, id: string, bundle: string): Promise<void> {
  await execa(runc, ['--root', runcRoot, 'delete', '--force', id], { reject: false });
  await execa('umount', [path.join(bundle, 'rootfs')], { reject: false });
  await rm(bundle, { recursive: true, force: true }).catch(() => undefined);
}
