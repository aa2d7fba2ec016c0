/*
** tinkv-server: what every module of the server shares, namely the
** configuration read from the command line, the counters INFO reports, the
** log and the address resolver (server.c, a leaf module).  The server runs
** every command and every engine call on one thread (the event loop), so
** these globals need no locking; the one exception is the sync thread of
** durable group commit (syncer.c), which only calls tkv_sync_concurrent
** and hands its outcome back to the loop.
**
** Modules, lowest first (each uses only those before it):
**   server   shared state, log, resolver
**   buf      growable buffers          glob   Redis glob patterns
**   resp     RESP parser and replies   objenc OBJECT ENCODING's memory
**   syncer   the sync thread of durable group commit
**   store    the engine handle, group commit, keyed writes
**   commands the command table and dispatch, with the command modules
**            t_string.c, bitops.c, keyspace.c, multi.c, admin.c (cmd.h)
**   net      RESP connections          http   the REST API
**   main     options, start-up, the loop
** A lower module that needs something of a higher one gets a callback
** (store's batch and key-change hooks, commands' client-list and
** shutdown hooks).
*/
#ifndef TKS_SERVER_H
#define TKS_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tinkv.h"

typedef struct server_config {
  const char *dir;            /* the store's directory */
  const char *bind;           /* address of both listeners */
  int port;                   /* RESP port (0: any free port) */
  int http_port;              /* REST port (0: any free port, -1: none) */
  tkv_sync_mode sync;         /* durability of each commit */
  int group_commit;           /* batch the writes of one loop iteration */
  unsigned fsync_interval;    /* seconds between fdatasyncs at sync
                              ** normal/off (0: never) */
  long max_clients;           /* RESP connections at once */
  size_t max_value;           /* largest value (and bulk string) */
  size_t max_request;         /* largest request (sum of its strings) */
  size_t max_output;          /* reply bytes queued for one client before
                              ** it is disconnected */
  unsigned timeout;           /* idle seconds before a client is closed
                              ** (0: never) */
  unsigned http_timeout;      /* HTTP: idle seconds, and the deadline for
                              ** a request's headers */
  const char *backup_dir;     /* where BACKUP writes (NULL: refused) */
  uint64_t compact_min;       /* stale bytes before the engine merges in
                              ** the background (0: never) */
} server_config;

typedef struct server_state {
  server_config cfg;
  time_t start_time;
  int resp_port;              /* the ports actually bound */
  int http_port;
  long clients;               /* RESP connections now */
  long http_max_clients;      /* HTTP connections at once */
  uint64_t connections_total;
  uint64_t rejected_connections;
  uint64_t commands_total;
  uint64_t protocol_errors;
  uint64_t group_commits;     /* batches committed */
  uint64_t group_commit_writes;
  uint64_t group_syncs;       /* syncs of the sync thread (durable group
                              ** commit), and their time, microseconds */
  uint64_t group_sync_usec;
  uint64_t expired_keys;      /* deleted by active expiry */
  uint64_t http_requests;
} server_state;

extern server_state srv;

/* The passive address of --bind and `port` (freeaddrinfo it), or NULL
** after logging why. */
struct addrinfo *srv_resolve(int port);

/* A line on stderr with the time and pid, like Redis's log. */
void srv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Name of a sync mode ("full", "normal", "off"). */
const char *srv_sync_name(tkv_sync_mode m);

#endif
