/* A process holding MB MiB of private anonymous memory filled with non-zero data, for the page-restore bench. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
  /* An fd inherited from flock(1) would be dumped with its lock (--file-locks) and the restore would
   * wait on that lock: the first 2 GB run hung so under `flock /tmp/torpor-vitest.lock`. */
  for (int fd = 3; fd < 1024; fd++) close(fd);
  size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 2048, len = mb << 20;
  unsigned long *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 1;
  for (size_t i = 0; i < len / sizeof(*p); i++) p[i] = i * 0x9E3779B97F4A7C15ul | 1;
  if (argc > 2) fclose(fopen(argv[2], "w")); /* ready file */
  for (;;) pause();
}
