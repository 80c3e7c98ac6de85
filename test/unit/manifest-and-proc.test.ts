import { describe, expect, it } from 'vitest';
import { parseProcStat } from '../../activities/node/proc/identity.js';
import { manifestMismatches, parseManifest, totalBytes } from '../../activities/node/store/manifest.js';

const f = (path: string, sizeBytes: number, sha256: string) => ({ path, sizeBytes, sha256 });

describe('manifest comparison', () => {
  const expected = [f('images/a.img', 10, 'aa'), f('images/b.img', 20, 'bb')];

  it('finds no problem when files match', () => {
    expect(manifestMismatches(expected, [...expected].reverse())).toEqual([]);
    expect(totalBytes(expected)).toBe(30);
  });

  it('reports missing, resized, altered and extra files', () => {
    const problems = manifestMismatches(expected, [f('images/a.img', 11, 'aa'), f('images/c.img', 1, 'cc')]);
    expect(problems).toEqual(['images/a.img has 11 bytes, expected 10', 'images/b.img is missing', 'images/c.img is not in the manifest']);
    expect(manifestMismatches(expected, [f('images/a.img', 10, 'xx'), expected[1] as never])).toEqual([
      'images/a.img has sha256 xx, expected aa',
    ]);
  });

  it('refuses JSON that is not a Torpor manifest', () => {
    expect(() => parseManifest('{"hash":"x"}')).toThrow(/formatVersion 1/);
    expect(() => parseManifest('not json')).toThrow();
  });
});

describe('/proc/<pid>/stat parsing', () => {
  it('reads state, process group and start time even when the command name has spaces and parentheses', () => {
    const stat = '1234 (evil) name (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615';
    expect(parseProcStat(stat)).toEqual({ state: 'S', pgid: 1234, startTime: 987654 });
  });
});
