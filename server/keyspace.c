/*
** Commands on keys as such: DEL/UNLINK, EXISTS, TOUCH, DBSIZE, KEYS, SCAN,
** FLUSHDB, TYPE, RENAME, RENAMENX, COPY, RANDOMKEY, OBJECT.  (TTL and the
** other expiry commands are in expire.c.)
**
** KEYS and SCAN walk the engine's ordered keydir with a cursor.  A pattern
** that starts with literal bytes ("user:*") seeks straight to them and stops
** after the last key that has them, so it costs what it returns, not the
** size of the store.
**
** SCAN's cursor names the next key to return (see cursor_make()), printed
** in decimal so that clients which read the cursor as an integer
** (redis-cli --scan does) work.
*/
#include "cmd.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "glob.h"
#include "objenc.h"

/* DEL key...: the number deleted; several keys are one atomic group. */
void del_command(session *s, size_t argc, const resp_arg *argv) {
  store_atomic a = {0, -1};
  int rc = argc > 2 ? store_atomic_begin(&a) : TKV_OK;
  long long deleted = 0;
  for (size_t i = 1; rc == TKV_OK && i < argc; i++) {
    rc = store_delete(argv[i].ptr, argv[i].len);
    if (rc == TKV_OK) deleted++;
    if (rc == TKV_NOTFOUND) rc = TKV_OK;
  }
  if (rc != TKV_OK) {
    reply_engine_error(s, rc);
    store_atomic_end(&a, 0);
    return;
  }
  rc = store_atomic_end(&a, 1);
  if (rc != TKV_OK) reply_engine_error(s, rc);
  else resp_int(s->out, deleted);
}

/* EXISTS key...: how many of the keys exist (repeats count again). */
void exists_command(session *s, size_t argc, const resp_arg *argv) {
  long long n = 0;
  for (size_t i = 1; i < argc; i++) {
    int rc = tkv_lookup(store_db(), argv[i].ptr, argv[i].len, NULL, NULL);
    if (rc == TKV_OK) n++;
    else if (rc != TKV_NOTFOUND) {
      reply_engine_error(s, rc);
      return;
    }
  }
  resp_int(s->out, n);
}

/* DBSIZE: keys not reclaimed yet, as Redis counts them (expired keys the
** active expiry has not deleted yet are in), from the engine's O(1)
** count. */
void dbsize_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc; (void)argv;
  resp_int(s->out, (long long)tkv_count_stored(store_db()));
}

/* TYPE: every tinkv value is a string. */
void type_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  int rc = tkv_lookup(store_db(), argv[1].ptr, argv[1].len, NULL, NULL);
  if (rc == TKV_OK || rc == TKV_NOTFOUND)
    resp_status(s->out, rc == TKV_OK ? "string" : "none");
  else reply_engine_error(s, rc);
}


/* ------------------------------------------------------ KEYS, SCAN. */

/* Where a key stands against the literal prefix of a pattern. */
static int prefix_cmp(const void *key, size_t klen, const char *pre,
                      size_t plen) {
  size_t n = klen < plen ? klen : plen;
  int c = memcmp(key, pre, n);
  if (c) return c;
  return klen < plen ? -1 : 0;        /* shorter: before the prefix */
}

/* KEYS pattern: every matching key, in key order. */
void keys_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  const resp_arg *pat = &argv[1];
  size_t plen = glob_literal_prefix(pat->ptr, pat->len);
  int every = pat->len == 1 && pat->ptr[0] == '*';  /* as Redis: no match */
  tkv_cursor *cur;
  int rc = tkv_cursor_open(store_db(), &cur);
  if (rc != TKV_OK) {
    reply_engine_error(s, rc);
    return;
  }
  size_t mark = s->out->len;
  long long n = 0;
  rc = tkv_cursor_seek(cur, pat->ptr, plen);
  while (rc == TKV_OK && tkv_cursor_valid(cur) && !s->out->failed) {
    const void *k;
    size_t kl;
    tkv_cursor_key(cur, &k, &kl);
    if (prefix_cmp(k, kl, pat->ptr, plen) != 0) break;
    if (every || glob_match(pat->ptr, pat->len, k, kl, 0)) {
      resp_bulk(s->out, k, kl);
      n++;
    }
    rc = tkv_cursor_next(cur);
  }
  tkv_cursor_close(cur);
  if (rc != TKV_OK) {
    buf_truncate(s->out, mark);
    reply_engine_error(s, rc);
  } else {
    resp_array_at(s->out, mark, n);
  }
}

/* Recently issued SCAN cursors: cursor -> key bytes, oldest overwritten.
** Only a shortcut to an exact resume; see scan_resume(). */
#define SCAN_SLOTS 65536
#define SCAN_BYTES (8u << 20)
static struct {
  uint64_t id;
  char *key;
  size_t len;
} scan_slot[SCAN_SLOTS];
static size_t scan_next, scan_bytes;

/* Remember the key bytes of an issued cursor, evicting the oldest
** entries while the table holds more than SCAN_BYTES. */
static void scan_remember(uint64_t id, const void *key, size_t len) {
  for (size_t i = 0; i < SCAN_SLOTS && scan_bytes + len > SCAN_BYTES; i++) {
    size_t j = (scan_next + i) % SCAN_SLOTS;      /* evict oldest first */
    scan_bytes -= scan_slot[j].len;
    free(scan_slot[j].key);
    scan_slot[j].key = NULL;
    scan_slot[j].len = 0;
    scan_slot[j].id = 0;
  }
  size_t j = scan_next;
  char *copy = malloc(len ? len : 1);
  if (!copy) return;                   /* only a fallback: skip it */
  memcpy(copy, key, len);
  scan_bytes -= scan_slot[j].len;
  free(scan_slot[j].key);
  scan_slot[j].id = id;
  scan_slot[j].key = copy;
  scan_slot[j].len = len;
  scan_bytes += len;
  scan_next = (scan_next + 1) % SCAN_SLOTS;
}

/*
** A SCAN cursor names the next key to return: its id (the low CURSOR_ID_BITS
** bits; tinkv ids fit) and the high 7 bits of its first byte (the 7 bits
** above).  Resuming seeks to the id when that key still exists (checking
** the first byte, so an id reused after a restart is not trusted), else to
** the key's bytes if the recent-cursor table still has them, else to the
** first key that starts at or after the byte range the cursor names.  So
** a cursor the server issued is never refused: at worst a scan whose next
** key was deleted returns some keys again, which SCAN allows, and never
** misses a key that existed throughout.
*/
#define CURSOR_ID_BITS 55
#define CURSOR_ID_MASK ((UINT64_C(1) << CURSOR_ID_BITS) - 1)

/* The cursor for the key k of id `id`. */
static uint64_t cursor_make(uint64_t id, const void *k, size_t kl) {
  uint64_t hi = kl ? (uint64_t)(((const unsigned char *)k)[0] >> 1) : 0;
  return (id & CURSOR_ID_MASK) | hi << CURSOR_ID_BITS;
}

/* Position cur for a SCAN that resumes at `cursor` (never 0). */
static int scan_resume(tkv_cursor *cur, uint64_t cursor) {
  uint64_t id = cursor & CURSOR_ID_MASK;
  unsigned char lo = (unsigned char)(((cursor >> CURSOR_ID_BITS) & 0x7f) << 1);
  int rc = id ? tkv_cursor_seek_id(cur, id) : TKV_NOTFOUND;
  if (rc == TKV_OK && tkv_cursor_valid(cur)) {
    const void *k;
    size_t kl;
    tkv_cursor_key(cur, &k, &kl);
    if (cursor_make(id, k, kl) == cursor) return TKV_OK;
  } else if (rc != TKV_NOTFOUND && rc != TKV_OK) {
    return rc;
  }
  for (size_t i = 0; i < SCAN_SLOTS; i++)
    if (scan_slot[i].id == cursor && scan_slot[i].key)
      return tkv_cursor_seek(cur, scan_slot[i].key, scan_slot[i].len);
  return lo ? tkv_cursor_seek(cur, &lo, 1) : tkv_cursor_seek(cur, NULL, 0);
}

/* A cursor argument: a whole unsigned 64-bit decimal, as Redis reads it.
** 0, or -1. */
static int parse_cursor(const resp_arg *a, uint64_t *pv) {
  uint64_t v = 0;
  if (a->len == 0 || a->len > 20) return -1;
  for (size_t i = 0; i < a->len; i++) {
    unsigned d = (unsigned)(a->ptr[i] - '0');
    if (d > 9 || v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *pv = v;
  return 0;
}

/* SCAN's options.  0, or -1 with the error replied. */
static int scan_options(session *s, size_t argc, const resp_arg *argv,
                        const resp_arg **pat, long long *count, int *strings) {
  for (size_t i = 2; i < argc; i++) {
    if (i + 1 >= argc) goto syntax;
    if (arg_is(&argv[i], "match")) {
      *pat = &argv[++i];
    } else if (arg_is(&argv[i], "count")) {
      if (resp_str2ll(argv[i + 1].ptr, argv[i + 1].len, count) != 0) {
        reply_not_integer(s);
        return -1;
      }
      if (*count < 1) goto syntax;
      i++;
    } else if (arg_is(&argv[i], "type")) {
      *strings = arg_is(&argv[++i], "string");
    } else {
      goto syntax;
    }
  }
  return 0;
syntax:
  reply_syntax_error(s);
  return -1;
}

/* SCAN cursor [MATCH p] [COUNT n] [TYPE t]: look at up to COUNT keys
** from the cursor on; reply with the next cursor ("0" at the end) and the
** keys that matched. */
void scan_command(session *s, size_t argc, const resp_arg *argv) {
  uint64_t cursor;
  if (parse_cursor(&argv[1], &cursor) != 0) {
    resp_error(s->out, "ERR invalid cursor");
    return;
  }
  static const resp_arg all = {"*", 1};
  const resp_arg *pat = &all;
  long long count = 10;
  int strings = 1;
  if (scan_options(s, argc, argv, &pat, &count, &strings) != 0) return;
  size_t plen = glob_literal_prefix(pat->ptr, pat->len);
  int every = pat->len == 1 && pat->ptr[0] == '*';  /* as Redis: no match */

  tkv_cursor *cur;
  int rc = tkv_cursor_open(store_db(), &cur);
  if (rc != TKV_OK) {
    reply_engine_error(s, rc);
    return;
  }
  rc = cursor == 0 ? tkv_cursor_seek(cur, pat->ptr, plen)
                   : scan_resume(cur, cursor);
  size_t mark = s->out->len;
  long long n = 0;
  int ended = 0;
  for (long long seen = 0; rc == TKV_OK && seen < count; seen++) {
    if (!tkv_cursor_valid(cur) || s->out->failed) break;
    const void *k;
    size_t kl;
    tkv_cursor_key(cur, &k, &kl);
    int pc = prefix_cmp(k, kl, pat->ptr, plen);
    if (pc > 0) { ended = 1; break; }   /* past every matching key */
    if (pc < 0) { rc = tkv_cursor_seek(cur, pat->ptr, plen); continue; }
    if (strings && (every || glob_match(pat->ptr, pat->len, k, kl, 0))) {
      resp_bulk(s->out, k, kl);
      n++;
    }
    rc = tkv_cursor_next(cur);
  }
  char next[24] = "0";
  if (rc == TKV_OK && !ended && tkv_cursor_valid(cur)) {
    const void *k;
    size_t kl;
    tkv_cursor_key(cur, &k, &kl);
    uint64_t c = cursor_make(tkv_cursor_id(cur), k, kl);
    scan_remember(c, k, kl);
    snprintf(next, sizeof next, "%llu", (unsigned long long)c);
  }
  tkv_cursor_close(cur);
  if (rc != TKV_OK) {
    buf_truncate(s->out, mark);
    reply_engine_error(s, rc);
    return;
  }
  buf head = {0};
  resp_array(&head, 2);
  resp_bulkstr(&head, next);
  resp_array(&head, n);
  if (head.failed) s->out->failed = 1;
  else buf_insert(s->out, mark, head.data, head.len);
  buf_free(&head);
}
/* -------------------------------------------------------- FLUSHDB. */

/* FLUSHDB [ASYNC|SYNC] (and FLUSHALL): delete every key in one atomic
** group.  The mode is accepted and ignored: the deletes are synchronous. */
void flushdb_command(session *s, size_t argc, const resp_arg *argv) {
  if (argc > 2 || (argc == 2 && !arg_is(&argv[1], "async") &&
                   !arg_is(&argv[1], "sync"))) {
    reply_syntax_error(s);
    return;
  }
  store_atomic a;
  tkv_cursor *cur = NULL;
  buf key = {0};
  int rc = store_atomic_begin(&a);
  if (rc == TKV_OK) rc = tkv_cursor_open(store_db(), &cur);
  if (rc == TKV_OK) rc = tkv_cursor_seek(cur, NULL, 0);
  while (rc == TKV_OK && tkv_cursor_valid(cur)) {
    const void *k;
    size_t kl;
    tkv_cursor_key(cur, &k, &kl);
    key.len = 0;
    buf_append(&key, k, kl);          /* the delete may move the entry */
    if (key.failed) { rc = TKV_NOMEM; break; }
    rc = store_delete(key.data, key.len);
    if (rc == TKV_NOTFOUND) rc = TKV_OK;
    if (rc == TKV_OK) rc = tkv_cursor_next(cur);
  }
  if (cur) tkv_cursor_close(cur);
  buf_free(&key);
  if (rc != TKV_OK) {
    reply_engine_error(s, rc);
    store_atomic_end(&a, 0);
    return;
  }
  rc = store_atomic_end(&a, 1);
  if (rc != TKV_OK) reply_engine_error(s, rc);
  else resp_status(s->out, "OK");
}

/* ------------------------------------------------- RENAME, COPY, ... */

/* Write value v (expiry time at, 0: none) under key dst and (move) delete
** src, as one atomic group.  A TKV_* code. */
static int move_value(const resp_arg *src, const resp_arg *dst,
                      const void *v, size_t n, uint64_t at, int del_src) {
  store_atomic a;
  int rc = store_atomic_begin(&a);
  if (rc == TKV_OK) rc = store_write_expire(dst->ptr, dst->len, v, n, 0, at);
  if (rc == TKV_OK && del_src) rc = store_delete(src->ptr, src->len);
  if (rc != TKV_OK) {
    store_atomic_end(&a, 0);
    return rc;
  }
  return store_atomic_end(&a, 1);
}

/* Nonzero if the two arguments are the same bytes. */
static int same_arg(const resp_arg *a, const resp_arg *b) {
  return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
}

/* RENAMENX and COPY without REPLACE: if the destination exists, or looking
** it up fails, answer (0 or the error), free the source value and return
** nonzero; return 0 when the destination is free and the command goes on. */
static int dest_taken(session *s, const resp_arg *dst, void *v) {
  int rc = tkv_lookup(store_db(), dst->ptr, dst->len, NULL, NULL);
  if (rc == TKV_NOTFOUND) return 0;
  tkv_free(v);
  if (rc == TKV_OK) resp_int(s->out, 0);
  else reply_engine_error(s, rc);
  return 1;
}

/* A key's value and expiry time (0: none), as fetch_value(). */
static int fetch_with_expiry(session *s, const resp_arg *key, void **pv,
                             size_t *pn, uint64_t *pat) {
  int rc = fetch_value(s, key, pv, pn);
  if (rc != TKV_OK) return rc;
  rc = tkv_expire_get(store_db(), key->ptr, key->len, pat);
  if (rc == TKV_OK) return TKV_OK;
  tkv_free(*pv);
  if (rc != TKV_NOTFOUND) reply_engine_error(s, rc);
  return rc;
}

/* RENAME and RENAMENX: "ERR no such key" for a missing source.  The key's
** expiry time goes with it, as in Redis. */
static void rename_generic(session *s, const resp_arg *argv, int nx) {
  void *v;
  size_t n;
  uint64_t at = 0;
  int rc = fetch_with_expiry(s, &argv[1], &v, &n, &at);
  if (rc == TKV_NOTFOUND) resp_error(s->out, "ERR no such key");
  if (rc != TKV_OK) return;
  if (same_arg(&argv[1], &argv[2])) {
    tkv_free(v);
    if (nx) resp_int(s->out, 0);
    else resp_status(s->out, "OK");
    return;
  }
  if (nx && dest_taken(s, &argv[2], v)) return;
  int enc = objenc_get(argv[1].ptr, argv[1].len);
  rc = move_value(&argv[1], &argv[2], v, n, at, 1);
  tkv_free(v);
  if (rc == TKV_OK) objenc_note(argv[2].ptr, argv[2].len, enc, n);
  if (rc != TKV_OK) reply_engine_error(s, rc);
  else if (nx) resp_int(s->out, 1);
  else resp_status(s->out, "OK");
}

/* RENAME key newkey. */
void rename_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  rename_generic(s, argv, 0);
}

/* RENAMENX key newkey: 1, or 0 if newkey exists. */
void renamenx_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  rename_generic(s, argv, 1);
}

/* COPY source destination [DB 0] [REPLACE]: 1 if copied, 0 if the source
** is missing or the destination exists (without REPLACE).  The copy gets
** the source's expiry time. */
void copy_command(session *s, size_t argc, const resp_arg *argv) {
  int replace = 0;
  for (size_t j = 3; j < argc; j++) {
    if (arg_is(&argv[j], "replace")) {
      replace = 1;
    } else if (arg_is(&argv[j], "db") && j + 1 < argc) {
      long long db;
      if (resp_str2ll(argv[j + 1].ptr, argv[j + 1].len, &db) != 0 ||
          db < -2147483648LL || db > 2147483647LL) {
        reply_not_integer(s);
        return;
      }
      if (db != 0) {
        resp_error(s->out, "ERR DB index is out of range");
        return;
      }
      j++;
    } else {
      reply_syntax_error(s);
      return;
    }
  }
  if (same_arg(&argv[1], &argv[2])) {
    resp_error(s->out, "ERR source and destination objects are the same");
    return;
  }
  void *v;
  size_t n;
  uint64_t at = 0;
  int rc = fetch_with_expiry(s, &argv[1], &v, &n, &at);
  if (rc == TKV_NOTFOUND) resp_int(s->out, 0);
  if (rc != TKV_OK) return;
  if (!replace && dest_taken(s, &argv[2], v)) return;
  rc = store_write_expire(argv[2].ptr, argv[2].len, v, n, 0, at);
  tkv_free(v);
  if (rc == TKV_OK)
    objenc_note(argv[2].ptr, argv[2].len,
                objenc_get(argv[1].ptr, argv[1].len), n);
  if (rc != TKV_OK) reply_engine_error(s, rc);
  else resp_int(s->out, 1);
}

/* TOUCH key...: how many exist (there is no access time to update). */
void touch_command(session *s, size_t argc, const resp_arg *argv) {
  exists_command(s, argc, argv);
}

/* RANDOMKEY: a key, or nil when there is none, every key equally likely
** (tkv_cursor_seek_random), whatever their spread over the key space.
** The seeds are a counter started from the clock and the pid: the engine
** mixes each one into its draws. */
void randomkey_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc; (void)argv;
  static uint64_t seq;
  if (!seq) seq = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
  tkv_cursor *cur;
  int rc = tkv_cursor_open(store_db(), &cur);
  if (rc != TKV_OK) {
    reply_engine_error(s, rc);
    return;
  }
  rc = tkv_cursor_seek_random(cur, ++seq * 0x9e3779b97f4a7c15ull);
  if (rc == TKV_NOTFOUND) {
    resp_nil(s->out);
  } else if (rc != TKV_OK) {
    reply_engine_error(s, rc);
  } else {
    const void *k;
    size_t kl;
    tkv_cursor_key(cur, &k, &kl);
    resp_bulk(s->out, k, kl);
  }
  tkv_cursor_close(cur);
}

/* OBJECT ENCODING key | REFCOUNT key | FREQ key | IDLETIME key | HELP. */
void object_command(session *s, size_t argc, const resp_arg *argv) {
  const resp_arg *sub = &argv[1];
  if (argc == 3 && (arg_is(sub, "encoding") || arg_is(sub, "refcount"))) {
    void *v;
    size_t n;
    int rc = fetch_value(s, &argv[2], &v, &n);
    if (rc == TKV_NOTFOUND) resp_nil(s->out);
    if (rc != TKV_OK) return;
    if (arg_is(sub, "refcount")) resp_int(s->out, 1);
    else resp_bulkstr(s->out, objenc_name(argv[2].ptr, argv[2].len, v, n));
    tkv_free(v);
  } else if (arg_is(sub, "help") && argc == 2) {
    resp_array(s->out, 2);
    resp_status(s->out, "OBJECT ENCODING <key>");
    resp_status(s->out, "OBJECT REFCOUNT <key>");
  } else if (arg_is(sub, "encoding") || arg_is(sub, "refcount") ||
             arg_is(sub, "help")) {
    char name[16];
    size_t i = 0;
    for (; i < sub->len && i < sizeof name - 1; i++)
      name[i] = (char)(sub->ptr[i] | 0x20);
    name[i] = '\0';
    resp_error(s->out, "ERR wrong number of arguments for 'object|%s' "
               "command", name);
  } else {
    resp_error(s->out, "ERR unknown subcommand '%.*s'. Try OBJECT HELP.",
               (int)(sub->len < 128 ? sub->len : 128), sub->ptr);
  }
}
