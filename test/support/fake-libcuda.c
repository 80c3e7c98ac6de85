/*
 * A stand-in for libcuda.so.1's checkpoint API, for machines without an NVIDIA driver: it lets the
 * tests and the GPU benchmark's CPU dry run exercise the real FFI binding (argument marshalling,
 * struct layout, async calls, error names). State lives in files, FAKE_LIBCUDA_DIR/<pid> holding
 * the CUprocessState number, so separate processes (the app, the agent) share it; a PID without a
 * file has no CUDA state. FAKE_LIBCUDA_DIR/<pid>.lock-timeout receives the timeout the lock got;
 * FAKE_LIBCUDA_DIR/<pid>.gpu-pairs the UUID pairs a restore got ("GPU-old GPU-new" a line);
 * FAKE_LIBCUDA_DIR/calls.log one line per call that changed a state ("lock 42"), in order. A file
 * FAKE_LIBCUDA_DIR/<pid>.fail-checkpoint makes the checkpoint of that PID fail (out of memory).
 * Build: cc -shared -fPIC -o libfakecuda.so fake-libcuda.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

enum { SUCCESS = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, NOT_INITIALIZED = 3, ILLEGAL_STATE = 401, NOT_FOUND = 500 };
enum { RUNNING = 0, LOCKED = 1, CHECKPOINTED = 2 };

typedef struct {
  unsigned int timeoutMs;
  unsigned int reserved0;
  unsigned long long reserved1[7];
} LockArgs;

typedef struct {
  unsigned char bytes[16];
} CUuuid;

typedef struct {
  CUuuid oldUuid;
  CUuuid newUuid;
} GpuPair;

/* CUcheckpointRestoreArgs of driver 580 (64 bytes): the layout the agent's binding must produce. */
typedef struct {
  GpuPair *gpuPairs;
  unsigned int gpuPairsCount;
  char reserved[44];
  unsigned long long reserved1;
} RestoreArgs;

_Static_assert(sizeof(RestoreArgs) == 64, "CUcheckpointRestoreArgs is 64 bytes");

static int initialized = 0;

static void path_of(char *buf, size_t n, int pid, const char *suffix) {
  const char *dir = getenv("FAKE_LIBCUDA_DIR");
  snprintf(buf, n, "%s/%d%s", dir ? dir : "/tmp", pid, suffix);
}

static int read_state(int pid, int *state) {
  char p[4096];
  path_of(p, sizeof p, pid, "");
  FILE *f = fopen(p, "r");
  if (!f) return NOT_FOUND;
  int ok = fscanf(f, "%d", state) == 1;
  fclose(f);
  return ok ? SUCCESS : INVALID_VALUE;
}

static int write_state(int pid, int state) {
  char p[4096];
  path_of(p, sizeof p, pid, "");
  FILE *f = fopen(p, "w");
  if (!f) return INVALID_VALUE;
  fprintf(f, "%d\n", state);
  fclose(f);
  return SUCCESS;
}

static void log_call(const char *call, int pid) {
  char p[4096];
  const char *dir = getenv("FAKE_LIBCUDA_DIR");
  snprintf(p, sizeof p, "%s/calls.log", dir ? dir : "/tmp");
  FILE *f = fopen(p, "a");
  if (!f) return;
  fprintf(f, "%s %d\n", call, pid);
  fclose(f);
}

static int move(const char *call, int pid, int from, int to, unsigned int delay_ms) {
  if (!initialized) return NOT_INITIALIZED;
  int state, rc = read_state(pid, &state);
  if (rc != SUCCESS) return rc;
  if (state != from) return ILLEGAL_STATE;
  usleep(delay_ms * 1000);
  rc = write_state(pid, to);
  if (rc == SUCCESS) log_call(call, pid);
  return rc;
}

static int exists(int pid, const char *suffix) {
  char p[4096];
  path_of(p, sizeof p, pid, suffix);
  return access(p, F_OK) == 0;
}

static void print_uuid(FILE *f, const CUuuid *u) {
  const unsigned char *b = u->bytes;
  fprintf(f, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5], b[6],
          b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static int valid_restore_args(const RestoreArgs *args) {
  for (unsigned int i = 0; i < sizeof args->reserved; i++)
    if (args->reserved[i] != 0) return 0;
  return args->reserved1 == 0 && (args->gpuPairsCount == 0 || args->gpuPairs != 0);
}

static void write_pairs(int pid, const RestoreArgs *args) {
  char p[4096];
  path_of(p, sizeof p, pid, ".gpu-pairs");
  FILE *f = fopen(p, "w");
  if (!f) return;
  for (unsigned int i = 0; i < args->gpuPairsCount; i++) {
    print_uuid(f, &args->gpuPairs[i].oldUuid);
    fputc(' ', f);
    print_uuid(f, &args->gpuPairs[i].newUuid);
    fputc('\n', f);
  }
  fclose(f);
}

int cuInit(unsigned int flags) {
  if (flags != 0) return INVALID_VALUE;
  initialized = 1;
  return SUCCESS;
}

int cuGetErrorName(int error, const char **name) {
  switch (error) {
    case SUCCESS: *name = "CUDA_SUCCESS"; return SUCCESS;
    case INVALID_VALUE: *name = "CUDA_ERROR_INVALID_VALUE"; return SUCCESS;
    case OUT_OF_MEMORY: *name = "CUDA_ERROR_OUT_OF_MEMORY"; return SUCCESS;
    case NOT_INITIALIZED: *name = "CUDA_ERROR_NOT_INITIALIZED"; return SUCCESS;
    case ILLEGAL_STATE: *name = "CUDA_ERROR_ILLEGAL_STATE"; return SUCCESS;
    case NOT_FOUND: *name = "CUDA_ERROR_NOT_FOUND"; return SUCCESS;
    default: *name = 0; return INVALID_VALUE;
  }
}

int cuCheckpointProcessGetState(int pid, int *state) {
  if (!initialized) return NOT_INITIALIZED;
  return read_state(pid, state);
}

int cuCheckpointProcessLock(int pid, LockArgs *args) {
  char p[4096];
  path_of(p, sizeof p, pid, ".lock-timeout");
  FILE *f = fopen(p, "w");
  if (f) {
    fprintf(f, "%u %u\n", args ? args->timeoutMs : 0u, args ? args->reserved0 : 0u);
    fclose(f);
  }
  return move("lock", pid, RUNNING, LOCKED, 0);
}

/* The slow calls take a while, as the real ones do, so a caller can see they do not block it. */
int cuCheckpointProcessCheckpoint(int pid, void *args) {
  if (args) return INVALID_VALUE;
  if (initialized && exists(pid, ".fail-checkpoint")) return OUT_OF_MEMORY;
  return move("checkpoint", pid, LOCKED, CHECKPOINTED, 300);
}

int cuCheckpointProcessRestore(int pid, RestoreArgs *args) {
  if (args && !valid_restore_args(args)) return INVALID_VALUE;
  int rc = move("restore", pid, CHECKPOINTED, LOCKED, 300);
  if (rc == SUCCESS && args) write_pairs(pid, args);
  return rc;
}

int cuCheckpointProcessUnlock(int pid, void *args) { return args ? INVALID_VALUE : move("unlock", pid, LOCKED, RUNNING, 0); }

int cuCheckpointProcessGetRestoreThreadId(int pid, int *tid) {
  int state, rc = read_state(pid, &state);
  if (rc != SUCCESS) return rc;
  *tid = pid + 1;
  return SUCCESS;
}
