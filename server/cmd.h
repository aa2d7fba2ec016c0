/*
** What the command implementations (t_string.c, keyspace.c, admin.c) share
** with the command table (commands.c).  Not used outside the commands.
*/
#ifndef TKS_CMD_H
#define TKS_CMD_H

#include <stddef.h>

#include "commands.h"
#include "resp.h"
#include "server.h"
#include "store.h"

typedef void cmd_proc(session *s, size_t argc, const resp_arg *argv);

/* Command flags. */
#define CMD_WRITE      0x01  /* writes: joins the group-commit batch */
#define CMD_READONLY   0x02  /* reads keys only */
#define CMD_CONTROL    0x04  /* MULTI/EXEC/DISCARD/QUIT: never queued */
#define CMD_NO_MULTI   0x08  /* refused inside MULTI */
#define CMD_NO_TXN     0x10  /* needs no open transaction: commits the
                             ** batch first (COMPACT) */
#define CMD_FAST       0x20  /* O(1); for COMMAND's flags only */

typedef struct command {
  const char *name;          /* lower case */
  cmd_proc *proc;
  int arity;                 /* exact argc, or -N: at least N */
  unsigned flags;
  int first_key, last_key, key_step;   /* for COMMAND INFO */
} command;

/* The table, sorted by name after cmd_init(). */
extern command cmd_table[];
extern const size_t cmd_count;

/* Look a command name up, case-insensitively; NULL if unknown. */
const command *cmd_lookup(const char *name, size_t len);

/* Reply to a failed engine call: "-ERR <what failed>: <why>". */
void reply_engine_error(session *s, int rc);
void reply_syntax_error(session *s);
void reply_not_integer(session *s);

/* Nonzero if the argument equals the word, ignoring case. */
int arg_is(const resp_arg *a, const char *word);

/* A write through the engine that is counted into the batch. */
int kv_write(const void *key, size_t klen, const void *val, size_t vlen,
             unsigned flags);
int kv_delete(const void *key, size_t klen);

/* Command implementations, by module. */
cmd_proc get_command, set_command, setnx_command, getdel_command,
    strlen_command, append_command, incr_command, decr_command,
    incrby_command, decrby_command, mget_command, mset_command,
    msetnx_command, setex_command;
cmd_proc del_command, exists_command, dbsize_command, keys_command,
    scan_command, flushdb_command, type_command, ttl_command,
    expire_command;
cmd_proc ping_command, echo_command, select_command, quit_command,
    info_command, config_command, client_command, command_command,
    compact_command;
cmd_proc multi_command, exec_command, discard_command;

#endif
