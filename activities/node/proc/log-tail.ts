import { open } from 'node:fs/promises';

/** The last lines of a workload's log, for failures a person reads. */
export async function logTail(file: string, maxBytes = 4096, maxLines = 20): Promise<string> {
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      const start = Math.max(0, size - maxBytes);
      const buf = Buffer.alloc(size - start);
      await handle.read(buf, 0, buf.length, start);
      return buf.toString('utf8').trimEnd().split('\n').slice(-maxLines).join('\n');
    } finally {
      await handle.close();
    }
  } catch {
    return '(no log)';
  }
}
