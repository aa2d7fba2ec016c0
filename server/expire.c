/*
** The expiry commands on keys: EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (with
** NX, XX, GT, LT), TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST.  (SET's
** options, SETEX, PSETEX and GETEX are in t_string.c.)
**
** The times live in the engine: a key's expiry time is part of its record
** (tkv_expire_set rewrites the record with a new one), an expired key is
** absent for every read, and store_expire_cycle() deletes expired keys in
** the background.  Replies and errors follow Redis 7: -2 for a missing
** key, -1 for a key without a time, and a time already past deletes the
** key at once.
*/
#include "cmd.h"

#include <limits.h>
#include <stdint.h>

/* Flags of EXPIRE and friends. */
#define EXP_NX 0x1
#define EXP_XX 0x2
#define EXP_GT 0x4
#define EXP_LT 0x8

/* The key's expiry time: TKV_OK with *pat (0: none), TKV_NOTFOUND, or an
** error already replied. */
static int key_expire(session *s, const resp_arg *key, uint64_t *pat) {
  int rc = tkv_expire_get(store_db(), key->ptr, key->len, pat);
  if (rc != TKV_OK && rc != TKV_NOTFOUND) reply_engine_error(s, rc);
  return rc;
}

/*
** EXPIRE key seconds, PEXPIRE key ms, EXPIREAT key unix-s, PEXPIREAT key
** unix-ms, each [NX|XX|GT|LT]: 1 if the time was set (or the key deleted
** because the time is past), 0 if the key is missing or a flag said no.
** GT and LT treat a key without a time as one that lives forever.
*/
void expire_command(session *s, size_t argc, const resp_arg *argv) {
  int ms = arg_is(&argv[0], "pexpire") || arg_is(&argv[0], "pexpireat");
  int at = arg_is(&argv[0], "expireat") || arg_is(&argv[0], "pexpireat");
  const char *name = at ? (ms ? "pexpireat" : "expireat")
                        : (ms ? "pexpire" : "expire");
  unsigned f = 0;
  for (size_t j = 3; j < argc; j++) {
    if (arg_is(&argv[j], "nx")) f |= EXP_NX;
    else if (arg_is(&argv[j], "xx")) f |= EXP_XX;
    else if (arg_is(&argv[j], "gt")) f |= EXP_GT;
    else if (arg_is(&argv[j], "lt")) f |= EXP_LT;
    else {
      resp_error(s->out, "ERR Unsupported option %.*s", (int)argv[j].len,
                 argv[j].ptr);
      return;
    }
  }
  if ((f & EXP_NX) && (f & (EXP_XX | EXP_GT | EXP_LT))) {
    resp_error(s->out, "ERR NX and XX, GT or LT options at the same time "
               "are not compatible");
    return;
  }
  if ((f & EXP_GT) && (f & EXP_LT)) {
    resp_error(s->out, "ERR GT and LT options at the same time are not "
               "compatible");
    return;
  }
  long long when;
  if (resp_str2ll(argv[2].ptr, argv[2].len, &when) != 0) {
    reply_not_integer(s);
    return;
  }
  /* Negative times are allowed (they delete the key); only overflow of
  ** the unit conversion or of adding now is an error. */
  long long base = at ? 0 : (long long)tkv_clock_ms();
  if (!ms && (when > LLONG_MAX / 1000 || when < LLONG_MIN / 1000)) goto bad;
  if (!ms) when *= 1000;
  if (when > LLONG_MAX - base) goto bad;
  when += base;

  uint64_t cur;
  int rc = key_expire(s, &argv[1], &cur);
  if (rc == TKV_NOTFOUND) resp_int(s->out, 0);
  if (rc != TKV_OK) return;
  if (((f & EXP_NX) && cur) || ((f & EXP_XX) && !cur) ||
      ((f & EXP_GT) && (!cur || when <= (long long)cur)) ||
      ((f & EXP_LT) && cur && when >= (long long)cur)) {
    resp_int(s->out, 0);
    return;
  }
  if (when <= (long long)tkv_clock_ms()) {
    rc = store_delete(argv[1].ptr, argv[1].len);
  } else {
    rc = store_expire_set(argv[1].ptr, argv[1].len, (uint64_t)when);
  }
  if (rc == TKV_OK || rc == TKV_NOTFOUND) resp_int(s->out, 1);
  else reply_engine_error(s, rc);
  return;
bad:
  resp_error(s->out, "ERR invalid expire time in '%s' command", name);
}

/* TTL key (seconds, rounded), PTTL key (ms): -2 missing, -1 no time. */
void ttl_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  uint64_t at;
  int rc = key_expire(s, &argv[1], &at);
  if (rc == TKV_NOTFOUND) resp_int(s->out, -2);
  if (rc != TKV_OK) return;
  if (!at) {
    resp_int(s->out, -1);
    return;
  }
  uint64_t now = tkv_clock_ms();
  long long left = at > now ? (long long)(at - now) : 0;
  resp_int(s->out, arg_is(&argv[0], "pttl") ? left : (left + 500) / 1000);
}

/* EXPIRETIME key (unix seconds), PEXPIRETIME key (unix ms): -2 missing,
** -1 no time. */
void expiretime_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  uint64_t at;
  int rc = key_expire(s, &argv[1], &at);
  if (rc == TKV_NOTFOUND) resp_int(s->out, -2);
  if (rc != TKV_OK) return;
  if (!at) resp_int(s->out, -1);
  else if (arg_is(&argv[0], "pexpiretime")) resp_int(s->out, (long long)at);
  else resp_int(s->out, (long long)(at / 1000));
}

/* PERSIST key: 1 if the key's time was removed, 0 if it had none or the
** key is missing. */
void persist_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  uint64_t at;
  int rc = key_expire(s, &argv[1], &at);
  if (rc == TKV_NOTFOUND) resp_int(s->out, 0);
  if (rc != TKV_OK) return;
  if (!at) {
    resp_int(s->out, 0);
    return;
  }
  rc = store_expire_set(argv[1].ptr, argv[1].len, 0);
  if (rc == TKV_OK || rc == TKV_NOTFOUND) resp_int(s->out, rc == TKV_OK);
  else reply_engine_error(s, rc);
}
