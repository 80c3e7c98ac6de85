import { describe, expect, it } from 'vitest';
import { restoreFailureHint } from '../../activities/node/criu/args.js';

// Pure logic: the excerpts are CRIU 4.2.1's own lines, from the TP=2 runs (bench/gpu/results/tp2-criu-log-lines.txt).
describe('restoreFailureHint', () => {
  it('explains a listener that cannot bind over a TIME_WAIT remnant, and says what to do', () => {
    const excerpt = [
      "(00.208224)   1035: Error (criu/sk-inet.c:1059): inet: Can't bind inet socket (id 125): Address already in use",
      '(00.208239)   1035: Error (criu/files.c:1221): Unable to open fd=57 id=0x7d',
    ].join('\n');
    expect(restoreFailureHint(excerpt)).toMatch(/TIME_WAIT.*60 s.*SO_REUSEADDR.*multi-process contract/s);
  });

  it('says nothing about other failures', () => {
    expect(restoreFailureHint("(00.035043) Error (criu/cr-restore.c:1237): Can't fork for 16782: File exists")).toBeNull();
  });
});
