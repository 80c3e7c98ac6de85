import { lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';

/**
 * What a tenant would like the root agent to touch: a directory of files outside everything the
 * agent owns. `snapshot` records names, kinds, sizes, contents and modes, so a test can prove it unchanged.
 */
export async function makeOutside(dir: string): Promise<string> {
  await mkdir(path.join(dir, 'nested'), { recursive: true });
  await writeFile(path.join(dir, 'precious.txt'), 'do not touch\n');
  await writeFile(path.join(dir, 'nested', 'deep.txt'), 'nor this\n');
  return dir;
}

export async function snapshot(p: string): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  async function walk(at: string, rel: string): Promise<void> {
    const info = await lstat(at).catch(() => null);
    if (info === null) return;
    const kind = info.isSymbolicLink() ? `link:${await readlink(at)}` : info.isDirectory() ? 'dir' : `file:${await readFile(at, 'utf8')}`;
    found[rel] = `${kind} mode=${(info.mode & 0o7777).toString(8)} nlink=${info.nlink}`;
    if (info.isDirectory()) for (const child of await readdir(at)) await walk(path.join(at, child), path.join(rel, child));
  }
  await walk(p, '.');
  return found;
}

/** The failure of `run`: typed, non-retryable, of `type`. */
export async function refusedWith(run: Promise<unknown>, type: string): Promise<string> {
  const err = await run.then(
    () => null,
    (e: unknown) => e as { type?: string; nonRetryable?: boolean; message: string },
  );
  expect(err, `expected a ${type} refusal`).not.toBeNull();
  expect(err?.type).toBe(type);
  expect(err?.nonRetryable).toBe(true);
  return err?.message ?? '';
}

export const exists = (p: string) =>
  lstat(p).then(
    () => true,
    () => false,
  );
