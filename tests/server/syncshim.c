/*
** A test shim for tinkv-server, LD_PRELOADed: it wraps fdatasync so that a
** test can slow it down or make one call fail, to exercise what the
** server's durable group commit does while a sync is slow (replies held)
** and when one fails (errors, reopen).  The engine's own fault hook is not
** reachable from the server process, hence this.
**
** With TKV_SHIM_DIR set: while $TKV_SHIM_DIR/slow exists, each fdatasync
** first sleeps 300 ms; if $TKV_SHIM_DIR/fail exists, the next fdatasync
** removes it and fails with EIO (one failure per file created).
*/
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int fdatasync(int fd);

/* The file `name` in the shim's directory exists (and, with take, is
** removed by this call, so that only one caller acts on it). */
static int flag(const char *name, int take) {
  const char *dir = getenv("TKV_SHIM_DIR");
  char path[4096];
  if (!dir || snprintf(path, sizeof path, "%s/%s", dir, name) >=
                  (int)sizeof path)
    return 0;
  return take ? unlink(path) == 0 : access(path, F_OK) == 0;
}

int fdatasync(int fd) {
  if (flag("slow", 0)) {
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL);
  }
  if (flag("fail", 1)) {
    errno = EIO;
    return -1;
  }
  return (int)syscall(SYS_fdatasync, fd);
}
