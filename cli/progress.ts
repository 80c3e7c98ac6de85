import type { TorporClient } from '../client/index.js';
import { formatBytes } from './format.js';

const POLL_MS = 250;

/**
 * Awaits a checkpoint or restore while showing its phase, bytes and elapsed time (its `progress`
 * query) on stderr: one line rewritten in place on a terminal, a line per phase otherwise.
 */
export async function withProgress<T>(
  torpor: TorporClient,
  handle: { workflowId: string; result(): Promise<T> },
  options: { quiet: boolean; stream?: NodeJS.WriteStream },
): Promise<T> {
  if (options.quiet) return torpor.result(handle);
  const stream = options.stream ?? process.stderr;
  const started = Date.now();
  let lastPhase = '';
  let polling = false;
  const poll = async () => {
    if (polling) return;
    polling = true;
    const progress = await torpor.progress(handle.workflowId).catch(() => null);
    polling = false;
    if (!progress) return;
    const elapsed = `${((Date.now() - started) / 1000).toFixed(1)} s`;
    const line = `  ${progress.phase.padEnd(24)} ${elapsed.padStart(8)}   ${formatBytes(progress.bytesWritten)}`;
    if (stream.isTTY) stream.write(`\r\u001b[2K${line}`);
    else if (progress.phase !== lastPhase) stream.write(`${line}\n`);
    lastPhase = progress.phase;
  };
  const timer = setInterval(() => void poll(), POLL_MS);
  try {
    return await torpor.result(handle);
  } finally {
    clearInterval(timer);
    if (stream.isTTY) stream.write('\r\u001b[2K');
  }
}
