/*
 * A stand-in for libcuda.so.1's checkpoint API, for machines without an NVIDIA driver: it lets the
 * tests and the GPU benchmark's CPU dry run exercise the real FFI binding (argument marshalling,
 * struct layout, async calls, error names). State lives in files, FAKE_LIBCUDA_DIR/<pid> holding
 * the CUprocessState number, so separate processes (the app, the agent) share it; a PID without a
 * file has no CUDA state. FAKE_LIBCUDA_DIR/<pid>.lock-timeout receives the timeout the lock got.
 * Build: cc -shared -fPIC -o libfakecuda.so fake-libcuda.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

enum { SUCCESS = 0, INVALID_VALUE = 1, NOT_INITIALIZED = 3, ILLEGAL_STATE = 401, NOT_FOUND = 500 };
enum { RUNNING = 0, LOCKED = 1, CHECKPOINTED = 2 };

typedef struct {
  unsigned int timeoutMs;
  unsigned int reserved0;
  unsigned long long reserved1[7];
} LockArgs;

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

static int move(int pid, int from, int to, unsigned int delay_ms) {
  if (!initialized) return NOT_INITIALIZED;
  int state, rc = read_state(pid, &state);
  if (rc != SUCCESS) return rc;
  if (state != from) return ILLEGAL_STATE;
  usleep(delay_ms * 1000);
  return write_state(pid, to);
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
  return move(pid, RUNNING, LOCKED, 0);
}

/* The slow calls take a while, as the real ones do, so a caller can see they do not block it. */
int cuCheckpointProcessCheckpoint(int pid, void *args) { return args ? INVALID_VALUE : move(pid, LOCKED, CHECKPOINTED, 300); }
int cuCheckpointProcessRestore(int pid, void *args) { return args ? INVALID_VALUE : move(pid, CHECKPOINTED, LOCKED, 300); }
int cuCheckpointProcessUnlock(int pid, void *args) { return args ? INVALID_VALUE : move(pid, LOCKED, RUNNING, 0); }

int cuCheckpointProcessGetRestoreThreadId(int pid, int *tid) {
  int state, rc = read_state(pid, &state);
  if (rc != SUCCESS) return rc;
  *tid = pid + 1;
  return SUCCESS;
}
