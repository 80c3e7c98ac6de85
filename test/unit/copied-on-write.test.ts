import { describe, expect, it } from 'vitest';
import { copiedOnWrite } from '../../activities/node/criu/criu-images.js';

const PAGE = 4096;

describe('the file ranges a restore copies on write', () => {
  it('maps each dumped range inside a private file mapping to the file bytes under it, from the mapping offset', () => {
    const mappings = [
      { fileId: 7, start: 100 * PAGE, end: 110 * PAGE, offset: 16 * PAGE },
      { fileId: 9, start: 200 * PAGE, end: 204 * PAGE, offset: 0 },
    ];
    // Unsorted, one range across a mapping's start, one inside, one across its end, one in no mapping.
    const dumped = [
      { start: 108 * PAGE, end: 112 * PAGE },
      { start: 98 * PAGE, end: 101 * PAGE },
      { start: 104 * PAGE, end: 105 * PAGE },
      { start: 150 * PAGE, end: 160 * PAGE },
      { start: 203 * PAGE, end: 206 * PAGE },
    ];
    expect(copiedOnWrite(mappings, dumped)).toEqual(
      new Map([
        [
          7,
          [
            [16 * PAGE, 17 * PAGE],
            [20 * PAGE, 21 * PAGE],
            [24 * PAGE, 26 * PAGE],
          ],
        ],
        [9, [[3 * PAGE, 4 * PAGE]]],
      ]),
    );
  });

  it('yields nothing for mappings no dumped page falls in', () => {
    expect(copiedOnWrite([{ fileId: 1, start: 10 * PAGE, end: 20 * PAGE, offset: 0 }], [{ start: 0, end: 10 * PAGE }]).size).toBe(0);
  });
});
