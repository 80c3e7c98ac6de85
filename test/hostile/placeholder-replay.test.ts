import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, rmdir, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type CgroupDir, withCgroupFrozen } from '../../activities/node/container/cgroups.js';
import { writeMarkerInRoot } from '../../activities/node/container/restore-marker.js';
import { replayRootfsDiffThrough, unpackIntoDirectory } from '../../activities/node/container/rootfs-diff.js';
import { exists, makeOutside, refusedWith, snapshot } from './hostile-files.js';

// Hostile rootfs diffs and /dev/shm archives (built with Python's tarfile, which writes any name
// and any link) replayed into a real directory standing for the placeholder's root, and a
// placeholder process that races the replay. Every case checks the host directory is unchanged.
let base: string;
let container: string;
let outside: string;

beforeEach(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), 'torpor-replay-'));
  container = path.join(base, 'container-root');
  await mkdir(path.join(container, 'app'), { recursive: true });
  outside = await makeOutside(path.join(base, 'host-files'));
});
afterEach(() => rm(base, { recursive: true, force: true }));

type Entry = { name: string; type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'whiteout'; target?: string; data?: string };

/** A tar archive with exactly these entries, whatever their names. */
async function hostileTar(entries: Entry[]): Promise<string> {
  const file = path.join(base, `hostile-${Math.random().toString(36).slice(2)}.tar`);
  const script = `
import io, json, sys, tarfile
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as tar:
    for e in json.loads(sys.argv[2]):
        info = tarfile.TarInfo(e['name'])
        data = e.get('data', '').encode()
        kind = e['type']
        info.type = {'file': tarfile.REGTYPE, 'dir': tarfile.DIRTYPE, 'symlink': tarfile.SYMTYPE, 'hardlink': tarfile.LNKTYPE, 'whiteout': tarfile.CHRTYPE}[kind]
        info.linkname = e.get('target', '')
        info.mode = 0o755 if kind == 'dir' else 0o644
        info.size = len(data) if kind == 'file' else 0
        tar.addfile(info, io.BytesIO(data) if kind == 'file' else None)
`;
  await execa('python3', ['-c', script, file, JSON.stringify(entries)]);
  return file;
}

async function replayRefused(entries: Entry[]): Promise<void> {
  const before = await snapshot(outside);
  await refusedWith(replayRootfsDiffThrough(container, await hostileTar(entries)), 'TargetNotAllowed');
  expect(await snapshot(outside)).toEqual(before);
}

describe('a hostile rootfs diff writes nothing outside the placeholder root', () => {
  const outward = () => path.relative(container, path.join(outside, 'planted.txt'));

  it('an entry with ".." reaching a host directory', () => replayRefused([{ name: outward(), type: 'file', data: 'pwned' }]));
  it('an absolute entry', () => replayRefused([{ name: path.join(outside, 'planted.txt'), type: 'file', data: 'pwned' }]));
  it('".." in the middle of a name', () => replayRefused([{ name: `app/../${outward()}`, type: 'file', data: 'pwned' }]));
  it('a hard link to a host file', () => replayRefused([{ name: 'app/hl', type: 'hardlink', target: path.join(outside, 'precious.txt') }]));
  it('a hard link with ".." to a host file', () =>
    replayRefused([{ name: 'app/hl', type: 'hardlink', target: path.relative(container, path.join(outside, 'precious.txt')) }]));
  it('a symlink entry to a host directory, then a file through it', () =>
    replayRefused([
      { name: 'app/door', type: 'symlink', target: outside },
      { name: 'app/door/planted.txt', type: 'file', data: 'pwned' },
    ]));
  it("a file through an absolute symlink of the placeholder's image", async () => {
    await symlink(outside, path.join(container, 'etc'));
    await replayRefused([{ name: 'etc/planted.txt', type: 'file', data: 'pwned' }]);
  });
  it('a whiteout (deletion) below a symlink to a host directory', async () => {
    await symlink(outside, path.join(container, 'data'));
    await replayRefused([{ name: 'data/precious.txt', type: 'whiteout' }]);
  });

  it('a whiteout of a symlink to a host directory removes the link, not the directory', async () => {
    await symlink(outside, path.join(container, 'app', 'cache'));
    const before = await snapshot(outside);
    await replayRootfsDiffThrough(container, await hostileTar([{ name: 'app/cache', type: 'whiteout' }]));
    expect(await snapshot(outside)).toEqual(before);
    expect(await exists(path.join(container, 'app', 'cache'))).toBe(false);
  });

  it('a /dev/shm archive with ".." or a symlink entry writes nothing outside the shm directory', async () => {
    const shm = path.join(base, 'shm');
    await mkdir(shm);
    const before = await snapshot(outside);
    const dotdot = await hostileTar([{ name: path.relative(shm, path.join(outside, 'planted.txt')), type: 'file', data: 'x' }]);
    await refusedWith(unpackIntoDirectory(dotdot, shm), 'TargetNotAllowed');
    const viaLink = await hostileTar([
      { name: 'door', type: 'symlink', target: outside },
      { name: 'door/planted.txt', type: 'file', data: 'x' },
    ]);
    await unpackIntoDirectory(viaLink, shm).catch(() => undefined);
    expect(await snapshot(outside)).toEqual(before);
  });
});

describe('a placeholder racing the replay cannot redirect it (frozen cgroup)', () => {
  let cgroup: string;
  let racer: ChildProcess | undefined;
  beforeEach(async () => {
    cgroup = path.join('/sys/fs/cgroup/freezer', `torpor-hostile-${process.pid}`);
    await mkdir(cgroup, { recursive: true });
  });
  afterEach(async () => {
    racer?.kill('SIGKILL');
    await writeFile(path.join(cgroup, 'freezer.state'), 'THAWED').catch(() => undefined);
    await sleep(100);
    await rmdir(cgroup).catch(() => undefined);
  });
  const dirs = (): CgroupDir[] => [{ version: 1, mountPoint: '/sys/fs/cgroup/freezer', dir: cgroup }];

  it('swapping a directory for a link to the host in a loop: nothing lands outside', async () => {
    const data = path.join(container, 'data');
    await mkdir(data);
    // The "tenant": swaps data/ for a link to the host directory and back, as fast as it can.
    const loop = `while true; do mv data data.real; ln -s ${outside} data; rm data; mv data.real data; done`;
    racer = spawn('sh', ['-c', loop], { cwd: container, stdio: 'ignore' });
    await writeFile(path.join(cgroup, 'cgroup.procs'), String(racer.pid));
    await sleep(200);
    const before = await snapshot(outside);
    const tar = await hostileTar(Array.from({ length: 200 }, (_, i) => ({ name: `data/f${i}`, type: 'file' as const, data: `${i}` })));
    for (let round = 0; round < 5; round++) {
      await withCgroupFrozen(dirs(), 'the racing placeholder', async () => {
        await replayRootfsDiffThrough(container, tar).catch(() => undefined);
        await writeMarkerInRoot(container, '/data/restored', 'yes').catch(() => undefined);
      });
      await sleep(50);
    }
    expect(await snapshot(outside)).toEqual(before);
    expect(await readFile(path.join(base, 'host-files', 'precious.txt'), 'utf8')).toBe('do not touch\n');
  });

  it("a placeholder in the agent's own cgroup is refused, not frozen", async () => {
    const own =
      (await readFile('/proc/self/cgroup', 'utf8'))
        .split('\n')
        .find((l) => /:freezer:/.test(l))
        ?.split(':')[2] ?? '/';
    const agentDirs: CgroupDir[] = [{ version: 1, mountPoint: '/sys/fs/cgroup/freezer', dir: path.join('/sys/fs/cgroup/freezer', own) }];
    let ran = false;
    await refusedWith(
      withCgroupFrozen(agentDirs, 'a placeholder sharing the agent cgroup', async () => {
        ran = true;
      }),
      'TargetNotAllowed',
    );
    expect(ran).toBe(false);
  });
});
