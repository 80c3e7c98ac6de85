import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import protobuf from 'protobufjs/minimal.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { regularFileNames } from '../../activities/node/criu/criu-images.js';
import { FILES_IMAGE, HEAD_BYTES, warmMappedFiles } from '../../activities/node/criu/warm-mapped-files.js';
import { pageCacheShare } from '../../activities/node/store/page-cache-residency.js';
import type { ManifestFile } from '../../contract/types.js';
import { evictFile } from '../support/page-cache.js';

const CHUNK_BYTES = 1 << 20;
/** Larger than what a file's head warming reads, so the share cached tells what was read. */
const FILE_BYTES = 4 << 20;

let work: string;

beforeAll(async () => {
  // On disk (not tmpfs), so the page cache can drop the files' pages.
  work = await mkdtemp(path.join('/var/tmp', 'torpor-warm-'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A file of random bytes, on disk and out of the page cache. */
async function coldFile(file: string): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, randomBytes(FILE_BYTES));
  evictFile(file);
  return file;
}

const cachedShare = (file: string) => pageCacheShare(path.dirname(file), [path.basename(file)]) ?? -1;

/** A files image as CRIU writes it: its magics, then size-prefixed file_entry messages (a pipe among them). */
function filesImage(names: string[]): Buffer {
  const entries = names.map((name, i) => {
    const reg = protobuf.Writer.create()
      .uint32((1 << 3) | 0)
      .uint32(i + 1)
      .uint32((6 << 3) | 2)
      .string(name)
      .finish();
    return protobuf.Writer.create()
      .uint32((1 << 3) | 0)
      .uint32(1)
      .uint32((2 << 3) | 0)
      .uint32(i + 1)
      .uint32((3 << 3) | 2)
      .bytes(reg)
      .finish();
  });
  entries.push(
    protobuf.Writer.create()
      .uint32((1 << 3) | 0)
      .uint32(2)
      .uint32((2 << 3) | 0)
      .uint32(99)
      .finish(),
  );
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0x54564319, 0);
  head.writeUInt32LE(0x56303138, 4);
  return Buffer.concat([head, ...entries.flatMap((e) => [Buffer.from(Uint32Array.of(e.length).buffer), Buffer.from(e)])]);
}

/** A checkpoint directory holding `image` as its files image, and the manifest entry a commit would record. */
async function checkpointWith(image: Buffer): Promise<{ dir: string; files: ManifestFile[] }> {
  const dir = await mkdtemp(path.join(work, 'checkpoint-'));
  await mkdir(path.join(dir, 'images'));
  await writeFile(path.join(dir, FILES_IMAGE), image);
  const chunkSha256 = [createHash('sha256').update(image).digest('hex')];
  return { dir, files: [{ path: FILES_IMAGE, sizeBytes: image.length, chunkSha256 }] };
}

describe('CRIU files images', () => {
  it('yields the regular files an image names, each once, and nothing of other entries', () => {
    expect(regularFileNames(filesImage(['/usr/lib/a.so', '/opt/b.so', '/usr/lib/a.so']))).toEqual(['/usr/lib/a.so', '/opt/b.so']);
  });

  it('refuses bytes that are not a whole files image', () => {
    expect(() => regularFileNames(Buffer.from('not an image'))).toThrow(/magic/);
    const image = filesImage(['/usr/lib/a.so']);
    expect(() => regularFileNames(image.subarray(0, image.length - 3))).toThrow(/runs past its end/);
  });
});

describe('warming the files a checkpoint mapped (real files, real page cache)', () => {
  it('reads ahead the head of each regular file below the root, and nothing reached through a link, outside it, or not a file', async () => {
    const root = path.join(work, 'root');
    const real = await coldFile(path.join(root, 'lib/real.so'));
    const linkedTarget = await coldFile(path.join(root, 'lib/target.so'));
    await symlink('target.so', path.join(root, 'lib/link.so'));
    const viaDir = await coldFile(path.join(root, 'other/via-dir.so'));
    await symlink('other', path.join(root, 'linked'));
    const outside = await coldFile(path.join(work, 'outside.so'));
    await execa('mkfifo', [path.join(root, 'lib/fifo')]);
    const names = ['/lib/real.so', '/lib/link.so', '/linked/via-dir.so', '/../outside.so', '/lib/fifo', '/lib/missing.so', '/dev/null'];
    const { dir, files } = await checkpointWith(filesImage(names));

    const warmth = await warmMappedFiles(dir, files, CHUNK_BYTES, root);

    expect(warmth).toMatchObject({ files: names.length, warmed: 1 });
    expect(warmth.skipped).toBeUndefined();
    await vi.waitFor(() => expect(cachedShare(real)).toBe(HEAD_BYTES / FILE_BYTES), { timeout: 5000 });
    for (const file of [linkedTarget, viaDir, outside]) expect(cachedShare(file)).toBe(0);
  });

  it('warms nothing when the files image does not match the manifest', async () => {
    const file = await coldFile(path.join(work, 'root-2/lib/a.so'));
    const { dir, files } = await checkpointWith(filesImage(['/lib/a.so']));
    const changed = files.map((f) => ({ ...f, chunkSha256: [createHash('sha256').update('other').digest('hex')] }));

    const warmth = await warmMappedFiles(dir, changed, CHUNK_BYTES, path.join(work, 'root-2'));

    expect(warmth).toMatchObject({ files: 0, warmed: 0, skipped: 'its images/files.img does not match the manifest' });
    await new Promise((r) => setTimeout(r, 200));
    expect(cachedShare(file)).toBe(0);
  });

  it("warms what CRIU reads of the files a real process had mapped, from CRIU's own dump of it: heads and copied-on-write pages", async () => {
    const mapped = await coldFile(path.join(work, 'mapped/model.bin'));
    const written = await coldFile(path.join(work, 'mapped/table.bin'));
    const images = path.join(work, 'dump');
    await mkdir(images);
    const ready = path.join(work, 'mapped/ready');
    // One read-only mapping, and one private writable mapping with one page written 3 MiB in.
    const script = [
      'import mmap, sys, time',
      'f = open(sys.argv[1], "rb")',
      'm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)',
      'g = open(sys.argv[2], "rb")',
      'w = mmap.mmap(g.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)',
      'w[3 << 20] = 7',
      'open(sys.argv[3], "w").close()',
      'time.sleep(600)',
    ].join('\n');
    const mapper = execa('python3', ['-c', script, mapped, written, ready], { detached: true, stdio: 'ignore', reject: false });
    try {
      await vi.waitFor(() => readFile(ready), { timeout: 10_000 });
      await execa('criu', ['dump', '-t', String(mapper.pid), '-D', images, '-o', 'dump.log', '-v4']);
    } finally {
      mapper.kill('SIGKILL');
      await mapper;
    }
    expect(regularFileNames(await readFile(path.join(images, 'files.img')))).toEqual(expect.arrayContaining([mapped, written]));
    evictFile(mapped);
    evictFile(written);
    const dir = await mkdtemp(path.join(work, 'checkpoint-'));
    const files: ManifestFile[] = [];
    for (const name of ['files.img', ...(await readdir(images)).filter((f) => /^(mm|pagemap)-\d+\.img$/.test(f))]) {
      const bytes = await readFile(path.join(images, name));
      await mkdir(path.join(dir, 'images'), { recursive: true });
      await writeFile(path.join(dir, 'images', name), bytes);
      files.push({ path: `images/${name}`, sizeBytes: bytes.length, chunkSha256: [createHash('sha256').update(bytes).digest('hex')] });
    }

    const warmth = await warmMappedFiles(dir, files, CHUNK_BYTES, '/');

    expect(warmth.warmed).toBeGreaterThanOrEqual(3); // both files and python itself
    await vi.waitFor(() => expect(cachedShare(mapped)).toBe(HEAD_BYTES / FILE_BYTES), { timeout: 5000 });
    // The written page's file page too: the kernel reads it before CRIU's copy lands on it.
    await vi.waitFor(() => expect(cachedShare(written)).toBe((HEAD_BYTES + 4096) / FILE_BYTES), { timeout: 5000 });
  });
});
