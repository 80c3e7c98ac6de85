/*
 * Models the dump's page write outside CRIU: a process's anonymous memory written into one image
 * file, the way criu/page-xfer.c does it (vmsplice into a pipe, splice into the file) and the ways a
 * patched CRIU could: buffered write(), O_DIRECT from one thread or several, a shared mapping
 * filled by several threads. Each mode reports the write and the fsync after it.
 * usage: page-write-bench FILE MIB MODE...
 *   MODE: splice | copy | write | direct | direct4 | mmap4
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MIB (1UL << 20)
#define PIPE_BYTES (4 * MIB)
#define DIRECT_BLOCK (16 * MIB)
#define THREADS 4

static char *src;
static size_t len;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

/* copy: what a patched write_pages_loc could do instead of splice: read the pipe into a buffer, write() it. */
static void by_pipe(int fd, int copy) {
  int p[2];
  if (pipe(p)) die("pipe");
  /* 4 MiB needs CAP_SYS_RESOURCE beyond fs.pipe-max-size (CRIU's dump runs with it); else 1 MiB. */
  long size = fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES);
  if (size < 0) size = fcntl(p[1], F_SETPIPE_SZ, MIB);
  if (size < 0) die("F_SETPIPE_SZ");
  printf("%s through a pipe of %ld KiB\n", copy ? "copy" : "splice", size >> 10);
  static char *buf;
  if (!buf && !(buf = malloc(PIPE_BYTES))) die("malloc");
  for (size_t off = 0; off < len; off += size) {
    struct iovec iov = { src + off, len - off < (size_t)size ? len - off : (size_t)size };
    size_t want = iov.iov_len;
    while (iov.iov_len > 0) {
      ssize_t n = vmsplice(p[1], &iov, 1, 0);
      if (n < 0) die("vmsplice");
      iov.iov_base = (char *)iov.iov_base + n;
      iov.iov_len -= n;
    }
    for (size_t done = 0; done < want;) {
      ssize_t n;
      if (copy) {
        n = read(p[0], buf, want - done);
        if (n <= 0 || write(fd, buf, n) != n) die("read pipe, write");
      } else {
        n = splice(p[0], NULL, fd, NULL, want - done, SPLICE_F_MOVE);
        if (n <= 0) die("splice");
      }
      done += n;
    }
  }
}

static void by_write(int fd) {
  for (size_t off = 0; off < len;) {
    ssize_t n = write(fd, src + off, len - off < PIPE_BYTES ? len - off : PIPE_BYTES);
    if (n <= 0) die("write");
    off += n;
  }
}

struct share { int fd; size_t lane, lanes; char *map; };

static void *direct_lane(void *arg) {
  struct share *s = arg;
  void *block;
  if (posix_memalign(&block, 4096, DIRECT_BLOCK)) die("posix_memalign");
  for (size_t off = s->lane * DIRECT_BLOCK; off < len; off += s->lanes * DIRECT_BLOCK) {
    size_t n = len - off < DIRECT_BLOCK ? len - off : DIRECT_BLOCK;
    memcpy(block, src + off, n); /* the copy out of the pipe a patched CRIU would make */
    if (pwrite(s->fd, block, n, off) != (ssize_t)n) die("pwrite O_DIRECT");
  }
  free(block);
  return NULL;
}

static void *mmap_lane(void *arg) {
  struct share *s = arg;
  for (size_t off = s->lane * DIRECT_BLOCK; off < len; off += s->lanes * DIRECT_BLOCK)
    memcpy(s->map + off, src + off, len - off < DIRECT_BLOCK ? len - off : DIRECT_BLOCK);
  return NULL;
}

static void in_lanes(int fd, size_t lanes, void *(*fn)(void *), char *map) {
  pthread_t t[THREADS];
  struct share s[THREADS];
  for (size_t i = 0; i < lanes; i++) {
    s[i] = (struct share){ fd, i, lanes, map };
    if (pthread_create(&t[i], NULL, fn, &s[i])) die("pthread_create");
  }
  for (size_t i = 0; i < lanes; i++) pthread_join(t[i], NULL);
}

static void run(const char *file, const char *mode) {
  int direct = !strncmp(mode, "direct", 6);
  int fd = open(file, O_RDWR | O_CREAT | O_TRUNC | (direct ? O_DIRECT : 0), 0600);
  if (fd < 0) die("open");
  char *map = NULL;
  if (!strcmp(mode, "mmap4") || !strcmp(mode, "direct4")) {
    if (fallocate(fd, 0, 0, len)) die("fallocate");
  }
  if (!strcmp(mode, "mmap4")) {
    map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) die("mmap");
  }
  double t0 = now();
  if (!strcmp(mode, "splice")) by_pipe(fd, 0);
  else if (!strcmp(mode, "copy")) by_pipe(fd, 1);
  else if (!strcmp(mode, "write")) by_write(fd);
  else if (!strcmp(mode, "direct")) in_lanes(fd, 1, direct_lane, NULL);
  else if (!strcmp(mode, "direct4")) in_lanes(fd, THREADS, direct_lane, NULL);
  else if (!strcmp(mode, "mmap4")) in_lanes(fd, THREADS, mmap_lane, map);
  else { fprintf(stderr, "unknown mode %s\n", mode); exit(2); }
  double t1 = now();
  if (map && msync(map, len, MS_SYNC)) die("msync");
  if (fsync(fd)) die("fsync");
  double t2 = now();
  printf("%-8s %6.2f GB/s write (%.2f s), fsync %.2f s, together %.2f GB/s\n", mode, len / (t1 - t0) / 1e9, t1 - t0, t2 - t1,
         len / (t2 - t0) / 1e9);
  fflush(stdout);
  if (map) munmap(map, len);
  close(fd);
  unlink(file);
}

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: %s FILE MIB MODE...\n", argv[0]); return 2; }
  len = strtoul(argv[2], NULL, 10) * MIB;
  src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (src == MAP_FAILED) die("mmap source");
  for (size_t i = 0; i < len; i += 8) *(unsigned long *)(src + i) = i * 2654435761UL;
  struct statfs fs;
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", argv[1]);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = 0;
  if (statfs(slash ? dir : ".", &fs) == 0) printf("filesystem magic 0x%lx, %zu MiB per mode\n", (unsigned long)fs.f_type, len / MIB);
  for (int i = 3; i < argc; i++) {
    sync();
    int drop = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (drop >= 0) { if (write(drop, "3", 1) < 0) perror("drop_caches"); close(drop); }
    run(argv[1], argv[i]);
  }
  return 0;
}
