/*
** The services every module of the server shares: the global state, the
** log and the resolution of the --bind address.  This module depends on no
** other module of the server (only on libc and tinkv.h), so any module may
** use it without creating a cycle.
*/
#include "server.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

server_state srv;

/* The passive address of --bind and `port`, for either listener (so both
** bind the same way). */
struct addrinfo *srv_resolve(int port) {
  struct addrinfo hints = {0}, *ai = NULL;
  char service[16];
  snprintf(service, sizeof service, "%d", port);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int gai = getaddrinfo(srv.cfg.bind, service, &hints, &ai);
  if (gai != 0) {
    srv_log("cannot resolve --bind %s: %s", srv.cfg.bind, gai_strerror(gai));
    return NULL;
  }
  return ai;
}

/* Log line: program, pid, local time with milliseconds, message; one
** fprintf, so lines never interleave. */
void srv_log(const char *fmt, ...) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  localtime_r(&tv.tv_sec, &tm);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "tinkv-server[%ld] %s.%03ld %s\n", (long)getpid(), when,
          (long)tv.tv_usec / 1000, msg);
}

/* The --sync spelling of a mode. */
const char *srv_sync_name(tkv_sync_mode m) {
  return m == TKV_SYNC_FULL ? "full" : m == TKV_SYNC_NORMAL ? "normal" : "off";
}
