import { describe, expect, it } from 'vitest';
import { parseProcStat } from '../../activities/node/proc/identity.js';
import { chunkRanges } from '../../activities/node/store/chunk-digests.js';
import { parseManifest, totalBytes } from '../../activities/node/store/manifest.js';
import { contentMismatches, manifestChunkBytes } from '../../activities/node/store/verify-contents.js';

const f = (path: string, sizeBytes: number, chunkSha256: string[]) => ({ path, sizeBytes, chunkSha256 });

describe('chunk ranges', () => {
  it('cuts a file into equal chunks, the last one shorter, and an empty file into one empty chunk', () => {
    expect(chunkRanges(10, 4)).toEqual([
      { offset: 0, length: 4 },
      { offset: 4, length: 4 },
      { offset: 8, length: 2 },
    ]);
    expect(chunkRanges(8, 4)).toHaveLength(2);
    expect(chunkRanges(0, 4)).toEqual([{ offset: 0, length: 0 }]);
    expect(chunkRanges(10, Number.POSITIVE_INFINITY)).toEqual([{ offset: 0, length: 10 }]);
    expect(() => chunkRanges(10, 0)).toThrow(RangeError);
  });

  it('takes the chunk size from a format 2 manifest; format 1 digests whole files', () => {
    expect(manifestChunkBytes({ formatVersion: 2, chunkBytes: 64 })).toBe(64);
    expect(manifestChunkBytes({ formatVersion: 1 })).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('manifest comparison', () => {
  const expected = [f('images/a.img', 10, ['a0', 'a1', 'a2']), f('images/b.img', 4, ['b0'])];

  it('finds no problem when files match', () => {
    expect(contentMismatches(expected, [...expected].reverse(), 4)).toEqual([]);
    expect(totalBytes(expected)).toBe(14);
  });

  it('reports missing, resized and extra files', () => {
    const problems = contentMismatches(expected, [f('images/a.img', 11, ['a0', 'a1', 'a2']), f('images/c.img', 1, ['cc'])], 4);
    expect(problems).toEqual(['images/a.img has 11 bytes, expected 10', 'images/b.img is missing', 'images/c.img is not in the manifest']);
  });

  it('names the chunk that differs and its bytes, the last one included', () => {
    expect(contentMismatches(expected, [f('images/a.img', 10, ['a0', 'a1', 'xx']), expected[1] as never], 4)).toEqual([
      'images/a.img has sha256 xx in chunk 2 of 3 (bytes 8-9), expected a2',
    ]);
    expect(contentMismatches(expected, [expected[0] as never, f('images/b.img', 4, ['yy'])], 4)).toEqual([
      'images/b.img has sha256 yy, expected b0',
    ]);
  });

  it('compares a format 1 manifest, whole-file sha256, against one digest per file', () => {
    const v1 = [{ path: 'images/a.img', sizeBytes: 10, sha256: 'whole' }];
    expect(contentMismatches(v1, [f('images/a.img', 10, ['whole'])], Number.POSITIVE_INFINITY)).toEqual([]);
    expect(contentMismatches(v1, [f('images/a.img', 10, ['other'])], Number.POSITIVE_INFINITY)).toEqual([
      'images/a.img has sha256 other, expected whole',
    ]);
  });

  it('refuses JSON that is not a Torpor manifest, and a format 2 one without its chunk size', () => {
    expect(() => parseManifest('{"hash":"x"}')).toThrow(/formatVersion 1/);
    expect(() => parseManifest('{"formatVersion":2,"hash":"x","files":[]}')).toThrow(/chunkBytes/);
    expect(() => parseManifest('not json')).toThrow();
  });
});

describe('/proc/<pid>/stat parsing', () => {
  it('reads state, process group and start time even when the command name has spaces and parentheses', () => {
    const stat = '1234 (evil) name (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615';
    expect(parseProcStat(stat)).toEqual({ state: 'S', pgid: 1234, startTime: 987654 });
  });
});
