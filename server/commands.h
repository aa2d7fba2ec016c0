/*
** The command table and the per-connection state commands act on.
**
** A session is what a command needs to know about its client: where its
** replies go, its name, and its MULTI queue.  Sessions know nothing about
** sockets; the network layer (net.c) owns one per connection, feeds it
** parsed requests and sends what accumulates in `out`.
*/
#ifndef TKS_COMMANDS_H
#define TKS_COMMANDS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "resp.h"

struct command;
struct watched;

/* A command queued by MULTI: its arguments copied into one allocation. */
typedef struct queued_cmd {
  const struct command *cmd;
  size_t argc;
  resp_arg *argv;
} queued_cmd;

typedef struct session {
  buf *out;                  /* replies are appended here */
  uint64_t id;               /* CLIENT ID */
  char addr[64];             /* peer address, for CLIENT LIST */
  char *name;                /* CLIENT SETNAME, or NULL */
  int close_after_reply;     /* QUIT: close once the replies are sent */
  int multi;                 /* inside MULTI */
  int multi_failed;          /* a command was refused while queuing */
  int multi_writes;          /* a queued command writes */
  queued_cmd *queue;
  size_t nqueued, qcap;
  size_t qbytes;             /* bytes of queued arguments */
  struct watched *watched;   /* WATCHed keys (multi.c) */
  int watch_dirty;           /* one of them changed: EXEC fails */
} session;

/* Sort the command table; call once before the first cmd_execute. */
void cmd_init(void);

/*
** Run (or, inside MULTI, queue) one request and append its reply to
** s->out.  argc 0 is ignored.  Write commands join the group-commit batch.
*/
void cmd_execute(session *s, size_t argc, const resp_arg *argv);

/* Release what the session holds (name, MULTI queue, watched keys); not
** `out`. */
void session_free(session *s);

/*
** What commands need of the layers above them, as callbacks so that no
** command module calls into net.c or main.c: CLIENT LIST's lines (net.c
** sets it) and SHUTDOWN (main.c sets it: stop the loop, then shut down
** cleanly).
*/
typedef void (*cmd_client_list_fn)(buf *out);
typedef void (*cmd_shutdown_fn)(void);
void cmd_set_hooks(cmd_client_list_fn list, cmd_shutdown_fn shutdown);

#endif
