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


/* CLIENT LIST lines through the hook; SHUTDOWN through the hook (-1 if
** none is set). */
void cmd_client_list(buf *out);
int cmd_shutdown(void);

/* multi.c: queue a command inside MULTI; release a session's MULTI state
** and watched keys; start listening to key changes. */
void multi_queue(session *s, const command *c, size_t argc,
                 const resp_arg *argv);
void multi_free(session *s);
void multi_init(void);

/* Command implementations, by module. */
cmd_proc get_command, set_command, setnx_command, getdel_command,
    strlen_command, append_command, incr_command, decr_command,
    incrby_command, decrby_command, mget_command, mset_command,
    msetnx_command, setex_command, getex_command, getrange_command,
    setrange_command, getset_command, incrbyfloat_command, lcs_command;
cmd_proc expire_command, ttl_command, expiretime_command, persist_command;
cmd_proc setbit_command, getbit_command, bitcount_command, bitpos_command;
cmd_proc del_command, exists_command, dbsize_command, keys_command,
    scan_command, flushdb_command, type_command,
    rename_command, renamenx_command, copy_command, touch_command,
    randomkey_command, object_command;
cmd_proc ping_command, echo_command, select_command, quit_command,
    info_command, config_command, client_command, command_command,
    compact_command, shutdown_command, hello_command, backup_command,
    check_command;
cmd_proc multi_command, exec_command, discard_command, watch_command,
    unwatch_command, reset_command;

/* A key's value (release with tkv_free), TKV_NOTFOUND, or an engine error
** already replied. */
int fetch_value(session *s, const resp_arg *key, void **pv, size_t *pn);
/* Redis's error for a result over --max-value. */
void reply_too_long(session *s);

#endif
