/*
** MULTI, EXEC, DISCARD, WATCH and UNWATCH, as Redis has them.
**
** MULTI queues the client's commands (copies of their arguments, no more
** bytes than one request may hold); EXEC runs the queue as one engine
** transaction (a savepoint when the group-commit batch is open), so its
** writes become durable together.  As in Redis a command that fails at run
** time does not undo the others, and a command refused while queuing
** (unknown, wrong arity) makes EXEC fail with EXECABORT.
**
** WATCH is optimistic locking: a client watches keys, and its next EXEC
** replies nil (and runs nothing) if any of them was written, deleted or
** expired since, by anyone, through RESP or REST.  The store announces every key
** change (store_set_key_hook); the watched keys live in a hash table from
** key to the clients watching it, so a change costs one lookup, and
** nothing at all while no key is watched.  EXEC, DISCARD and UNWATCH
** forget a client's watched keys; so does its disconnection.
*/
#include "cmd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------- Watched keys. */

/* A key watched by one or more clients. */
typedef struct wkey {
  struct wkey *next;           /* in its hash bucket */
  uint64_t hash;
  struct watched *watchers;    /* the clients watching it */
  size_t len;
  char key[];
} wkey;

/* One client watching one key: on the key's list and on the client's. */
typedef struct watched {
  session *s;
  wkey *k;
  uint64_t expire;                 /* the key's expiry time at WATCH, or 0 */
  struct watched *kprev, *knext;   /* the key's watchers */
  struct watched *snext;           /* the client's watched keys */
} watched;

static struct {
  wkey **bucket;
  size_t nbuckets;             /* a power of two, or 0 */
  size_t nkeys;
} wt;

/* FNV-1a: watched keys are few and short-lived; no need for more. */
static uint64_t key_hash(const void *key, size_t len) {
  const unsigned char *p = key;
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

static wkey *wkey_find(const void *key, size_t len, uint64_t h) {
  if (!wt.nbuckets) return NULL;
  for (wkey *k = wt.bucket[h & (wt.nbuckets - 1)]; k; k = k->next)
    if (k->hash == h && k->len == len && memcmp(k->key, key, len) == 0)
      return k;
  return NULL;
}

/* Double the buckets when keys outnumber them.  0, or -1 (no memory; the
** table keeps working, only slower). */
static int wt_grow(void) {
  size_t n = wt.nbuckets ? wt.nbuckets * 2 : 16;
  wkey **b = calloc(n, sizeof *b);
  if (!b) return -1;
  for (size_t i = 0; i < wt.nbuckets; i++) {
    wkey *k = wt.bucket[i];
    while (k) {
      wkey *next = k->next;
      k->next = b[k->hash & (n - 1)];
      b[k->hash & (n - 1)] = k;
      k = next;
    }
  }
  free(wt.bucket);
  wt.bucket = b;
  wt.nbuckets = n;
  return 0;
}

/* Remove a key that nobody watches any more. */
static void wkey_remove(wkey *k) {
  wkey **pp = &wt.bucket[k->hash & (wt.nbuckets - 1)];
  while (*pp != k) pp = &(*pp)->next;
  *pp = k->next;
  wt.nkeys--;
  free(k);
}

/* Make s watch key.  0, or -1 when out of memory. */
static int watch_key(session *s, const resp_arg *key) {
  uint64_t h = key_hash(key->ptr, key->len);
  wkey *k = wkey_find(key->ptr, key->len, h);
  if (k) {
    for (watched *w = k->watchers; w; w = w->knext)
      if (w->s == s) return 0;               /* already watched */
  } else {
    if (wt.nkeys >= wt.nbuckets && wt_grow() != 0 && !wt.nbuckets) return -1;
    k = malloc(sizeof *k + key->len);
    if (!k) return -1;
    k->hash = h;
    k->len = key->len;
    k->watchers = NULL;
    memcpy(k->key, key->ptr, key->len);
    k->next = wt.bucket[h & (wt.nbuckets - 1)];
    wt.bucket[h & (wt.nbuckets - 1)] = k;
    wt.nkeys++;
  }
  watched *w = malloc(sizeof *w);
  if (!w) {
    if (!k->watchers) wkey_remove(k);
    return -1;
  }
  w->s = s;
  w->k = k;
  /* A live key with a time: if that time passes before EXEC, the key
  ** expired under the watcher, which Redis counts as a change. */
  w->expire = 0;
  if (tkv_expire_get(store_db(), key->ptr, key->len, &w->expire) != TKV_OK)
    w->expire = 0;
  w->kprev = NULL;
  w->knext = k->watchers;
  if (k->watchers) k->watchers->kprev = w;
  k->watchers = w;
  w->snext = s->watched;
  s->watched = w;
  return 0;
}

/* Forget every key s watches (UNWATCH, EXEC, DISCARD, disconnection). */
static void unwatch_all(session *s) {
  watched *w = s->watched;
  while (w) {
    watched *next = w->snext;
    wkey *k = w->k;
    if (w->kprev) w->kprev->knext = w->knext;
    else k->watchers = w->knext;
    if (w->knext) w->knext->kprev = w->kprev;
    if (!k->watchers) wkey_remove(k);
    free(w);
    w = next;
  }
  s->watched = NULL;
  s->watch_dirty = 0;
}

/* Did a key s watches expire since it was watched?  (The expiry step's
** deletes are not announced; an expired key is a change all the same,
** and one already expired when watched is not.) */
static int watched_expired(session *s) {
  uint64_t now = tkv_clock_ms();
  for (watched *w = s->watched; w; w = w->snext)
    if (w->expire && w->expire < now) return 1;
  return 0;
}

/* The store changed a key: its watchers' next EXEC fails. */
static void on_key_change(const void *key, size_t len) {
  if (!wt.nkeys) return;
  wkey *k = wkey_find(key, len, key_hash(key, len));
  if (!k) return;
  for (watched *w = k->watchers; w; w = w->knext) w->s->watch_dirty = 1;
}

void multi_init(void) { store_set_key_hook(on_key_change); }

/* WATCH key...: not inside MULTI (it is never queued). */
void watch_command(session *s, size_t argc, const resp_arg *argv) {
  if (s->multi) {
    resp_error(s->out, "ERR WATCH inside MULTI is not allowed");
    return;
  }
  for (size_t i = 1; i < argc; i++) {
    if (watch_key(s, &argv[i]) != 0) {
      resp_error(s->out, "ERR out of memory watching the key");
      return;
    }
  }
  resp_status(s->out, "OK");
}

/* UNWATCH. */
void unwatch_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc; (void)argv;
  unwatch_all(s);
  resp_status(s->out, "OK");
}

/* ---------------------------------------------------------------- MULTI. */

/* Drop the queue and leave MULTI. */
static void queue_clear(session *s) {
  for (size_t i = 0; i < s->nqueued; i++) free(s->queue[i].argv);
  s->nqueued = 0;
  s->qbytes = 0;
  s->multi = s->multi_failed = s->multi_writes = 0;
}

/* Copy a command into the MULTI queue.  Refuses (failing the transaction)
** past the size of one request, so MULTI cannot be used to hold more
** memory than a single request may. */
void multi_queue(session *s, const command *c, size_t argc,
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

/* Release the queue and the watched keys of a closing session. */
void multi_free(session *s) {
  queue_clear(s);
  free(s->queue);
  s->queue = NULL;
  s->qcap = 0;
  unwatch_all(s);
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

/* DISCARD: drop the queue and the watched keys. */
void discard_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc; (void)argv;
  if (!s->multi) {
    resp_error(s->out, "ERR DISCARD without MULTI");
    return;
  }
  queue_clear(s);
  unwatch_all(s);
  resp_status(s->out, "OK");
}

/*
** EXEC: EXECABORT if queuing failed, nil if a watched key changed, else run
** the queue as one engine transaction (a savepoint when the group-commit
** batch is open), so its writes become durable together.  If the commit
** itself fails, the replies are replaced by one error.
*/
void exec_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc; (void)argv;
  if (!s->multi) {
    resp_error(s->out, "ERR EXEC without MULTI");
    return;
  }
  if (!s->multi_failed && !s->watch_dirty && watched_expired(s))
    s->watch_dirty = 1;
  if (s->multi_failed || s->watch_dirty) {
    if (s->multi_failed)
      resp_error(s->out,
                 "EXECABORT Transaction discarded because of previous errors.");
    else
      resp_array(s->out, -1);
    queue_clear(s);
    unwatch_all(s);
    return;
  }
  unwatch_all(s);
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

/* RESET: the connection as new: out of MULTI, no watched keys, no name
** (tinkv has no other per-connection state to reset).  Never queued. */
void reset_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc; (void)argv;
  queue_clear(s);
  unwatch_all(s);
  free(s->name);
  s->name = NULL;
  resp_status(s->out, "RESET");
}
