/*
 * A process holding MB MiB of private anonymous memory filled with non-zero data, for the
 * page-restore bench. usage: hog MB READY_FILE [thp]
 * On SIGUSR1 it checks every word against the pattern and writes READY_FILE.ok or .bad
 * (with the count of wrong words), so a restore that misplaced any page is caught.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t check;

static void on_usr1(int sig) { check = sig; }

static unsigned long word(size_t i) { return i * 0x9E3779B97F4A7C15ul | 1; }

int main(int argc, char **argv) {
  /* An fd inherited from flock(1) would be dumped with its lock (--file-locks) and the restore would
   * wait on that lock: the first 2 GB run hung so under `flock /tmp/torpor-vitest.lock`. */
  for (int fd = 3; fd < 1024; fd++) close(fd);
  size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 2048, len = mb << 20;
  unsigned long *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 1;
  if (argc > 3 && !strcmp(argv[3], "thp")) madvise(p, len, MADV_HUGEPAGE);
  for (size_t i = 0; i < len / sizeof(*p); i++) p[i] = word(i);
  signal(SIGUSR1, on_usr1);
  if (argc > 2) fclose(fopen(argv[2], "w")); /* ready file */
  for (;;) {
    pause();
    if (!check) continue;
    check = 0;
    size_t bad = 0;
    for (size_t i = 0; i < len / sizeof(*p); i++) bad += p[i] != word(i);
    char name[4096];
    snprintf(name, sizeof(name), "%s.%s", argv[2], bad ? "bad" : "ok");
    FILE *f = fopen(name, "w");
    if (f) fprintf(f, "%zu wrong words of %zu\n", bad, len / sizeof(*p)), fclose(f);
  }
}
