import protobuf from 'protobufjs/minimal.js';

/** CRIU's image magics (criu/include/magic.h): every image starts with the common one, then its own. */
const IMG_COMMON_MAGIC = 0x54564319;
const FILES_MAGIC = 0x56303138;
const MM_MAGIC = 0x57492820;
const PAGEMAP_MAGIC = 0x56084025;

const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;

/** vma_entry.status bits (criu/include/image.h) and pagemap_entry.flags (criu/include/pagemap.h). */
const VMA_FILE_PRIVATE = 1 << 6;
const PE_PRESENT = 1 << 2;
const PAGE_BYTES = 4096;

type Field = { field: number; wire: number; reader: protobuf.Reader };

/** Calls `onField` for each field of one message; it reads the value or returns false to have it skipped. */
function eachField(bytes: Uint8Array, onField: (f: Field) => boolean): void {
  const reader = protobuf.Reader.create(bytes);
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const f = { field: tag >>> 3, wire: tag & 7, reader };
    if (!onField(f)) reader.skipType(f.wire);
  }
}

const isVarint = (f: Field, field: number) => f.field === field && f.wire === WIRE_VARINT;
const isBytes = (f: Field, field: number) => f.field === field && f.wire === WIRE_LENGTH_DELIMITED;
/** A uint64 as a number: addresses and offsets stay far below 2^53 on 48- and 57-bit address spaces. */
const uint64 = (reader: protobuf.Reader) => Number(BigInt.asUintN(64, BigInt(reader.uint64().toString())));

/** The size-prefixed messages of an image whose own magic is `magic`; throws on anything else. */
function imageEntries(image: Uint8Array, magic: number, what: string): Uint8Array[] {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (image.byteLength < 8 || view.getUint32(0, true) !== IMG_COMMON_MAGIC || view.getUint32(4, true) !== magic) {
    throw new Error(`not a CRIU ${what} image (its magic differs)`);
  }
  const entries: Uint8Array[] = [];
  let at = 8;
  while (at < image.byteLength) {
    if (at + 4 > image.byteLength) throw new Error(`the ${what} image ends inside an entry's size at byte ${at}`);
    const size = view.getUint32(at, true);
    at += 4;
    if (at + size > image.byteLength) throw new Error(`the ${what} image's entry at byte ${at - 4} runs past its end`);
    entries.push(image.subarray(at, at + size));
    at += size;
  }
  return entries;
}

/** A regular file the dumped tree had open or mapped, by its id in the images. */
export interface RegularFile {
  id: number;
  name: string;
}

/** reg_file_entry (images/regfile.proto): name 6. */
function regFileName(bytes: Uint8Array): string | undefined {
  let name: string | undefined;
  eachField(bytes, (f) => {
    if (!isBytes(f, 6)) return false;
    name = f.reader.string();
    return true;
  });
  return name;
}

/** file_entry (images/fdinfo.proto): type 1 (fd_types.REG = 1), id 2, reg 3; reg_file_entry: name 6. */
function regularFileOf(bytes: Uint8Array): RegularFile | undefined {
  let type: number | undefined;
  let id: number | undefined;
  let name: string | undefined;
  eachField(bytes, (f) => {
    if (isVarint(f, 1)) type = f.reader.uint32();
    else if (isVarint(f, 2)) id = f.reader.uint32();
    else if (isBytes(f, 3)) name = regFileName(f.reader.bytes());
    else return false;
    return true;
  });
  return type === 1 && id !== undefined && name !== undefined ? { id, name } : undefined;
}

/**
 * The regular files a CRIU files.img names (every mapped library, every open file), with the paths
 * the dumped tree's mount namespace saw, in the image's order. Throws on anything that is not a
 * whole files image.
 */
export function regularFiles(image: Uint8Array): RegularFile[] {
  return imageEntries(image, FILES_MAGIC, 'files').flatMap((e) => regularFileOf(e) ?? []);
}

/** The distinct paths of regularFiles. */
export function regularFileNames(image: Uint8Array): string[] {
  return [...new Set(regularFiles(image).map((f) => f.name))];
}

/** A private mapping of a regular file: [start, end) of the address space shows the file from byte `offset`. */
export interface PrivateFileMapping {
  fileId: number;
  start: number;
  end: number;
  offset: number;
}

/** vma_entry (images/vma.proto): start 1, end 2, pgoff 3 (bytes), shmid 4 (the file's id), status 7. */
function privateFileMappingOf(bytes: Uint8Array): PrivateFileMapping | undefined {
  const v = { start: 0, end: 0, pgoff: 0, shmid: 0, status: 0 };
  eachField(bytes, (f) => {
    if (f.wire !== WIRE_VARINT) return false;
    if (f.field === 1) v.start = uint64(f.reader);
    else if (f.field === 2) v.end = uint64(f.reader);
    else if (f.field === 3) v.pgoff = uint64(f.reader);
    else if (f.field === 4) v.shmid = uint64(f.reader);
    else if (f.field === 7) v.status = f.reader.uint32();
    else return false;
    return true;
  });
  return v.status & VMA_FILE_PRIVATE && v.end > v.start ? { fileId: v.shmid, start: v.start, end: v.end, offset: v.pgoff } : undefined;
}

/** The private file mappings of one process, from its mm-<id>.img (mm_entry.vmas = 14). */
export function privateFileMappings(image: Uint8Array): PrivateFileMapping[] {
  const mappings: PrivateFileMapping[] = [];
  for (const entry of imageEntries(image, MM_MAGIC, 'mm')) {
    eachField(entry, (f) => {
      if (!isBytes(f, 14)) return false;
      const mapping = privateFileMappingOf(f.reader.bytes());
      if (mapping) mappings.push(mapping);
      return true;
    });
  }
  return mappings;
}

/** An address range whose pages the pages images hold. */
export interface DumpedRange {
  start: number;
  end: number;
}

/**
 * The ranges of one process's memory its pages images hold, from its pagemap-<id>.img: the head
 * entry first (pagemap_head), then pagemap_entry: vaddr 1, compat_nr_pages 2, flags 4, nr_pages 5.
 */
export function dumpedRanges(image: Uint8Array): DumpedRange[] {
  return imageEntries(image, PAGEMAP_MAGIC, 'pagemap')
    .slice(1)
    .flatMap((entry) => {
      let vaddr = 0;
      let pages = 0;
      let flags: number | undefined;
      eachField(entry, (f) => {
        if (f.wire !== WIRE_VARINT) return false;
        if (f.field === 1) vaddr = uint64(f.reader);
        else if (f.field === 2) pages ||= f.reader.uint32();
        else if (f.field === 4) flags = f.reader.uint32();
        else if (f.field === 5) pages = uint64(f.reader);
        else return false;
        return true;
      });
      // Without flags (older images) an entry's pages are in this image unless in a parent's.
      const present = flags === undefined || (flags & PE_PRESENT) !== 0;
      return present && pages > 0 ? [{ start: vaddr, end: vaddr + pages * PAGE_BYTES }] : [];
    });
}

/** The index of the first of `sorted` (by start; pagemap ranges do not overlap) that ends after `at`. */
function firstEndingAfter(sorted: DumpedRange[], at: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((sorted[mid] as DumpedRange).end <= at) low = mid + 1;
    else high = mid;
  }
  return low;
}

/**
 * The byte ranges of each mapped file that the restore copies on write: where a private file
 * mapping overlaps pages the images hold, CRIU writes those pages into the mapping, and the kernel
 * first reads the file's page under each. Ranges per file id, as [offset, end) in the file.
 */
export function copiedOnWrite(mappings: PrivateFileMapping[], dumped: DumpedRange[]): Map<number, Array<[number, number]>> {
  const byFile = new Map<number, Array<[number, number]>>();
  const sorted = [...dumped].sort((a, b) => a.start - b.start);
  for (const m of mappings) {
    for (let i = firstEndingAfter(sorted, m.start); i < sorted.length; i++) {
      const d = sorted[i] as DumpedRange;
      if (d.start >= m.end) break;
      const from = Math.max(m.start, d.start);
      const to = Math.min(m.end, d.end);
      if (from >= to) continue;
      const ranges = byFile.get(m.fileId) ?? [];
      ranges.push([m.offset + (from - m.start), m.offset + (to - m.start)]);
      byFile.set(m.fileId, ranges);
    }
  }
  return byFile;
}
