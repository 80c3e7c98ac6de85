import { lazyLibcBinding } from './file-advice.js';

/** sync_file_range(2) flag: start writeback of the range's dirty pages that are not already being written; wait for nothing. */
const SYNC_FILE_RANGE_WRITE = 2;

type SyncFileRange = {
  async(fd: number, offset: number, nbytes: number, flags: number, done: (err: unknown, result: number) => void): void;
};

const syncFileRange = lazyLibcBinding(
  (_, lib): SyncFileRange => lib.func('int sync_file_range(int fd, int64_t offset, int64_t nbytes, unsigned int flags)'),
);

/**
 * Starts the disk writes of a file's dirty pages without waiting for them (on a koffi worker thread,
 * as the call can block while the device queue is full). Unlike fdatasync it neither waits for
 * writeback nor makes the writer's next writes wait on pages under writeback, so a writer and the
 * disk run side by side. `nbytes` 0: to the end of the file. False where sync_file_range cannot be
 * bound (the caller then syncs).
 */
export function startWriteback(fd: number, offset = 0, nbytes = 0): Promise<boolean> | false {
  const call = syncFileRange();
  if (call === undefined) return false;
  return new Promise((resolve) => call.async(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE, (err, result) => resolve(!err && result === 0)));
}
