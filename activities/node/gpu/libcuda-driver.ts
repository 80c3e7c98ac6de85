import { createRequire } from 'node:module';
import { type CudaCheckpointDriver, CudaDriverError, type GpuPair, processStateName } from './cuda-checkpoint-driver.js';
import { uuidBytes } from './gpu-pairing.js';

/**
 * The checkpoint API called in-process through an FFI to libcuda.so.1 (koffi), not by running
 * NVIDIA's `cuda-checkpoint` tool: the driver always ships the API, the tool is a separate download
 * that GPU nodes (ours included) often lack, and in-process calls report CUresult codes a failure
 * can name. Calls run on koffi's worker threads, so a 20 s checkpoint does not stall heartbeats.
 */

// koffi is CommonJS whose named exports Node's ESM loader cannot see; require gives the typed module.
const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');

const CUDA_ERROR_NO_DEVICE = 100;

type AsyncCall = (...args: unknown[]) => void;
interface Bound {
  async: AsyncCall;
}

const LockArgs = koffi.struct({
  timeoutMs: 'uint32',
  reserved0: 'uint32',
  reserved1: koffi.array('uint64', 7),
});

const CUuuid = koffi.struct({ bytes: koffi.array('uint8', 16) });
const GpuPairStruct = koffi.struct({ oldUuid: CUuuid, newUuid: CUuuid });
/** Driver 580's layout, 64 bytes; cuda.h of later releases names part of `reserved` but keeps the size. */
const RestoreArgs = koffi.struct({
  gpuPairs: koffi.pointer(GpuPairStruct),
  gpuPairsCount: 'uint32',
  reserved: koffi.array('uint8', 44),
  reserved1: 'uint64',
});

/** The pairs in memory that stays put while the driver reads it on a worker thread; freed by the caller after the call. */
function restoreArgs(pairs: GpuPair[]): { args: Record<string, unknown>; free: () => void } {
  const array = koffi.alloc(GpuPairStruct, pairs.length);
  const encoded = pairs.map((p) => ({ oldUuid: { bytes: uuidBytes(p.oldUuid) }, newUuid: { bytes: uuidBytes(p.newUuid) } }));
  koffi.encode(array, koffi.array(GpuPairStruct, pairs.length), encoded);
  const args = { gpuPairs: array, gpuPairsCount: pairs.length, reserved: new Array(44).fill(0), reserved1: 0 };
  return { args, free: () => koffi.free(array) };
}

/**
 * Loads and initializes the driver library; null when this node has no driver or no GPU (a CPU node:
 * GPU steps become no-ops). A driver that is present but fails to initialize throws CudaDriverError.
 */
export function loadLibcudaDriver(libraryPath = process.env.TORPOR_LIBCUDA ?? 'libcuda.so.1'): CudaCheckpointDriver | null {
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load(libraryPath);
  } catch {
    return null;
  }
  const fn = (proto: string) => lib.func(proto) as unknown as Bound & ((...args: unknown[]) => number);
  const cuInit = fn('int cuInit(unsigned int flags)');
  const cuGetErrorName = fn('int cuGetErrorName(int error, _Out_ const char **name)');
  const getState = fn('int cuCheckpointProcessGetState(int pid, _Out_ int *state)');
  const lock = lib.func('cuCheckpointProcessLock', 'int', ['int', koffi.pointer(LockArgs)]) as unknown as Bound;
  const checkpoint = fn('int cuCheckpointProcessCheckpoint(int pid, void *args)');
  const restore = fn('int cuCheckpointProcessRestore(int pid, void *args)');
  const restoreWithArgs = lib.func('cuCheckpointProcessRestore', 'int', ['int', koffi.pointer(RestoreArgs)]) as unknown as Bound;
  const unlock = fn('int cuCheckpointProcessUnlock(int pid, void *args)');
  const restoreThread = fn('int cuCheckpointProcessGetRestoreThreadId(int pid, _Out_ int *tid)');

  const errorName = (code: number): string => {
    const out: [string | null] = [null];
    return cuGetErrorName(code, out) === 0 && out[0] ? out[0] : `CUresult ${code}`;
  };
  const check = (call: string, code: number): void => {
    if (code !== 0) throw new CudaDriverError(call, code, errorName(code));
  };
  const call = (name: string, bound: Bound, ...args: unknown[]): Promise<void> =>
    new Promise((resolve, reject) => {
      bound.async(...args, (err: unknown, code: number) => {
        if (err) reject(err);
        else {
          try {
            check(name, code);
            resolve();
          } catch (failure) {
            reject(failure);
          }
        }
      });
    });

  // The checkpoint calls answer CUDA_ERROR_NOT_INITIALIZED until this process initialized the driver.
  const initCode = cuInit(0);
  if (initCode === CUDA_ERROR_NO_DEVICE) return null;
  check('cuInit', initCode);
  return {
    async getState(pid) {
      const out = [0];
      await call('cuCheckpointProcessGetState', getState, pid, out);
      return processStateName(out[0] as number);
    },
    lock: (pid, timeoutMs) => call('cuCheckpointProcessLock', lock, pid, { timeoutMs, reserved0: 0, reserved1: [0, 0, 0, 0, 0, 0, 0] }),
    checkpoint: (pid) => call('cuCheckpointProcessCheckpoint', checkpoint, pid, null),
    async restore(pid, pairs) {
      if (pairs === undefined || pairs.length === 0) return call('cuCheckpointProcessRestore', restore, pid, null);
      const { args, free } = restoreArgs(pairs);
      try {
        await call('cuCheckpointProcessRestore', restoreWithArgs, pid, args);
      } finally {
        free();
      }
    },
    unlock: (pid) => call('cuCheckpointProcessUnlock', unlock, pid, null),
    async restoreThreadId(pid) {
      const out = [0];
      await call('cuCheckpointProcessGetRestoreThreadId', restoreThread, pid, out);
      return out[0] as number;
    },
  };
}
