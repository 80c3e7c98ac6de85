/*
 * Models the restorer's page placement outside CRIU: preadv of a cached pages image into fresh
 * private anonymous memory, the way criu/pie/restorer.c does it, with the levers issue 16 names:
 * several threads sharing the address space, MADV_POPULATE_WRITE before the read, THP.
 * usage: preadv-bench FILE THREADS MODE   (MODE: plain | populate | thp | populate+thp)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static int fd;
static char *dst;
static size_t len, nthreads;
static const char *mode;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void *worker(void *arg) {
  size_t i = (size_t)arg, chunk = (len / nthreads + 4095) & ~4095ul, off = i * chunk;
  if (off >= len) return NULL;
  if (off + chunk > len) chunk = len - off;
  if (strstr(mode, "populate") && madvise(dst + off, chunk, MADV_POPULATE_WRITE)) perror("populate");
  while (chunk) {
    struct iovec iov = { dst + off, chunk };
    ssize_t r = preadv(fd, &iov, 1, off);
    if (r <= 0) { perror("preadv"); exit(1); }
    off += r;
    chunk -= r;
  }
  return NULL;
}

int main(int argc, char **argv) {
  struct stat st;
  if (argc < 4) return 2;
  fd = open(argv[1], O_RDONLY);
  nthreads = strtoul(argv[2], NULL, 10);
  mode = argv[3];
  if (fd < 0 || fstat(fd, &st)) { perror(argv[1]); return 1; }
  len = st.st_size & ~4095ul;
  dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (strstr(mode, "thp")) madvise(dst, len, MADV_HUGEPAGE);
  double t0 = now();
  pthread_t th[64];
  for (size_t i = 0; i < nthreads; i++) pthread_create(&th[i], NULL, worker, (void *)i);
  for (size_t i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
  double s = now() - t0;
  printf("%s threads=%zu %.2f GB in %.3f s: %.2f GB/s\n", mode, nthreads, len / 1e9, s, len / 1e9 / s);
  return 0;
}
