import { describe, expect, it } from 'vitest';
import { StoreLayout } from '../../activities/node/store/layout.js';

const layout = new StoreLayout('/srv/torpor');

function failureType(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { type?: string }).type;
  }
  return undefined;
}

describe('store layout', () => {
  it("keeps ChReK's <root>/<hash> layout for committed checkpoints", () => {
    expect(layout.checkpointDir('abc')).toBe('/srv/torpor/abc');
    expect(layout.doneMarker('abc')).toBe('/srv/torpor/abc/checkpoint.done');
    expect(layout.imagesDir('abc')).toBe('/srv/torpor/abc/images');
  });

  it('puts temporary dumps under a dot-directory no valid hash can name', () => {
    expect(layout.tmpDir('abc', 'abc.1234abcd')).toBe('/srv/torpor/.tmp/abc.1234abcd');
    expect(layout.dumpRecord('abc', 'abc.1234abcd')).toBe('/srv/torpor/.tmp/abc.1234abcd.json');
  });

  it.each(['..', '../etc', '/etc/passwd', 'a/../../b', '.tmp', '', 'ABC'])('refuses the hash %j as TargetNotAllowed', (hash) => {
    expect(failureType(() => layout.checkpointDir(hash))).toBe('TargetNotAllowed');
  });

  it('refuses a dump id that belongs to another hash or escapes the temporary directory', () => {
    expect(failureType(() => layout.tmpDir('abc', 'other.1234'))).toBe('TargetNotAllowed');
    expect(failureType(() => layout.tmpDir('abc', 'abc./../x'))).toBe('TargetNotAllowed');
    expect(failureType(() => layout.tmpDir('abc', 'abc'))).toBe('TargetNotAllowed');
  });

  it("puts signal files in the configured signal directory (ChReK's host path), named by hash", () => {
    expect(new StoreLayout('/srv/torpor', '/var/lib/chrek/signals').signalFile('abc')).toBe('/var/lib/chrek/signals/abc.done');
    expect(layout.signalFile('abc')).toBe('/srv/torpor/.signals/abc.done');
    expect(failureType(() => new StoreLayout('/srv/torpor', '/var/lib/chrek/signals').signalFile('../x'))).toBe('TargetNotAllowed');
  });

  it('refuses a restore id with path syntax', () => {
    expect(failureType(() => layout.restoreDir('abc', '../../r'))).toBe('TargetNotAllowed');
  });
});
