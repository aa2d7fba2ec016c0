/*
** tinkv-server: the tinkv engine over the Redis protocol (RESP2) and a
** REST API.  This file reads the options, opens the store, runs the event
** loop and shuts down cleanly on SIGINT/SIGTERM.
**
** The loop is libevent's, run one iteration at a time so that, like
** Redis's beforeSleep(), net_before_sleep() runs after every iteration: it
** commits the writes of the iteration (group commit) and sends the replies.
*/
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "commands.h"
#include "http.h"
#include "net.h"
#include "server.h"
#include "store.h"

static volatile sig_atomic_t stopping;

/* ------------------------------------------------------------ Options. */

static void usage(FILE *f) {
  fprintf(f,
"usage: tinkv-server [options]\n"
"\n"
"Serve a tinkv store over the Redis protocol (RESP2) and a REST API.\n"
"\n"
"  --dir DIR            the store's directory, created if missing\n"
"                       (default: ./tinkv-data)\n"
"  --bind ADDR          address to listen on (default: 127.0.0.1)\n"
"  --port N             Redis-protocol port (default: 6380; 0: any free port)\n"
"  --http-port N|off    REST API port (default: 8080; 0: any free port)\n"
"  --sync MODE          full: fdatasync every commit before replying\n"
"                       normal: every commit reaches the OS before the reply\n"
"                         (survives the server being killed), fdatasync\n"
"                         every --fsync-interval seconds (default)\n"
"                       off: commits may wait in memory until the next\n"
"                         --fsync-interval sync\n"
"  --fsync-interval S   seconds between fdatasyncs at sync normal/off;\n"
"                       0: never (default: 1)\n"
"  --group-commit yes|no  commit the writes of all clients of one event-loop\n"
"                       iteration together (default: yes)\n"
"  --max-clients N      Redis-protocol connections at once (default: 10000);\n"
"                       HTTP ones to the same, at most 1024\n"
"  --max-value BYTES    largest value or request string; k/m/g suffixes\n"
"                       (default: 64m, at most 1000000000)\n"
"  --max-output BYTES   unsent replies at which a client is disconnected\n"
"                       (default: 256m)\n"
"  --timeout S          close clients idle this many seconds (default: 0,\n"
"                       never)\n"
"  --http-timeout S     close HTTP connections idle this many seconds, or\n"
"                       whose request headers take longer (default: 30)\n"
"  --compact-min BYTES|off  stale bytes before the engine starts merging\n"
"                       in the background (default: 10m)\n"
"  --backup-dir DIR     allow BACKUP name (and POST /v1/backup/name) to\n"
"                       back the store up online into DIR/name (default:\n"
"                       none, backups refused)\n"
"  --version            print the version\n"
"  --help               this text\n"
"\n"
"Stops cleanly on SIGINT or SIGTERM: replies sent, writes synced, store\n"
"closed and its lock released.\n");
}

/* Complain about an option value; returns -1 for parse_options. */
static int bad_option(const char *opt, const char *val) {
  fprintf(stderr, "tinkv-server: bad value for --%s: '%s' (see --help)\n",
          opt, val);
  return -1;
}

/* A whole non-negative decimal number up to max.  0, or -1. */
static int parse_num(const char *s, unsigned long long max,
                     unsigned long long *pv) {
  char *end;
  if (!*s || *s == '-') return -1;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v > max) return -1;
  *pv = v;
  return 0;
}

/* A byte count with an optional k/m/g (binary) suffix.  0, or -1. */
static int parse_size(const char *s, unsigned long long *pv) {
  char *end;
  if (!*s || *s == '-') return -1;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s) return -1;
  unsigned shift = 0;
  if (*end == 'k' || *end == 'K') shift = 10;
  else if (*end == 'm' || *end == 'M') shift = 20;
  else if (*end == 'g' || *end == 'G') shift = 30;
  if (shift) end++;
  if (*end || v > (ULLONG_MAX >> shift)) return -1;
  *pv = v << shift;
  return 0;
}

/* Fill c from the command line.  0, or -1 after printing why;
** --help and --version print and exit. */
static int parse_options(int argc, char **argv, server_config *c) {
  enum { O_DIR = 1, O_BIND, O_PORT, O_HTTP, O_SYNC, O_FSYNC, O_GROUP,
         O_CLIENTS, O_VALUE, O_OUTPUT, O_TIMEOUT, O_COMPACT, O_HTTP_TIMEOUT,
         O_BACKUP_DIR, O_VERSION, O_HELP };
  static const struct option opts[] = {
    {"dir", required_argument, 0, O_DIR},
    {"bind", required_argument, 0, O_BIND},
    {"port", required_argument, 0, O_PORT},
    {"http-port", required_argument, 0, O_HTTP},
    {"sync", required_argument, 0, O_SYNC},
    {"fsync-interval", required_argument, 0, O_FSYNC},
    {"group-commit", required_argument, 0, O_GROUP},
    {"max-clients", required_argument, 0, O_CLIENTS},
    {"max-value", required_argument, 0, O_VALUE},
    {"max-output", required_argument, 0, O_OUTPUT},
    {"timeout", required_argument, 0, O_TIMEOUT},
    {"compact-min", required_argument, 0, O_COMPACT},
    {"http-timeout", required_argument, 0, O_HTTP_TIMEOUT},
    {"backup-dir", required_argument, 0, O_BACKUP_DIR},
    {"version", no_argument, 0, O_VERSION},
    {"help", no_argument, 0, O_HELP},
    {0, 0, 0, 0}};
  int o;
  unsigned long long v;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    const char *a = optarg;
    const char *name = o > 0 && o <= O_HELP ? opts[o - 1].name : "?";
    switch (o) {
    case O_DIR: c->dir = a; break;
    case O_BIND: c->bind = a; break;
    case O_PORT:
      if (parse_num(a, 65535, &v)) return bad_option(name, a);
      c->port = (int)v;
      break;
    case O_HTTP:
      if (strcmp(a, "off") == 0) c->http_port = -1;
      else if (parse_num(a, 65535, &v)) return bad_option(name, a);
      else c->http_port = (int)v;
      break;
    case O_SYNC:
      if (strcmp(a, "full") == 0) c->sync = TKV_SYNC_FULL;
      else if (strcmp(a, "normal") == 0) c->sync = TKV_SYNC_NORMAL;
      else if (strcmp(a, "off") == 0) c->sync = TKV_SYNC_OFF;
      else return bad_option(name, a);
      break;
    case O_FSYNC:
      if (parse_num(a, 86400, &v)) return bad_option(name, a);
      c->fsync_interval = (unsigned)v;
      break;
    case O_GROUP:
      if (strcmp(a, "yes") == 0) c->group_commit = 1;
      else if (strcmp(a, "no") == 0) c->group_commit = 0;
      else return bad_option(name, a);
      break;
    case O_CLIENTS:
      if (parse_num(a, 1000000, &v) || v == 0) return bad_option(name, a);
      c->max_clients = (long)v;
      break;
    case O_VALUE:
      if (parse_size(a, &v) || v == 0 || v > TKV_VALUE_MAX)
        return bad_option(name, a);
      c->max_value = (size_t)v;
      break;
    case O_OUTPUT:
      if (parse_size(a, &v) || v == 0 || v > SIZE_MAX / 4)
        return bad_option(name, a);
      c->max_output = (size_t)v;
      break;
    case O_TIMEOUT:
      if (parse_num(a, 31536000, &v)) return bad_option(name, a);
      c->timeout = (unsigned)v;
      break;
    case O_COMPACT:
      if (strcmp(a, "off") == 0) c->compact_min = 0;
      else if (parse_size(a, &v) || v == 0) return bad_option(name, a);
      else c->compact_min = v;
      break;
    case O_HTTP_TIMEOUT:
      if (parse_num(a, 86400, &v) || v == 0) return bad_option(name, a);
      c->http_timeout = (unsigned)v;
      break;
    case O_BACKUP_DIR:
      if (a[0] == '\0') return bad_option(name, a);
      c->backup_dir = a;
      break;
    case O_VERSION:
      printf("tinkv-server %s\n", tkv_version());
      exit(0);
    case O_HELP:
      usage(stdout);
      exit(0);
    default:
      usage(stderr);
      return -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "tinkv-server: unexpected argument '%s' (see --help)\n",
            argv[optind]);
    return -1;
  }
  /* A request holds a key and a value at least; a client must be able to
  ** receive the largest value. */
  c->max_request = c->max_value * 2 + TKV_KEY_MAX;
  if (c->max_output < c->max_value + (1u << 20))
    c->max_output = c->max_value + (1u << 20);
  return 0;
}

/*
** Fit the clients into the open-file limit.  Descriptors go to: the store
** (one per segment file, plus its lock, directory and hint files; new
** segments appear as it grows, hence the headroom), the loop and the
** listeners (RESERVED_FDS, as Redis's 32), one per RESP client and one per
** HTTP connection (at most HTTP_MAX, and no more than --max-clients).
** Raise the limit to what that needs; if the system refuses, share what
** there is between RESP and HTTP (half each, as far as HTTP wants it) and
** lower --max-clients, as Redis lowers maxclients.
*/
#define RESERVED_FDS 32
#define STORE_HEADROOM 64
#define HTTP_MAX 1024

static void fit_max_clients(void) {
  tkv_stats st;
  rlim_t store = STORE_HEADROOM;
  if (tkv_stats_get(store_db(), &st) == TKV_OK) store += (rlim_t)st.files * 2;
  rlim_t http = srv.cfg.http_port < 0 ? 0
                : (rlim_t)(srv.cfg.max_clients < HTTP_MAX ? srv.cfg.max_clients
                                                          : HTTP_MAX);
  rlim_t fixed = RESERVED_FDS + store;
  rlim_t need = fixed + (rlim_t)srv.cfg.max_clients + http;
  struct rlimit rl;
  srv.http_max_clients = (long)http;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need) return;
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need
                    ? need : rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return;
  if (rl.rlim_cur >= need) return;
  rlim_t avail = rl.rlim_cur > fixed + 2 ? rl.rlim_cur - fixed : 2;
  rlim_t h = http ? (avail / 2 < http ? avail / 2 : http) : 0;
  long fit = (long)(avail - h);
  if (fit > srv.cfg.max_clients) fit = srv.cfg.max_clients;
  srv_log("open-file limit %llu (%llu kept for the store's files): "
          "--max-clients lowered from %ld to %ld, HTTP connections %llu",
          (unsigned long long)rl.rlim_cur, (unsigned long long)store,
          srv.cfg.max_clients, fit, (unsigned long long)h);
  srv.cfg.max_clients = fit;
  srv.http_max_clients = (long)h;
}

/* -------------------------------------------------------------- Loop. */

static struct event_base *loop_base;

/* SHUTDOWN: leave the loop after this iteration, then stop cleanly. */
static void on_shutdown(void) {
  stopping = 1;
  if (loop_base) event_base_loopbreak(loop_base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)what;
  srv_log("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
  stopping = 1;
  event_base_loopbreak(arg);
}

/* Ten times a second, as Redis's hz: active expiry. */
static void on_tenth(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what; (void)arg;
  store_expire_cycle(0);
}

/* Once a second: at sync normal/off, make the last interval's writes
** durable (every --fsync-interval seconds); log what the engine's
** background merging did since the last second. */
static void on_second(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what; (void)arg;
  static unsigned ticks;
  if (srv.cfg.sync != TKV_SYNC_FULL && srv.cfg.fsync_interval &&
      ++ticks % srv.cfg.fsync_interval == 0) {
    int rc = store_sync();
    if (rc != TKV_OK) srv_log("periodic sync failed: %s", tkv_errmsg());
  }
  store_log_merges();
}

/* Open the store, logging why not.  0 or -1. */
static int open_store(void) {
  int rc = store_open(srv.cfg.dir, srv.cfg.sync, srv.cfg.group_commit,
                      srv.cfg.compact_min);
  if (rc == TKV_OK) {
    /* Keys that expired while the server was down are reclaimed before it
    ** serves, as Redis drops them when it loads (DBSIZE counts keys not
    ** reclaimed yet). */
    if (store_check_encoding() == 0) {
      store_expire_cycle(1);
      return 0;
    }
    store_close();
    return -1;
  }
  if (rc == TKV_LOCKED)
    srv_log("store %s is in use by another process", srv.cfg.dir);
  else
    srv_log("cannot open store %s: %s: %s", srv.cfg.dir, tkv_strerror(rc),
            tkv_errmsg());
  return -1;
}

/* The start-up line: what was opened and where the server listens. */
static void log_startup(void) {
  char *abs = realpath(srv.cfg.dir, NULL);
  char http[64] = "off";
  if (srv.http_port >= 0)
    snprintf(http, sizeof http, "%s:%d", srv.cfg.bind, srv.http_port);
  srv_log("tinkv-server %s: store %s opened (%llu keys, sync=%s, group "
          "commit %s); RESP on %s:%d, HTTP on %s", tkv_version(),
          abs ? abs : srv.cfg.dir, (unsigned long long)tkv_count(store_db()),
          srv_sync_name(srv.cfg.sync), srv.cfg.group_commit ? "on" : "off",
          srv.cfg.bind, srv.resp_port, http);
  free(abs);
}

/* Options, store, listeners, loop; on SIGINT/SIGTERM a clean shutdown. */
int main(int argc, char **argv) {
  server_config *c = &srv.cfg;
  c->dir = "tinkv-data";
  c->bind = "127.0.0.1";
  c->port = 6380;
  c->http_port = 8080;
  c->sync = TKV_SYNC_NORMAL;
  c->fsync_interval = 1;
  c->group_commit = 1;
  c->max_clients = 10000;
  c->max_value = 64u << 20;
  c->max_output = 256u << 20;
  c->compact_min = TKV_DEFAULT_COMPACT_THRESHOLD;
  c->http_timeout = 30;
  if (parse_options(argc, argv, c) != 0) return 2;
  if (c->backup_dir) {
    struct stat bst;
    if (stat(c->backup_dir, &bst) != 0 || !S_ISDIR(bst.st_mode)) {
      fprintf(stderr, "tinkv-server: --backup-dir %s is not a directory\n",
              c->backup_dir);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  srv.start_time = time(NULL);
  srv.http_port = -1;

  if (open_store() != 0) return 1;
  fit_max_clients();
  /* Precise timers (timerfd): the sync timer of durable group commit
  ** waits microseconds, not whole milliseconds (store.c). */
  struct event_config *ecfg = event_config_new();
  if (ecfg) event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
  struct event_base *base = ecfg ? event_base_new_with_config(ecfg) : NULL;
  if (ecfg) event_config_free(ecfg);
  if (!base) {
    srv_log("cannot create the event loop");
    store_close();
    return 1;
  }
  loop_base = base;
  cmd_set_hooks(net_client_list, on_shutdown);
  struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
  struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
  struct event *second_ev = NULL, *tenth_ev = NULL;
  int ok = sigint && sigterm && event_add(sigint, NULL) == 0 &&
           event_add(sigterm, NULL) == 0 && store_attach_loop(base) == 0 &&
           net_start(base) == 0 &&
           (c->http_port < 0 || http_start(base) == 0);
  if (ok) {
    second_ev = event_new(base, -1, EV_PERSIST, on_second, NULL);
    struct timeval tv = {1, 0};
    ok = second_ev && event_add(second_ev, &tv) == 0;
  }
  if (ok) {
    tenth_ev = event_new(base, -1, EV_PERSIST, on_tenth, NULL);
    struct timeval tv = {0, 100000};
    ok = tenth_ev && event_add(tenth_ev, &tv) == 0;
  }
  int status = 0;
  if (ok) {
    log_startup();
    while (!stopping) {
      if (event_base_loop(base, EVLOOP_ONCE) < 0) {
        srv_log("event loop failed");
        status = 1;
        break;
      }
      net_before_sleep();
      if (store_recover() != 0) {
        status = 1;
        break;
      }
    }
  } else {
    status = 1;
  }
  http_stop();
  net_stop();
  int rc = store_close();
  if (rc != TKV_OK) {
    srv_log("closing the store failed: %s", tkv_errmsg());
    status = 1;
  } else if (ok) {
    srv_log("store closed, bye");
  }
  if (second_ev) event_free(second_ev);
  if (tenth_ev) event_free(tenth_ev);
  if (sigint) event_free(sigint);
  if (sigterm) event_free(sigterm);
  event_base_free(base);
  return status;
}
