/*
** The command table, dispatch, and MULTI/EXEC/DISCARD.
**
** Dispatch mirrors Redis's processCommand(): look the name up, check the
** arity, queue the command when the client is inside MULTI, otherwise
** call it.  Write commands first join the group-commit batch (store.h), so
** their engine writes land in the transaction that is committed before
** any reply leaves the server.
*/
#include "cmd.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

command cmd_table[] = {
  /* name        proc             arity flags                     keys */
  {"append",    append_command,    3, CMD_WRITE,                 1, 1, 1},
  {"client",    client_command,   -2, 0,                         0, 0, 0},
  {"command",   command_command,  -1, 0,                         0, 0, 0},
  {"compact",   compact_command,   1, CMD_NO_MULTI | CMD_NO_TXN, 0, 0, 0},
  {"config",    config_command,   -2, 0,                         0, 0, 0},
  {"dbsize",    dbsize_command,    1, CMD_READONLY | CMD_FAST,   0, 0, 0},
  {"decr",      decr_command,      2, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"decrby",    decrby_command,    3, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"del",       del_command,      -2, CMD_WRITE,                 1, -1, 1},
  {"discard",   discard_command,   1, CMD_CONTROL | CMD_FAST,    0, 0, 0},
  {"echo",      echo_command,      2, CMD_FAST,                  0, 0, 0},
  {"exec",      exec_command,      1, CMD_CONTROL,               0, 0, 0},
  {"exists",    exists_command,   -2, CMD_READONLY | CMD_FAST,   1, -1, 1},
  {"expire",    expire_command,   -3, CMD_WRITE,                 1, 1, 1},
  {"flushall",  flushdb_command,  -1, CMD_WRITE,                 0, 0, 0},
  {"flushdb",   flushdb_command,  -1, CMD_WRITE,                 0, 0, 0},
  {"get",       get_command,       2, CMD_READONLY | CMD_FAST,   1, 1, 1},
  {"getdel",    getdel_command,    2, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"incr",      incr_command,      2, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"incrby",    incrby_command,    3, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"info",      info_command,     -1, 0,                         0, 0, 0},
  {"keys",      keys_command,      2, CMD_READONLY,              0, 0, 0},
  {"mget",      mget_command,     -2, CMD_READONLY | CMD_FAST,   1, -1, 1},
  {"mset",      mset_command,     -3, CMD_WRITE,                 1, -1, 2},
  {"msetnx",    msetnx_command,   -3, CMD_WRITE,                 1, -1, 2},
  {"multi",     multi_command,     1, CMD_CONTROL | CMD_FAST,    0, 0, 0},
  {"pexpire",   expire_command,   -3, CMD_WRITE,                 1, 1, 1},
  {"ping",      ping_command,     -1, CMD_FAST,                  0, 0, 0},
  {"psetex",    setex_command,     4, CMD_WRITE,                 1, 1, 1},
  {"pttl",      ttl_command,       2, CMD_READONLY | CMD_FAST,   1, 1, 1},
  {"quit",      quit_command,     -1, CMD_CONTROL | CMD_FAST,    0, 0, 0},
  {"scan",      scan_command,     -2, CMD_READONLY,              0, 0, 0},
  {"select",    select_command,    2, CMD_FAST,                  0, 0, 0},
  {"set",       set_command,      -3, CMD_WRITE,                 1, 1, 1},
  {"setex",     setex_command,     4, CMD_WRITE,                 1, 1, 1},
  {"setnx",     setnx_command,     3, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"strlen",    strlen_command,    2, CMD_READONLY | CMD_FAST,   1, 1, 1},
  {"ttl",       ttl_command,       2, CMD_READONLY | CMD_FAST,   1, 1, 1},
  {"type",      type_command,      2, CMD_READONLY | CMD_FAST,   1, 1, 1},
};
const size_t cmd_count = sizeof cmd_table / sizeof cmd_table[0];

/* qsort order of the table: by name. */
static int by_name(const void *a, const void *b) {
  return strcmp(((const command *)a)->name, ((const command *)b)->name);
}

void cmd_init(void) { qsort(cmd_table, cmd_count, sizeof *cmd_table, by_name); }

/* Compare a request's command name with a (lower-case) table name in the
** table's order, ignoring the request's case. */
static int namecmp(const char *a, size_t alen, const char *b) {
  size_t i = 0;
  for (; i < alen && b[i]; i++) {
    int ca = tolower((unsigned char)a[i]), cb = (unsigned char)b[i];
    if (ca != cb) return ca - cb;
  }
  if (i < alen) return 1;
  return b[i] ? -1 : 0;
}

/* Binary search of the sorted table. */
const command *cmd_lookup(const char *name, size_t len) {
  size_t lo = 0, hi = cmd_count;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = namecmp(name, len, cmd_table[mid].name);
    if (c == 0) return &cmd_table[mid];
    if (c < 0) hi = mid;
    else lo = mid + 1;
  }
  return NULL;
}

/* Case-insensitive comparison of an argument with an option word. */
int arg_is(const resp_arg *a, const char *word) {
  size_t n = strlen(word);
  return a->len == n && strncasecmp(a->ptr, word, n) == 0;
}

/* Reply to a failed engine call, noting TKV_BROKEN for store_recover(). */
void reply_engine_error(session *s, int rc) {
  store_note(rc);
  if (rc == TKV_TOOBIG)
    resp_error(s->out, "ERR key or value too large (keys up to %u bytes): %s",
               TKV_KEY_MAX, tkv_errmsg());
  else
    resp_error(s->out, "ERR tinkv %s: %s", tkv_strerror(rc), tkv_errmsg());
}

void reply_syntax_error(session *s) { resp_error(s->out, "ERR syntax error"); }

/* Redis's text for a bad integer argument or value. */
void reply_not_integer(session *s) {
  resp_error(s->out, "ERR value is not an integer or out of range");
}

int kv_write(const void *key, size_t klen, const void *val, size_t vlen,
             unsigned flags) {
  int rc = tkv_write(store_db(), key, klen, val, vlen, flags, NULL);
  if (rc == TKV_OK) store_batch_count(klen + vlen);
  return rc;
}

/* Delete through the engine, counted into the batch. */
int kv_delete(const void *key, size_t klen) {
  int rc = tkv_delete(store_db(), key, klen);
  if (rc == TKV_OK) store_batch_count(klen);
  return rc;
}

/* Redis's reply to an unknown command, quoting the first arguments. */
static void reply_unknown(session *s, size_t argc, const resp_arg *argv) {
  char args[160];
  size_t n = 0;
  args[0] = '\0';
  for (size_t i = 1; i < argc && n < 128; i++) {
    int w = snprintf(args + n, sizeof args - n, "'%.*s' ",
                     (int)(argv[i].len < 128 - n ? argv[i].len : 128 - n),
                     argv[i].ptr);
    if (w < 0) break;
    n += (size_t)w < sizeof args - n ? (size_t)w : sizeof args - n - 1;
  }
  int nl = argv[0].len < 128 ? (int)argv[0].len : 128;
  resp_error(s->out, "ERR unknown command '%.*s', with args beginning with: %s",
             nl, argv[0].ptr, args);
}

/* Redis's arity rule: exact when positive, a minimum when negative. */
static int arity_ok(const command *c, size_t argc) {
  return c->arity >= 0 ? argc == (size_t)c->arity
                       : argc >= (size_t)-c->arity;
}

/* Run a command now: join or end the batch as its flags say, then call. */
static void call(session *s, const command *c, size_t argc,
                 const resp_arg *argv) {
  int rc = TKV_OK;
  if (c->flags & CMD_NO_TXN) rc = store_batch_commit();
  else if (c->flags & CMD_WRITE) rc = store_batch_join();
  if (rc != TKV_OK) {
    reply_engine_error(s, rc);
    return;
  }
  c->proc(s, argc, argv);
}

/* ------------------------------------------------------------ MULTI. */

static void queue_clear(session *s) {
  for (size_t i = 0; i < s->nqueued; i++) free(s->queue[i].argv);
  s->nqueued = 0;
  s->qbytes = 0;
  s->multi = s->multi_failed = s->multi_writes = 0;
}

/* Copy a command into the MULTI queue.  Refuses (failing the transaction)
** past the size of one request, so MULTI cannot be used to hold more
** memory than a single request may. */
static void queue_command(session *s, const command *c, size_t argc,
                          const resp_arg *argv) {
  size_t bytes = argc * sizeof(resp_arg);
  for (size_t i = 0; i < argc; i++) bytes += argv[i].len;
  if (bytes > srv.cfg.max_request - s->qbytes ||
      s->nqueued >= RESP_MAX_ARGS) {
    resp_error(s->out, "ERR MULTI queue larger than %zu bytes",
               srv.cfg.max_request);
    s->multi_failed = 1;
    return;
  }
  if (s->nqueued == s->qcap) {
    size_t cap = s->qcap ? s->qcap * 2 : 8;
    queued_cmd *q = realloc(s->queue, cap * sizeof *q);
    if (!q) goto oom;
    s->queue = q;
    s->qcap = cap;
  }
  resp_arg *copy = malloc(bytes ? bytes : 1);
  if (!copy) goto oom;
  char *data = (char *)(copy + argc);
  for (size_t i = 0; i < argc; i++) {
    memcpy(data, argv[i].ptr, argv[i].len);
    copy[i].ptr = data;
    copy[i].len = argv[i].len;
    data += argv[i].len;
  }
  s->queue[s->nqueued++] = (queued_cmd){c, argc, copy};
  s->qbytes += bytes;
  if (c->flags & CMD_WRITE) s->multi_writes = 1;
  resp_status(s->out, "QUEUED");
  return;
oom:
  resp_error(s->out, "ERR out of memory queuing the command");
  s->multi_failed = 1;
}

/* MULTI: start queuing. */
void multi_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc; (void)argv;
  if (s->multi) {
    resp_error(s->out, "ERR MULTI calls can not be nested");
    return;
  }
  s->multi = 1;
  resp_status(s->out, "OK");
}

/* DISCARD: drop the queue. */
void discard_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc; (void)argv;
  if (!s->multi) {
    resp_error(s->out, "ERR DISCARD without MULTI");
    return;
  }
  queue_clear(s);
  resp_status(s->out, "OK");
}

/*
** EXEC: run the queue as one engine transaction (a savepoint when the
** group-commit batch is open), so its writes become durable together.
** As in Redis, a command that fails does not undo the others.  If the
** commit itself fails, the replies are replaced by one error.
*/
void exec_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc; (void)argv;
  if (!s->multi) {
    resp_error(s->out, "ERR EXEC without MULTI");
    return;
  }
  if (s->multi_failed) {
    queue_clear(s);
    resp_error(s->out,
               "EXECABORT Transaction discarded because of previous errors.");
    return;
  }
  store_atomic a = {0, -1};
  int rc = TKV_OK;
  if (s->multi_writes) {
    rc = store_batch_join();
    if (rc == TKV_OK) rc = store_atomic_begin(&a);
  }
  if (rc != TKV_OK) {
    queue_clear(s);
    reply_engine_error(s, rc);
    return;
  }
  int writes = s->multi_writes;
  size_t mark = s->out->len;
  resp_array(s->out, (long long)s->nqueued);
  for (size_t i = 0; i < s->nqueued; i++) {
    /* Past --max-output the client will be closed: its writes still run
    ** (a transaction is all or nothing), its reads are skipped. */
    if (s->out->failed && !(s->queue[i].cmd->flags & CMD_WRITE)) continue;
    s->queue[i].cmd->proc(s, s->queue[i].argc, s->queue[i].argv);
  }
  queue_clear(s);
  if (writes) {
    rc = store_atomic_end(&a, 1);
    if (rc != TKV_OK) {
      buf_truncate(s->out, mark);
      resp_error(s->out, "ERR EXEC failed, its writes were rolled back: %s",
                 tkv_errmsg());
    }
  }
}

/* Look up, check, queue or run one request (Redis's processCommand). */
void cmd_execute(session *s, size_t argc, const resp_arg *argv) {
  if (argc == 0) return;
  srv.commands_total++;
  const command *c = cmd_lookup(argv[0].ptr, argv[0].len);
  if (!c) {
    reply_unknown(s, argc, argv);
    if (s->multi) s->multi_failed = 1;
    return;
  }
  if (!arity_ok(c, argc)) {
    resp_error(s->out, "ERR wrong number of arguments for '%s' command",
               c->name);
    if (s->multi) s->multi_failed = 1;
    return;
  }
  if (s->multi && !(c->flags & CMD_CONTROL)) {
    if (c->flags & CMD_NO_MULTI) {
      resp_error(s->out, "ERR Command not allowed inside a transaction");
      s->multi_failed = 1;
      return;
    }
    queue_command(s, c, argc, argv);
    return;
  }
  call(s, c, argc, argv);
}

/* Release the name and the MULTI queue. */
void session_free(session *s) {
  queue_clear(s);
  free(s->queue);
  s->queue = NULL;
  s->qcap = 0;
  free(s->name);
  s->name = NULL;
}
