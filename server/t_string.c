/*
** The string commands: GET, SET and its relatives (SETEX, PSETEX, GETEX),
** APPEND, INCR/DECR, MGET/MSET, GETRANGE/SETRANGE, GETSET, INCRBYFLOAT,
** LCS.  Every value is a byte string in the engine; tinkv has no other
** Redis types.  An expiry time is part of the record the engine writes
** (tkv_write_expire), so SET EX and friends are one write; commands that
** change a value in place (APPEND, INCR, SETRANGE, SETBIT) keep the key's
** expiry time, those that replace it (SET, MSET, GETSET) clear it, as in
** Redis.
*/
#include "cmd.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objenc.h"

/* Read a key.  TKV_OK with *pv (release with tkv_free), TKV_NOTFOUND, or
** an error that has already been replied. */
int fetch_value(session *s, const resp_arg *key, void **pv, size_t *pn) {
  int rc = tkv_get(store_db(), key->ptr, key->len, pv, pn);
  if (rc != TKV_OK && rc != TKV_NOTFOUND) reply_engine_error(s, rc);
  return rc;
}

/* GET key: the value, or nil. */
void get_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  void *v;
  size_t n;
  int rc = fetch_value(s, &argv[1], &v, &n);
  if (rc == TKV_NOTFOUND) resp_nil(s->out);
  if (rc != TKV_OK) return;
  resp_bulk(s->out, v, n);
  tkv_free(v);
}

/* Options of SET and GETEX (Redis's OBJ_* flags). */
#define SET_NX      0x01
#define SET_XX      0x02
#define SET_GET     0x04
#define SET_KEEPTTL 0x08
#define SET_PERSIST 0x10
#define SET_EX      0x20
#define SET_PX      0x40
#define SET_EXAT    0x80
#define SET_PXAT    0x100
#define SET_EXPIRY  (SET_EX | SET_PX | SET_EXAT | SET_PXAT)

/*
** Parse SET's (getex zero) or GETEX's (getex nonzero) options from
** argv[first..], with Redis's rules: NX/XX exclusive, one expiry kind,
** KEEPTTL (SET) and PERSIST (GETEX) without one.  *pexp is the expiry's
** argument.  0, or -1 after the syntax error reply.
*/
static int parse_set_options(session *s, size_t argc, const resp_arg *argv,
                             size_t first, int getex, unsigned *pflags,
                             const resp_arg **pexp) {
  unsigned f = 0;
  *pexp = NULL;
  for (size_t i = first; i < argc; i++) {
    const resp_arg *a = &argv[i];
    int has_next = i + 1 < argc;
    if (!getex && arg_is(a, "nx") && !(f & SET_XX)) f |= SET_NX;
    else if (!getex && arg_is(a, "xx") && !(f & SET_NX)) f |= SET_XX;
    else if (!getex && arg_is(a, "get")) f |= SET_GET;
    else if (!getex && arg_is(a, "keepttl") && !(f & SET_EXPIRY))
      f |= SET_KEEPTTL;
    else if (getex && arg_is(a, "persist") && !(f & SET_EXPIRY))
      f |= SET_PERSIST;
    else if (has_next && !(f & (SET_KEEPTTL | SET_PERSIST)) &&
             ((arg_is(a, "ex") && !(f & (SET_EXPIRY & ~SET_EX))) ||
              (arg_is(a, "px") && !(f & (SET_EXPIRY & ~SET_PX))) ||
              (arg_is(a, "exat") && !(f & (SET_EXPIRY & ~SET_EXAT))) ||
              (arg_is(a, "pxat") && !(f & (SET_EXPIRY & ~SET_PXAT))))) {
      f |= arg_is(a, "ex") ? SET_EX : arg_is(a, "px") ? SET_PX
         : arg_is(a, "exat") ? SET_EXAT : SET_PXAT;
      *pexp = &argv[++i];
    } else {
      reply_syntax_error(s);
      return -1;
    }
  }
  *pflags = f;
  return 0;
}

/*
** The absolute expiry time (ms since the epoch) of an EX/PX/EXAT/PXAT
** argument, as Redis checks it: an integer, above 0, and no overflow in
** the unit conversion or the addition of now.  0, or -1 after the error
** reply naming the command.
*/
static int expire_arg(session *s, const resp_arg *a, unsigned kind,
                      const char *cmd, uint64_t *pat) {
  long long v;
  if (resp_str2ll(a->ptr, a->len, &v) != 0) {
    reply_not_integer(s);
    return -1;
  }
  int secs = kind & (SET_EX | SET_EXAT);
  if (v <= 0 || (secs && v > LLONG_MAX / 1000)) goto invalid;
  if (secs) v *= 1000;
  if (kind & (SET_EX | SET_PX)) {
    long long now = (long long)tkv_clock_ms();
    if (v > LLONG_MAX - now) goto invalid;
    v += now;
  }
  *pat = (uint64_t)v;
  return 0;
invalid:
  resp_error(s->out, "ERR invalid expire time in '%s' command", cmd);
  return -1;
}

/*
** SET key value with the parsed options: GET makes the old value (or nil)
** the reply; NX and XX say when to write (a skipped write replies nil
** without GET); an expiry time `at` goes with the value, KEEPTTL keeps the
** key's, anything else clears it.
*/
static void set_generic(session *s, const resp_arg *key, const resp_arg *val,
                        unsigned f, uint64_t at) {
  void *old = NULL;
  size_t oldlen = 0;
  int exists = -1;                          /* -1: not looked up */
  if (f & (SET_GET | SET_XX)) {
    int rc = (f & SET_GET)
                 ? fetch_value(s, key, &old, &oldlen)
                 : tkv_lookup(store_db(), key->ptr, key->len, NULL, NULL);
    if (rc != TKV_OK && rc != TKV_NOTFOUND) {
      if (!(f & SET_GET)) reply_engine_error(s, rc);
      return;
    }
    exists = rc == TKV_OK;
  }
  int write = !(((f & SET_NX) && exists == 1) ||
                ((f & SET_XX) && exists == 0));
  if (write) {
    unsigned wf = ((f & SET_NX) ? TKV_NOOVERWRITE : 0) |
                  ((f & SET_KEEPTTL) ? TKV_KEEPEXPIRE : 0);
    int rc = store_write_expire(key->ptr, key->len, val->ptr, val->len, wf,
                                at);
    /* A time already past: Redis stores the key and deletes it at its
    ** next access; delete it now (reclaimed at once, as DBSIZE counts
    ** keys not reclaimed yet).  The write above still told watchers. */
    if (rc == TKV_OK && at && at <= tkv_clock_ms()) {
      rc = store_delete(key->ptr, key->len);
      if (rc == TKV_NOTFOUND) rc = TKV_OK;
    }
    if (rc == TKV_EXISTS) {
      write = 0;
    } else if (rc != TKV_OK) {
      reply_engine_error(s, rc);
      tkv_free(old);
      return;
    }
  }
  if (f & SET_GET) {
    if (old) resp_bulk(s->out, old, oldlen);
    else resp_nil(s->out);
  } else if (write) {
    resp_status(s->out, "OK");
  } else {
    resp_nil(s->out);
  }
  tkv_free(old);
}

/* SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]. */
void set_command(session *s, size_t argc, const resp_arg *argv) {
  unsigned f;
  const resp_arg *exp;
  uint64_t at = 0;
  if (parse_set_options(s, argc, argv, 3, 0, &f, &exp) != 0) return;
  if (exp && expire_arg(s, exp, f & SET_EXPIRY, "set", &at) != 0) return;
  set_generic(s, &argv[1], &argv[2], f, at);
}

/* SETEX key seconds value, PSETEX key milliseconds value. */
void setex_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  int ms = arg_is(&argv[0], "psetex");
  uint64_t at;
  if (expire_arg(s, &argv[2], ms ? SET_PX : SET_EX, ms ? "psetex" : "setex",
                 &at) != 0)
    return;
  set_generic(s, &argv[1], &argv[3], 0, at);
}

/*
** GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]: the value (or nil), and
** the key's expiry time set or cleared.  An absolute time already past
** deletes the key, as Redis does.
*/
void getex_command(session *s, size_t argc, const resp_arg *argv) {
  unsigned f;
  const resp_arg *exp;
  uint64_t at = 0, cur = 0;
  void *v;
  size_t n;
  if (parse_set_options(s, argc, argv, 2, 1, &f, &exp) != 0) return;
  int rc = fetch_value(s, &argv[1], &v, &n);
  if (rc == TKV_NOTFOUND) resp_nil(s->out);
  if (rc != TKV_OK) return;
  if (exp && expire_arg(s, exp, f & SET_EXPIRY, "getex", &at) != 0) {
    tkv_free(v);
    return;
  }
  if (exp && at <= tkv_clock_ms()) {
    rc = store_delete(argv[1].ptr, argv[1].len);
    if (rc == TKV_NOTFOUND) rc = TKV_OK;
  } else if (exp) {
    rc = store_expire_set(argv[1].ptr, argv[1].len, at);
  } else if (f & SET_PERSIST) {
    rc = tkv_expire_get(store_db(), argv[1].ptr, argv[1].len, &cur);
    if (rc == TKV_OK && cur) rc = store_expire_set(argv[1].ptr, argv[1].len, 0);
  }
  if (rc == TKV_NOTFOUND) rc = TKV_OK;    /* expired meanwhile */
  if (rc == TKV_OK) resp_bulk(s->out, v, n);
  else reply_engine_error(s, rc);
  tkv_free(v);
}

/* SETNX key value: 1 if set, 0 if the key existed. */
void setnx_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  int rc = store_write(argv[1].ptr, argv[1].len, argv[2].ptr, argv[2].len,
                    TKV_NOOVERWRITE);
  if (rc == TKV_OK || rc == TKV_EXISTS) resp_int(s->out, rc == TKV_OK);
  else reply_engine_error(s, rc);
}

/* GETDEL key: the value (or nil), and the key deleted. */
void getdel_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  void *v;
  size_t n;
  int rc = fetch_value(s, &argv[1], &v, &n);
  if (rc == TKV_NOTFOUND) resp_nil(s->out);
  if (rc != TKV_OK) return;
  rc = store_delete(argv[1].ptr, argv[1].len);
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
  int rc = fetch_value(s, &argv[1], &old, &oldlen);
  if (rc != TKV_OK && rc != TKV_NOTFOUND) return;
  const resp_arg *add = &argv[2];
  if (add->len > srv.cfg.max_value - oldlen) {
    reply_too_long(s);
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
  int existed = rc == TKV_OK;
  rc = store_write(argv[1].ptr, argv[1].len, nv, total, TKV_KEEPEXPIRE);
  free(nv);
  if (rc == TKV_OK && existed)                  /* Redis's string is raw */
    objenc_note(argv[1].ptr, argv[1].len, OBJENC_RAW, total);
  if (rc == TKV_OK) resp_int(s->out, (long long)total);
  else reply_engine_error(s, rc);
}

/* INCR and friends: the stored value must be a 64-bit decimal integer, as
** Redis parses it; a missing key counts as 0. */
static void incr_generic(session *s, const resp_arg *key, long long by) {
  void *v;
  size_t n;
  long long cur = 0;
  int rc = fetch_value(s, key, &v, &n);
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
  rc = store_write(key->ptr, key->len, num, len, TKV_KEEPEXPIRE);
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

/* Hand the next keys of a multi-key read (up to MGET_AHEAD of the n at
** argv) to the store as one prefetch, so that their lookups overlap. */
#define MGET_AHEAD 32

static void prefetch_args(const resp_arg *argv, size_t n) {
  const void *keys[MGET_AHEAD];
  size_t klens[MGET_AHEAD], i;
  for (i = 0; i < n && i < MGET_AHEAD; i++) {
    keys[i] = argv[i].ptr;
    klens[i] = argv[i].len;
  }
  store_prefetch(i, keys, klens);
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
    if ((i - 1) % MGET_AHEAD == 0) prefetch_args(argv + i, argc - i);
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
    rc = store_write(argv[i].ptr, argv[i].len, argv[i + 1].ptr,
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

/* Redis's text for a result longer than the largest value. */
void reply_too_long(session *s) {
  resp_error(s->out, "ERR string exceeds maximum allowed size "
             "(proto-max-bulk-len)");
}

/* GETSET key value: SET key value GET. */
void getset_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  set_generic(s, &argv[1], &argv[2], SET_GET, 0);
}

/* GETRANGE key start end: the bytes from start to end, both included;
** negative offsets count from the end, as Redis clamps them. */
void getrange_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  long long start, end;
  if (resp_str2ll(argv[2].ptr, argv[2].len, &start) != 0 ||
      resp_str2ll(argv[3].ptr, argv[3].len, &end) != 0) {
    reply_not_integer(s);
    return;
  }
  void *v;
  size_t n;
  int rc = fetch_value(s, &argv[1], &v, &n);
  if (rc == TKV_NOTFOUND) {
    resp_bulk(s->out, "", 0);
    return;
  }
  if (rc != TKV_OK) return;
  long long len = (long long)n;
  if (start < 0 && end < 0 && start > end) {
    resp_bulk(s->out, "", 0);
    tkv_free(v);
    return;
  }
  if (start < 0) start += len;
  if (end < 0) end += len;
  if (start < 0) start = 0;
  if (end < 0) end = 0;
  if (end >= len) end = len - 1;
  if (start > end || len == 0) resp_bulk(s->out, "", 0);
  else resp_bulk(s->out, (char *)v + start, (size_t)(end - start + 1));
  tkv_free(v);
}

/* SETRANGE key offset value: overwrite from offset, padding with zero
** bytes; the new length. */
void setrange_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  long long off;
  if (resp_str2ll(argv[2].ptr, argv[2].len, &off) != 0) {
    reply_not_integer(s);
    return;
  }
  if (off < 0) {
    resp_error(s->out, "ERR offset is out of range");
    return;
  }
  const resp_arg *val = &argv[3];
  void *old = NULL;
  size_t oldlen = 0;
  int rc = fetch_value(s, &argv[1], &old, &oldlen);
  if (rc != TKV_OK && rc != TKV_NOTFOUND) return;
  if (val->len == 0) {                       /* nothing to write */
    resp_int(s->out, (long long)oldlen);
    tkv_free(old);
    return;
  }
  if ((unsigned long long)off > srv.cfg.max_value ||
      val->len > srv.cfg.max_value - (size_t)off) {
    reply_too_long(s);
    tkv_free(old);
    return;
  }
  size_t end = (size_t)off + val->len;
  size_t total = end > oldlen ? end : oldlen;
  char *nv = calloc(total, 1);
  if (!nv) {
    resp_error(s->out, "ERR out of memory");
    tkv_free(old);
    return;
  }
  if (oldlen) memcpy(nv, old, oldlen);
  memcpy(nv + off, val->ptr, val->len);
  tkv_free(old);
  rc = store_write(argv[1].ptr, argv[1].len, nv, total,
                   TKV_KEEPEXPIRE);
  free(nv);
  if (rc == TKV_OK) objenc_note(argv[1].ptr, argv[1].len, OBJENC_RAW, total);
  if (rc == TKV_OK) resp_int(s->out, (long long)total);
  else reply_engine_error(s, rc);
}

/* Redis's string2ld(): the whole string as a long double, no leading
** space, no NaN.  0, or -1. */
static int str2ld(const char *p, size_t n, long double *pv) {
  char buf[5 * 1024];
  if (n == 0 || n >= sizeof buf) return -1;
  memcpy(buf, p, n);
  buf[n] = '\0';
  char *end;
  errno = 0;
  long double v = strtold(buf, &end);
  if (buf[0] == ' ' || (buf[0] >= '\t' && buf[0] <= '\r') || *end ||
      (size_t)(end - buf) != n ||
      (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || v == 0)) ||
      errno == EINVAL || isnan(v))
    return -1;
  *pv = v;
  return 0;
}

/* Redis's ld2string() in its human form: 17 decimals, trailing zeros and
** point removed, "-0" as "0".  The length, or 0 if it does not fit. */
static size_t ld2str(char *buf, size_t size, long double v) {
  int l = snprintf(buf, size, "%.17Lf", v);
  if (l < 0 || (size_t)l + 1 > size) return 0;
  if (strchr(buf, '.')) {
    char *p = buf + l - 1;
    while (*p == '0') { p--; l--; }
    if (*p == '.') l--;
  }
  if (l == 2 && buf[0] == '-' && buf[1] == '0') { buf[0] = '0'; l = 1; }
  buf[l] = '\0';
  return (size_t)l;
}

/* INCRBYFLOAT key increment: long double arithmetic, Redis's formatting. */
void incrbyfloat_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  void *v;
  size_t n;
  long double cur = 0, by;
  int rc = fetch_value(s, &argv[1], &v, &n);
  if (rc != TKV_OK && rc != TKV_NOTFOUND) return;
  if (rc == TKV_OK) {
    int bad = str2ld(v, n, &cur) != 0;
    tkv_free(v);
    if (bad) {
      resp_error(s->out, "ERR value is not a valid float");
      return;
    }
  }
  if (str2ld(argv[2].ptr, argv[2].len, &by) != 0) {
    resp_error(s->out, "ERR value is not a valid float");
    return;
  }
  cur += by;
  if (isnan(cur) || isinf(cur)) {
    resp_error(s->out, "ERR increment would produce NaN or Infinity");
    return;
  }
  char num[5 * 1024];
  size_t len = ld2str(num, sizeof num, cur);
  if (len == 0) {
    resp_error(s->out, "ERR increment would produce NaN or Infinity");
    return;
  }
  rc = store_write(argv[1].ptr, argv[1].len, num, len, TKV_KEEPEXPIRE);
  long long asint;
  if (rc == TKV_OK && len <= 20 && resp_str2ll(num, len, &asint) == 0)
    objenc_note(argv[1].ptr, argv[1].len, OBJENC_EMBSTR, len);
  if (rc == TKV_OK) resp_bulk(s->out, num, len);
  else reply_engine_error(s, rc);
}

/*
** LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]: the longest
** common subsequence, by Redis's dynamic program (a table of
** (len1+1)*(len2+1) lengths, refused past --max-value bytes as Redis
** refuses it past proto-max-bulk-len), and with IDX the matching ranges
** from the end, as Redis reports them.
*/
void lcs_command(session *s, size_t argc, const resp_arg *argv) {
  void *va = NULL, *vb = NULL;
  size_t alen = 0, blen = 0;
  int rc = fetch_value(s, &argv[1], &va, &alen);
  if (rc != TKV_OK && rc != TKV_NOTFOUND) return;
  rc = fetch_value(s, &argv[2], &vb, &blen);
  if (rc != TKV_OK && rc != TKV_NOTFOUND) {
    tkv_free(va);
    return;
  }
  const unsigned char *a = va ? va : (const void *)"";
  const unsigned char *b = vb ? vb : (const void *)"";
  int getlen = 0, getidx = 0, withlen = 0;
  long long minlen = 0;
  uint32_t *dp = NULL;
  char *result = NULL;
  for (size_t j = 3; j < argc; j++) {
    if (arg_is(&argv[j], "idx")) getidx = 1;
    else if (arg_is(&argv[j], "len")) getlen = 1;
    else if (arg_is(&argv[j], "withmatchlen")) withlen = 1;
    else if (arg_is(&argv[j], "minmatchlen") && j + 1 < argc) {
      if (resp_str2ll(argv[j + 1].ptr, argv[j + 1].len, &minlen) != 0) {
        reply_not_integer(s);
        goto done;
      }
      if (minlen < 0) minlen = 0;
      j++;
    } else {
      reply_syntax_error(s);
      goto done;
    }
  }
  if (getidx && getlen) {
    resp_error(s->out, "ERR If you want both the length and indexes, please "
               "just use IDX.");
    goto done;
  }
  unsigned long long cells = (unsigned long long)(alen + 1) * (blen + 1);
  if (cells > srv.cfg.max_value / sizeof(uint32_t)) {
    resp_error(s->out, "ERR Insufficient memory, transient memory for LCS "
               "exceeds proto-max-bulk-len");
    goto done;
  }
  dp = malloc((size_t)cells * sizeof *dp);
  if (!dp) {
    resp_error(s->out, "ERR Insufficient memory, failed allocating transient "
               "memory for LCS");
    goto done;
  }
#define LCS(i, j) dp[(j) + (i) * (blen + 1)]
  for (size_t i = 0; i <= alen; i++)
    for (size_t j = 0; j <= blen; j++) {
      if (i == 0 || j == 0) LCS(i, j) = 0;
      else if (a[i - 1] == b[j - 1]) LCS(i, j) = LCS(i - 1, j - 1) + 1;
      else LCS(i, j) = LCS(i - 1, j) > LCS(i, j - 1) ? LCS(i - 1, j)
                                                     : LCS(i, j - 1);
    }
  uint32_t idx = LCS(alen, blen);
  int compute = getidx || !getlen;
  result = malloc(idx ? idx : 1);
  if (!result) {
    resp_error(s->out, "ERR out of memory");
    goto done;
  }
  size_t mark = 0;
  long long nranges = 0;
  if (getidx) {
    resp_array(s->out, 4);
    resp_bulkstr(s->out, "matches");
    mark = s->out->len;
  }
  size_t i = alen, j = blen;
  size_t as = alen, ae = 0, bs = 0, be = 0;      /* as == alen: no range */
  while (compute && i > 0 && j > 0) {
    int emit = 0;
    if (a[i - 1] == b[j - 1]) {
      result[idx - 1] = (char)a[i - 1];
      if (as == alen) {
        as = ae = i - 1;
        bs = be = j - 1;
      } else if (as == i && bs == j) {
        as--;
        bs--;
      } else {
        emit = 1;
      }
      if (as == 0 || bs == 0) emit = 1;
      idx--;
      i--;
      j--;
    } else {
      if (LCS(i - 1, j) > LCS(i, j - 1)) i--;
      else j--;
      if (as != alen) emit = 1;
    }
    size_t mlen = ae - as + 1;
    if (emit) {
      if (getidx && (minlen == 0 || mlen >= (unsigned long long)minlen)) {
        resp_array(s->out, 2 + withlen);
        resp_array(s->out, 2);
        resp_int(s->out, (long long)as);
        resp_int(s->out, (long long)ae);
        resp_array(s->out, 2);
        resp_int(s->out, (long long)bs);
        resp_int(s->out, (long long)be);
        if (withlen) resp_int(s->out, (long long)mlen);
        nranges++;
      }
      as = alen;
    }
  }
  if (getidx) {
    resp_array_at(s->out, mark, nranges);
    resp_bulkstr(s->out, "len");
    resp_int(s->out, (long long)LCS(alen, blen));
  } else if (getlen) {
    resp_int(s->out, (long long)LCS(alen, blen));
  } else {
    resp_bulk(s->out, result, LCS(alen, blen));
  }
#undef LCS
done:
  free(dp);
  free(result);
  tkv_free(va);
  tkv_free(vb);
}
