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
  {"backup",    backup_command,   -2, CMD_NO_MULTI | CMD_NO_TXN, 0, 0, 0},
  {"bitcount",  bitcount_command, -2, CMD_READONLY,              1, 1, 1},
  {"bitpos",    bitpos_command,   -3, CMD_READONLY,              1, 1, 1},
  {"check",     check_command,     1, CMD_NO_MULTI | CMD_NO_TXN, 0, 0, 0},
  {"client",    client_command,   -2, 0,                         0, 0, 0},
  {"command",   command_command,  -1, 0,                         0, 0, 0},
  {"compact",   compact_command,   1, CMD_NO_MULTI | CMD_NO_TXN, 0, 0, 0},
  {"config",    config_command,   -2, 0,                         0, 0, 0},
  {"copy",      copy_command,     -3, CMD_WRITE,                 1, 2, 1},
  {"dbsize",    dbsize_command,    1, CMD_READONLY | CMD_FAST,   0, 0, 0},
  {"decr",      decr_command,      2, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"decrby",    decrby_command,    3, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"del",       del_command,      -2, CMD_WRITE,                 1, -1, 1},
  {"discard",   discard_command,   1, CMD_CONTROL | CMD_FAST,    0, 0, 0},
  {"echo",      echo_command,      2, CMD_FAST,                  0, 0, 0},
  {"exec",      exec_command,      1, CMD_CONTROL,               0, 0, 0},
  {"exists",    exists_command,   -2, CMD_READONLY | CMD_FAST,   1, -1, 1},
  {"expire",    expire_command,   -3, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"expireat",  expire_command,   -3, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"expiretime", expiretime_command, 2, CMD_READONLY | CMD_FAST, 1, 1, 1},
  {"flushall",  flushdb_command,  -1, CMD_WRITE,                 0, 0, 0},
  {"flushdb",   flushdb_command,  -1, CMD_WRITE,                 0, 0, 0},
  {"get",       get_command,       2, CMD_READONLY | CMD_FAST,   1, 1, 1},
  {"getbit",    getbit_command,    3, CMD_READONLY | CMD_FAST,   1, 1, 1},
  {"getdel",    getdel_command,    2, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"getex",     getex_command,    -2, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"getrange",  getrange_command,  4, CMD_READONLY,              1, 1, 1},
  {"getset",    getset_command,    3, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"hello",     hello_command,    -1, CMD_FAST,                  0, 0, 0},
  {"incr",      incr_command,      2, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"incrby",    incrby_command,    3, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"incrbyfloat", incrbyfloat_command, 3, CMD_WRITE | CMD_FAST,  1, 1, 1},
  {"info",      info_command,     -1, 0,                         0, 0, 0},
  {"keys",      keys_command,      2, CMD_READONLY,              0, 0, 0},
  {"lcs",       lcs_command,      -3, CMD_READONLY,              1, 2, 1},
  {"mget",      mget_command,     -2, CMD_READONLY | CMD_FAST,   1, -1, 1},
  {"mset",      mset_command,     -3, CMD_WRITE,                 1, -1, 2},
  {"msetnx",    msetnx_command,   -3, CMD_WRITE,                 1, -1, 2},
  {"multi",     multi_command,     1, CMD_CONTROL | CMD_FAST,    0, 0, 0},
  {"object",    object_command,   -2, CMD_READONLY,              2, 2, 1},
  {"persist",   persist_command,   2, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"pexpire",   expire_command,   -3, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"pexpireat", expire_command,   -3, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"pexpiretime", expiretime_command, 2, CMD_READONLY | CMD_FAST, 1, 1, 1},
  {"ping",      ping_command,     -1, CMD_FAST,                  0, 0, 0},
  {"psetex",    setex_command,     4, CMD_WRITE,                 1, 1, 1},
  {"pttl",      ttl_command,       2, CMD_READONLY | CMD_FAST,   1, 1, 1},
  {"quit",      quit_command,     -1, CMD_CONTROL | CMD_FAST,    0, 0, 0},
  {"randomkey", randomkey_command, 1, CMD_READONLY,              0, 0, 0},
  {"rename",    rename_command,    3, CMD_WRITE,                 1, 2, 1},
  {"renamenx",  renamenx_command,  3, CMD_WRITE | CMD_FAST,      1, 2, 1},
  {"reset",     reset_command,     1, CMD_CONTROL | CMD_FAST,    0, 0, 0},
  {"scan",      scan_command,     -2, CMD_READONLY,              0, 0, 0},
  {"select",    select_command,    2, CMD_FAST,                  0, 0, 0},
  {"set",       set_command,      -3, CMD_WRITE,                 1, 1, 1},
  {"setbit",    setbit_command,    4, CMD_WRITE,                 1, 1, 1},
  {"setex",     setex_command,     4, CMD_WRITE,                 1, 1, 1},
  {"setnx",     setnx_command,     3, CMD_WRITE | CMD_FAST,      1, 1, 1},
  {"setrange",  setrange_command,  4, CMD_WRITE,                 1, 1, 1},
  {"shutdown",  shutdown_command, -1, CMD_NO_MULTI | CMD_NO_TXN, 0, 0, 0},
  {"strlen",    strlen_command,    2, CMD_READONLY | CMD_FAST,   1, 1, 1},
  {"touch",     touch_command,    -2, CMD_READONLY | CMD_FAST,   1, -1, 1},
  {"ttl",       ttl_command,       2, CMD_READONLY | CMD_FAST,   1, 1, 1},
  {"type",      type_command,      2, CMD_READONLY | CMD_FAST,   1, 1, 1},
  {"unlink",    del_command,      -2, CMD_WRITE | CMD_FAST,      1, -1, 1},
  {"unwatch",   unwatch_command,   1, CMD_FAST,                  0, 0, 0},
  {"watch",     watch_command,    -2, CMD_CONTROL | CMD_FAST,    1, -1, 1},
};
const size_t cmd_count = sizeof cmd_table / sizeof cmd_table[0];

/* qsort order of the table: by name. */
static int by_name(const void *a, const void *b) {
  return strcmp(((const command *)a)->name, ((const command *)b)->name);
}

void cmd_init(void) {
  qsort(cmd_table, cmd_count, sizeof *cmd_table, by_name);
  multi_init();
}

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

/*
** Commands of the Redis data types tinkv-server does not have (it stores
** strings only), with the name of their type: their "unknown command"
** error says so, after Redis's own words.
*/
static const struct {
  const char *name;
  const char *type;
} other_types[] = {
  {"lpush", "lists"}, {"rpush", "lists"}, {"lpushx", "lists"},
  {"rpushx", "lists"}, {"lpop", "lists"}, {"rpop", "lists"},
  {"lrange", "lists"}, {"llen", "lists"}, {"lindex", "lists"},
  {"lset", "lists"}, {"lrem", "lists"}, {"ltrim", "lists"},
  {"linsert", "lists"}, {"lpos", "lists"}, {"lmove", "lists"},
  {"lmpop", "lists"}, {"blpop", "lists"}, {"brpop", "lists"},
  {"blmove", "lists"}, {"blmpop", "lists"}, {"rpoplpush", "lists"},
  {"brpoplpush", "lists"},
  {"hset", "hashes"}, {"hget", "hashes"}, {"hmset", "hashes"},
  {"hmget", "hashes"}, {"hdel", "hashes"}, {"hgetall", "hashes"},
  {"hkeys", "hashes"}, {"hvals", "hashes"}, {"hlen", "hashes"},
  {"hexists", "hashes"}, {"hsetnx", "hashes"}, {"hincrby", "hashes"},
  {"hincrbyfloat", "hashes"}, {"hstrlen", "hashes"}, {"hscan", "hashes"},
  {"hrandfield", "hashes"},
  {"sadd", "sets"}, {"srem", "sets"}, {"smembers", "sets"},
  {"sismember", "sets"}, {"smismember", "sets"}, {"scard", "sets"},
  {"spop", "sets"}, {"srandmember", "sets"}, {"sinter", "sets"},
  {"sintercard", "sets"}, {"sinterstore", "sets"}, {"sunion", "sets"},
  {"sunionstore", "sets"}, {"sdiff", "sets"}, {"sdiffstore", "sets"},
  {"smove", "sets"}, {"sscan", "sets"},
  {"zadd", "sorted sets"}, {"zrem", "sorted sets"},
  {"zrange", "sorted sets"}, {"zrangebyscore", "sorted sets"},
  {"zrevrange", "sorted sets"}, {"zscore", "sorted sets"},
  {"zincrby", "sorted sets"}, {"zcard", "sorted sets"},
  {"zcount", "sorted sets"}, {"zrank", "sorted sets"},
  {"zrevrank", "sorted sets"}, {"zpopmin", "sorted sets"},
  {"zpopmax", "sorted sets"}, {"bzpopmin", "sorted sets"},
  {"bzpopmax", "sorted sets"}, {"zscan", "sorted sets"},
  {"zunionstore", "sorted sets"}, {"zinterstore", "sorted sets"},
  {"xadd", "streams"}, {"xrange", "streams"}, {"xrevrange", "streams"},
  {"xlen", "streams"}, {"xread", "streams"}, {"xreadgroup", "streams"},
  {"xdel", "streams"}, {"xtrim", "streams"}, {"xgroup", "streams"},
  {"xack", "streams"}, {"xinfo", "streams"},
  {"pfadd", "HyperLogLogs"}, {"pfcount", "HyperLogLogs"},
  {"pfmerge", "HyperLogLogs"},
  {"geoadd", "geospatial indexes"}, {"geosearch", "geospatial indexes"},
  {"geodist", "geospatial indexes"}, {"geopos", "geospatial indexes"},
  {"georadius", "geospatial indexes"},
};

/* The type name of a command of another Redis data type, or NULL. */
static const char *other_type_of(const resp_arg *name) {
  for (size_t i = 0; i < sizeof other_types / sizeof other_types[0]; i++) {
    const char *n = other_types[i].name;
    if (strlen(n) == name->len && strncasecmp(n, name->ptr, name->len) == 0)
      return other_types[i].type;
  }
  return NULL;
}

/* Redis's reply to an unknown command, quoting the first arguments; for a
** command of a data type tinkv-server does not have, a note saying so. */
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
  const char *type = other_type_of(&argv[0]);
  if (type)
    resp_error(s->out, "ERR unknown command '%.*s', with args beginning "
               "with: %s(tinkv-server stores strings only: %s are out of "
               "scope)", nl, argv[0].ptr, args, type);
  else
    resp_error(s->out, "ERR unknown command '%.*s', with args beginning "
               "with: %s", nl, argv[0].ptr, args);
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
  /* One time for the whole command (EXEC: the whole transaction), as
  ** Redis: a key whose time passes while it runs is live throughout, so
  ** that INCR, APPEND, SETRANGE and the like never write back a value
  ** read from a key that expired in between. */
  tkv_clock_pin(tkv_clock_ms());
  c->proc(s, argc, argv);
  tkv_clock_pin(0);
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
    multi_queue(s, c, argc, argv);
    return;
  }
  call(s, c, argc, argv);
}

/* The hooks of the layers above (see commands.h). */
static cmd_client_list_fn client_list_hook;
static cmd_shutdown_fn shutdown_hook;

void cmd_set_hooks(cmd_client_list_fn list, cmd_shutdown_fn shutdown) {
  client_list_hook = list;
  shutdown_hook = shutdown;
}

void cmd_client_list(buf *out) {
  if (client_list_hook) client_list_hook(out);
}

int cmd_shutdown(void) {
  if (!shutdown_hook) return -1;
  shutdown_hook();
  return 0;
}

/* Release the name, the MULTI queue and the watched keys. */
void session_free(session *s) {
  multi_free(s);
  free(s->name);
  s->name = NULL;
}
