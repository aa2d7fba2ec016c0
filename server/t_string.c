/*
** The string commands: GET, SET and its relatives, APPEND, INCR/DECR,
** MGET/MSET, and the expiry commands that tinkv refuses.  Every value is a
** byte string in the engine; tinkv has no other Redis types and no expiry.
*/
#include "cmd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The one error for every expiry option and command. */
static void reply_no_expiry(session *s) {
  resp_error(s->out, "ERR key expiry is not supported: tinkv keys do not "
             "expire (EX, PX, EXAT, PXAT, KEEPTTL, SETEX, EXPIRE)");
}

/* Read a key.  TKV_OK with *pv (release with tkv_free), TKV_NOTFOUND, or
** an error that has already been replied. */
static int fetch(session *s, const resp_arg *key, void **pv, size_t *pn) {
  int rc = tkv_get(store_db(), key->ptr, key->len, pv, pn);
  if (rc != TKV_OK && rc != TKV_NOTFOUND) reply_engine_error(s, rc);
  return rc;
}

/* GET key: the value, or nil. */
void get_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  void *v;
  size_t n;
  int rc = fetch(s, &argv[1], &v, &n);
  if (rc == TKV_NOTFOUND) resp_nil(s->out);
  if (rc != TKV_OK) return;
  resp_bulk(s->out, v, n);
  tkv_free(v);
}

/*
** SET key value [NX|XX] [GET].  With GET the old value (or nil) is the
** reply; NX and XX say when to write; without GET a skipped write replies
** nil, as in Redis.
*/
static void set_generic(session *s, const resp_arg *key, const resp_arg *val,
                        int nx, int xx, int get) {
  void *old = NULL;
  size_t oldlen = 0;
  int exists = -1;                          /* -1: not looked up */
  if (get || xx) {
    int rc = get ? fetch(s, key, &old, &oldlen)
                 : tkv_lookup(store_db(), key->ptr, key->len, NULL, NULL);
    if (rc != TKV_OK && rc != TKV_NOTFOUND) {
      if (!get) reply_engine_error(s, rc);
      return;
    }
    exists = rc == TKV_OK;
  }
  int write = !((nx && exists == 1) || (xx && exists == 0));
  if (write) {
    int rc = kv_write(key->ptr, key->len, val->ptr, val->len,
                      nx ? TKV_NOOVERWRITE : 0);
    if (rc == TKV_EXISTS) {
      write = 0;
    } else if (rc != TKV_OK) {
      reply_engine_error(s, rc);
      tkv_free(old);
      return;
    }
  }
  if (get) {
    if (old) resp_bulk(s->out, old, oldlen);
    else resp_nil(s->out);
  } else if (write) {
    resp_status(s->out, "OK");
  } else {
    resp_nil(s->out);
  }
  tkv_free(old);
}

/* SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT s|KEEPTTL]: the expiry
** options are recognised only to be refused. */
void set_command(session *s, size_t argc, const resp_arg *argv) {
  int nx = 0, xx = 0, get = 0, expiry = 0;
  for (size_t i = 3; i < argc; i++) {
    const resp_arg *a = &argv[i];
    if (arg_is(a, "nx") && !xx) nx = 1;
    else if (arg_is(a, "xx") && !nx) xx = 1;
    else if (arg_is(a, "get")) get = 1;
    else if (arg_is(a, "keepttl")) expiry = 1;
    else if ((arg_is(a, "ex") || arg_is(a, "px") || arg_is(a, "exat") ||
              arg_is(a, "pxat")) && i + 1 < argc) {
      expiry = 1;
      i++;
    } else {
      reply_syntax_error(s);
      return;
    }
  }
  if (expiry) {
    reply_no_expiry(s);
    return;
  }
  set_generic(s, &argv[1], &argv[2], nx, xx, get);
}

/* SETEX, PSETEX, EXPIRE, PEXPIRE: known commands, refused with a reason. */
void setex_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc; (void)argv;
  reply_no_expiry(s);
}

/* EXPIRE, PEXPIRE: refused, keys do not expire. */
void expire_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc; (void)argv;
  reply_no_expiry(s);
}

/* SETNX key value: 1 if set, 0 if the key existed. */
void setnx_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  int rc = kv_write(argv[1].ptr, argv[1].len, argv[2].ptr, argv[2].len,
                    TKV_NOOVERWRITE);
  if (rc == TKV_OK || rc == TKV_EXISTS) resp_int(s->out, rc == TKV_OK);
  else reply_engine_error(s, rc);
}

/* GETDEL key: the value (or nil), and the key deleted. */
void getdel_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  void *v;
  size_t n;
  int rc = fetch(s, &argv[1], &v, &n);
  if (rc == TKV_NOTFOUND) resp_nil(s->out);
  if (rc != TKV_OK) return;
  rc = kv_delete(argv[1].ptr, argv[1].len);
  if (rc == TKV_OK) resp_bulk(s->out, v, n);
  else reply_engine_error(s, rc);
  tkv_free(v);
}

/* STRLEN key: the value's length from the keydir (no disk read). */
void strlen_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  size_t n = 0;
  int rc = tkv_lookup(store_db(), argv[1].ptr, argv[1].len, NULL, &n);
  if (rc == TKV_OK || rc == TKV_NOTFOUND) resp_int(s->out, (long long)n);
  else reply_engine_error(s, rc);
}

/* APPEND key value: the new length; refused past --max-value. */
void append_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  void *old = NULL;
  size_t oldlen = 0;
  int rc = fetch(s, &argv[1], &old, &oldlen);
  if (rc != TKV_OK && rc != TKV_NOTFOUND) return;
  const resp_arg *add = &argv[2];
  if (add->len > srv.cfg.max_value - oldlen) {
    resp_error(s->out, "ERR string exceeds maximum allowed size "
               "(proto-max-bulk-len)");
    tkv_free(old);
    return;
  }
  size_t total = oldlen + add->len;
  char *nv = malloc(total ? total : 1);
  if (!nv) {
    resp_error(s->out, "ERR out of memory");
    tkv_free(old);
    return;
  }
  if (oldlen) memcpy(nv, old, oldlen);
  memcpy(nv + oldlen, add->ptr, add->len);
  tkv_free(old);
  rc = kv_write(argv[1].ptr, argv[1].len, nv, total, 0);
  free(nv);
  if (rc == TKV_OK) resp_int(s->out, (long long)total);
  else reply_engine_error(s, rc);
}

/* INCR and friends: the stored value must be a 64-bit decimal integer, as
** Redis parses it; a missing key counts as 0. */
static void incr_generic(session *s, const resp_arg *key, long long by) {
  void *v;
  size_t n;
  long long cur = 0;
  int rc = fetch(s, key, &v, &n);
  if (rc != TKV_OK && rc != TKV_NOTFOUND) return;
  if (rc == TKV_OK) {
    int bad = resp_str2ll(v, n, &cur) != 0;
    tkv_free(v);
    if (bad) {
      reply_not_integer(s);
      return;
    }
  }
  if ((by < 0 && cur < 0 && by < INT64_MIN - cur) ||
      (by > 0 && cur > 0 && by > INT64_MAX - cur)) {
    resp_error(s->out, "ERR increment or decrement would overflow");
    return;
  }
  cur += by;
  char num[24];
  size_t len = resp_ll2str(num, cur);
  rc = kv_write(key->ptr, key->len, num, len, 0);
  if (rc == TKV_OK) resp_int(s->out, cur);
  else reply_engine_error(s, rc);
}

/* INCR key. */
void incr_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  incr_generic(s, &argv[1], 1);
}

/* DECR key. */
void decr_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  incr_generic(s, &argv[1], -1);
}

/* INCRBY key n. */
void incrby_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  long long by;
  if (resp_str2ll(argv[2].ptr, argv[2].len, &by) != 0) {
    reply_not_integer(s);
    return;
  }
  incr_generic(s, &argv[1], by);
}

/* DECRBY key n (n = INT64_MIN cannot be negated). */
void decrby_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  long long by;
  if (resp_str2ll(argv[2].ptr, argv[2].len, &by) != 0) {
    reply_not_integer(s);
    return;
  }
  if (by == INT64_MIN) {
    resp_error(s->out, "ERR decrement would overflow");
    return;
  }
  incr_generic(s, &argv[1], -by);
}

/* MGET key...: values or nils; an engine error replaces the whole reply.
** Stops as soon as the output refuses more (--max-output): the client is
** then closed, and reading the other values would be wasted. */
void mget_command(session *s, size_t argc, const resp_arg *argv) {
  size_t mark = s->out->len;
  resp_array(s->out, (long long)(argc - 1));
  for (size_t i = 1; i < argc && !s->out->failed; i++) {
    void *v;
    size_t n;
    int rc = tkv_get(store_db(), argv[i].ptr, argv[i].len, &v, &n);
    if (rc == TKV_NOTFOUND) {
      resp_nil(s->out);
    } else if (rc == TKV_OK) {
      resp_bulk(s->out, v, n);
      tkv_free(v);
    } else {
      buf_truncate(s->out, mark);
      reply_engine_error(s, rc);
      return;
    }
  }
}

/* Write pairs argv[1..] as one all-or-nothing group.  0, or -1 with the
** error replied. */
static int write_pairs(session *s, size_t argc, const resp_arg *argv) {
  store_atomic a;
  int rc = store_atomic_begin(&a);
  for (size_t i = 1; rc == TKV_OK && i < argc; i += 2)
    rc = kv_write(argv[i].ptr, argv[i].len, argv[i + 1].ptr,
                  argv[i + 1].len, 0);
  if (rc != TKV_OK) {
    reply_engine_error(s, rc);           /* before the undo resets errmsg */
    if (a.own_txn || a.savepoint >= 0) store_atomic_end(&a, 0);
    return -1;
  }
  rc = store_atomic_end(&a, 1);
  if (rc != TKV_OK) {
    reply_engine_error(s, rc);
    return -1;
  }
  return 0;
}

/* MSET key value...: all or nothing. */
void mset_command(session *s, size_t argc, const resp_arg *argv) {
  if (argc % 2 == 0) {
    resp_error(s->out, "ERR wrong number of arguments for 'mset' command");
    return;
  }
  if (write_pairs(s, argc, argv) == 0) resp_status(s->out, "OK");
}

/* MSETNX key value...: 1 and all set if none exists, else 0. */
void msetnx_command(session *s, size_t argc, const resp_arg *argv) {
  if (argc % 2 == 0) {
    resp_error(s->out, "ERR wrong number of arguments for 'msetnx' command");
    return;
  }
  for (size_t i = 1; i < argc; i += 2) {
    int rc = tkv_lookup(store_db(), argv[i].ptr, argv[i].len, NULL, NULL);
    if (rc == TKV_OK) {
      resp_int(s->out, 0);
      return;
    }
    if (rc != TKV_NOTFOUND) {
      reply_engine_error(s, rc);
      return;
    }
  }
  if (write_pairs(s, argc, argv) == 0) resp_int(s->out, 1);
}
