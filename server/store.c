/*
** The engine handle and group commit; see store.h.
**
** Batch ids and what is known of them:
**   committed_id  the last batch whose commit returned (its records are in
**                 the OS at least);
**   durable_id    the last batch known to be as durable as --sync says;
**   syncing_id    the batch the sync thread's running job covers (0: none).
** durable_id <= syncing_id <= committed_id < the open batch's id, ids grow
** by one per batch.  Without the overlap, a commit makes its batch durable
** at once (durable_id = committed_id).
*/
#include "store.h"

#include <assert.h>

#include "objenc.h"
#include "server.h"
#include "syncer.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* A batch is committed early once it holds this many writes or bytes, so
** a flood of pipelined writes cannot grow one transaction without bound. */
#define BATCH_MAX_WRITES 8192
#define BATCH_MAX_BYTES  (8u << 20)

static struct {
  tkv_db *db;
  const char *dir;
  tkv_sync_mode sync;
  int broken;             /* an engine call returned TKV_BROKEN */
  int group_commit;
  store_batch_hook hook;
  store_key_hook key_hook;
  uint64_t next_id;       /* id the next batch gets */
  uint64_t batch_id;      /* open batch, 0 if none */
  size_t batch_writes;
  size_t batch_bytes;
  int savepoints;         /* savepoints of open atomic groups */
  uint64_t merge_min;     /* the engine's compact_threshold (0: never) */
  int overlap;            /* sync=full with group commit: the engine
                          ** commits at normal, the sync thread syncs */
  uint64_t committed_id;  /* see the top of this file */
  uint64_t durable_id;
  uint64_t syncing_id;
  int defer_kick;         /* a sync ended: the next one waits until the
                          ** clients it answered are back (store_end_turn) */
  unsigned waiting;       /* of those, not back yet */
  uint64_t last_sync_usec;/* how long the last sync took */
  struct event *kick_ev;  /* starts it anyway when waiting takes too long */
  char why[512];          /* the failed sync's message, for the reopen's
                          ** log (it came from another thread) */
} st = {0};

static void kick_sync(void);

/* The first batch id not yet used: everything below it is settled. */
static void settle_ids(void) {
  st.committed_id = st.durable_id = st.next_id - 1;
}

/* Open with create; remember how, for store_recover(). */
int store_open(const char *dir, tkv_sync_mode sync, int group_commit,
               uint64_t merge_min) {
  tkv_options o;
  tkv_options_init(&o);
  o.exclusive = 1;  /* the server keeps the keyspace in memory: it alone
                    ** may have the store open */
  /* Durable group commit with overlap: the engine only writes each batch
  ** to the OS at its commit; the sync thread's fdatasync makes it durable
  ** before any reply that depends on it is sent (net.c holds them). */
  st.overlap = sync == TKV_SYNC_FULL && group_commit;
  o.sync = st.overlap ? TKV_SYNC_NORMAL : sync;
  o.create = 1;
  /* The engine merges in its own background thread past this many stale
  ** bytes (0: never). */
  o.compact_threshold = merge_min ? merge_min : UINT64_MAX;
  st.dir = dir;
  st.merge_min = merge_min;
  st.sync = sync;
  st.group_commit = group_commit;
  if (!st.next_id) st.next_id = 1;
  settle_ids();
  return tkv_open(dir, &o, &st.db);
}

/*
** The server stores keys and values as raw bytes; a store records which
** encoding it holds (tkv_encoding).  A new (empty) store is marked raw, so
** that an SQL table that would read it as typed values refuses it; one
** marked by SQL tables is refused here, since its keys and values would be
** served as the encoded bytes of typed SQL values.  An unmarked store with
** keys (made by the C API or an older server) is served as it always was.
*/
int store_check_encoding(void) {
  int enc = TKV_ENCODING_UNKNOWN;
  int rc = tkv_encoding(st.db, &enc);
  if (rc == TKV_OK && enc == TKV_ENCODING_UNKNOWN && tkv_count(st.db) == 0)
    rc = tkv_set_encoding(st.db, TKV_ENCODING_RAW);
  if (rc != TKV_OK) {
    srv_log("cannot read or record the encoding of store %s: %s", st.dir,
            tkv_errmsg());
    return -1;
  }
  if (enc == TKV_ENCODING_SQL) {
    srv_log("store %s holds the typed keys and values of SQL tables, which "
            "tinkv-server would serve as their encoded bytes; refusing it "
            "(serve a raw store; SQL reads a server's store with "
            "encoding=raw)", st.dir);
    return -1;
  }
  return 0;
}

/* Commit, sync, close: what a clean shutdown needs. */
int store_close(void) {
  if (!st.db) return TKV_OK;
  int rc = store_settle();
  syncer_stop();
  if (st.kick_ev) event_free(st.kick_ev);
  st.kick_ev = NULL;
  int rc2 = tkv_sync(st.db);
  int rc3 = tkv_close(st.db);
  st.db = 0;
  return rc ? rc : rc2 ? rc2 : rc3;
}

/* The sync thread ended a job covering every batch up to id. */
static void on_synced(int rc, uint64_t id, uint64_t usec, const char *why) {
  assert(id == st.syncing_id && id > st.durable_id && id <= st.committed_id);
  st.syncing_id = 0;
  srv.group_syncs++;
  srv.group_sync_usec += usec;
  if (rc == TKV_OK) {
    st.durable_id = id;
    st.defer_kick = 1;           /* the hook says for how many clients */
    st.waiting = 0;
    st.last_sync_usec = usec;
    if (st.hook) st.hook(TKV_OK, id, NULL);
    return;
  }
  /* The engine refuses writes now (BROKEN_SYNC); store_recover reopens
  ** it.  Nothing past durable_id may be acknowledged. */
  srv_log("fdatasync of group commits %llu..%llu failed: %s",
          (unsigned long long)st.durable_id + 1, (unsigned long long)id, why);
  st.broken = 1;
  snprintf(st.why, sizeof st.why, "%s", why);
  if (st.hook) st.hook(rc, st.durable_id + 1, why);
}

/* Start a sync of every committed batch, unless one runs, all are
** durable, or the next waits for clients (store_end_turn). */
static void kick_sync(void) {
  if (!st.overlap || !syncer_running() || syncer_busy() || st.broken ||
      st.committed_id == st.durable_id || st.defer_kick)
    return;
  st.syncing_id = st.committed_id;
  syncer_submit(st.db, st.syncing_id);
}

/* The wait of store_end_turn is over: not every client came back. */
static void on_kick(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what; (void)arg;
  st.defer_kick = 0;
  st.waiting = 0;
  kick_sync();
}

void store_expect(unsigned n) {
  st.waiting = n;
  if (n == 0) st.defer_kick = 0;
}

void store_client_back(void) {
  if (st.waiting && --st.waiting == 0) st.defer_kick = 0;
}

int store_attach_loop(struct event_base *base) {
  if (!st.overlap) return 0;
  st.kick_ev = evtimer_new(base, on_kick, NULL);
  if (!st.kick_ev) {
    srv_log("cannot create the sync timer");
    return -1;
  }
  return syncer_start(base, on_synced);
}

/* Bounds of the wait of store_end_turn, microseconds. */
#define KICK_WAIT_MIN 1000
#define KICK_WAIT_MAX 2000

/*
** End of a loop turn: commit the batch and start a sync of everything
** committed, unless the clients the last sync answered are not all back.
** Their replies leave at the end of the turn in which that sync ended, and
** they answer within a round trip.  Starting the next sync at once would
** leave their next commands to the sync after it: each sync would cover
** half of the clients, each client would wait for two syncs, which on a
** disk whose fdatasync takes milliseconds halves the throughput.  So the
** sync waits until they are back (net.c counts them), or for half the
** time the last sync took within KICK_WAIT_MIN..MAX.  The floor is long
** enough for 50 clients of redis-benchmark on a loaded 2-core machine to
** come back (a shorter one, 50 us or 0.2 ms, timed out before they did
** and cost a fifth of the unpipelined rate); the price is that a client
** which goes idle after its reply delays the sync of the others' pending
** writes by up to 1 ms.
*/
int store_end_turn(void) {
  int rc = store_batch_commit();   /* starts the sync if not deferred */
  if (!st.kick_ev) return rc;
  if (!st.defer_kick) {
    evtimer_del(st.kick_ev);
    kick_sync();
  } else if (st.committed_id > st.durable_id &&
             !evtimer_pending(st.kick_ev, NULL)) {
    uint64_t us = st.last_sync_usec / 2;
    if (us < KICK_WAIT_MIN) us = KICK_WAIT_MIN;
    if (us > KICK_WAIT_MAX) us = KICK_WAIT_MAX;
    struct timeval tv = {0, (suseconds_t)us};
    evtimer_add(st.kick_ev, &tv);
  }
  return rc;
}

uint64_t store_visible_id(void) {
  return st.batch_id ? st.batch_id : st.committed_id;
}

uint64_t store_durable_id(void) { return st.durable_id; }

/* Everything committed made durable now, on this thread.  Without the
** sync thread (start-up, shutdown), or to settle: wait for its job, then
** sync here what it did not cover. */
int store_settle(void) {
  int rc = store_batch_commit();
  if (!st.overlap || !st.db) return rc;
  syncer_wait();
  st.defer_kick = 0;             /* this syncs now */
  st.waiting = 0;
  if (st.broken) return rc ? rc : TKV_BROKEN;
  int rc2 = tkv_sync_concurrent(st.db);
  uint64_t upto = st.committed_id;
  if (rc2 == TKV_OK) {
    if (upto > st.durable_id) {
      st.durable_id = upto;
      if (st.hook) st.hook(TKV_OK, upto, NULL);
    }
  } else {
    srv_log("fdatasync failed: %s", tkv_errmsg());
    st.broken = 1;
    if (upto > st.durable_id && st.hook)
      st.hook(rc2, st.durable_id + 1, tkv_errmsg());
  }
  return rc ? rc : rc2;
}

/* A write outside any transaction (REST) returns durable, as at sync=full
** it would without the overlap. */
static int settle_autocommit(int rc) {
  if (rc == TKV_OK && st.overlap && !tkv_in_transaction(st.db))
    rc = store_settle();
  return rc;
}

tkv_db *store_db(void) { return st.db; }

void store_prefetch(size_t n, const void *const *keys, const size_t *klens) {
  if (st.db && n > 0) tkv_prefetch(st.db, n, keys, klens);
}

void store_set_batch_hook(store_batch_hook hook) { st.hook = hook; }

void store_set_key_hook(store_key_hook hook) { st.key_hook = hook; }

/* A write, counted into the batch and announced. */
int store_write(const void *key, size_t klen, const void *val, size_t vlen,
                unsigned flags) {
  return store_write_expire(key, klen, val, vlen, flags, 0);
}

int store_write_expire(const void *key, size_t klen, const void *val,
                       size_t vlen, unsigned flags, uint64_t expire) {
  int rc = tkv_write_expire(st.db, key, klen, val, vlen, flags, expire, NULL);
  if (rc == TKV_OK) {
    objenc_forget(key, klen);
    store_batch_count(klen + vlen);
    if (st.key_hook) st.key_hook(key, klen);
  }
  return settle_autocommit(rc);
}

/* A new expiry time: the key's record is written again. */
int store_expire_set(const void *key, size_t klen, uint64_t expire) {
  int rc = tkv_expire_set(st.db, key, klen, expire);
  if (rc == TKV_OK) {
    store_batch_count(klen);
    if (st.key_hook) st.key_hook(key, klen);
  }
  return settle_autocommit(rc);
}

/* Keys deleted per tkv_expire_step round, and the time budget of a cycle
** (a quarter of the 100 ms between cycles, as Redis's slow cycle). */
#define EXPIRE_ROUND     64
#define EXPIRE_BUDGET_MS 25
#define EXPIRE_ROUND_ALL 1024   /* at start-up, with no budget */

/* A key the expiry step removed: forget its OBJECT ENCODING note. */
static void on_expired(void *ctx, const void *key, size_t klen) {
  (void)ctx;
  objenc_forget(key, klen);
}

void store_expire_cycle(int all) {
  if (!st.db || st.broken) return;
  uint64_t start = tkv_clock_ms();
  unsigned n, round = all ? EXPIRE_ROUND_ALL : EXPIRE_ROUND;
  if (store_batch_commit() != TKV_OK) return;
  do {
    int rc = tkv_expire_step_keys(st.db, round, on_expired, NULL, &n);
    if (rc != TKV_OK) {
      store_note(rc);
      srv_log("deleting expired keys failed: %s", tkv_errmsg());
      return;
    }
    srv.expired_keys += n;
  } while (n == round &&
           (all || tkv_clock_ms() - start < EXPIRE_BUDGET_MS));
}

/* A delete, counted into the batch and announced. */
int store_delete(const void *key, size_t klen) {
  int rc = tkv_delete(st.db, key, klen);
  if (rc == TKV_OK) {
    objenc_forget(key, klen);
    store_batch_count(klen);
    if (st.key_hook) st.key_hook(key, klen);
  }
  return settle_autocommit(rc);
}

/* Open the batch on the first write of an iteration (group commit). */
int store_batch_join(void) {
  if (!st.group_commit || st.batch_id || tkv_in_transaction(st.db))
    return TKV_OK;
  int rc = tkv_begin(st.db);
  if (rc != TKV_OK) return rc;
  st.batch_id = st.next_id++;
  st.batch_writes = 0;
  st.batch_bytes = 0;
  return TKV_OK;
}

uint64_t store_batch_id(void) { return st.batch_id; }

/* Account a write, for store_batch_due(). */
void store_batch_count(size_t bytes) {
  if (!st.batch_id) return;
  st.batch_writes++;
  st.batch_bytes += bytes;
}

/* The batch is over BATCH_MAX_WRITES or BATCH_MAX_BYTES. */
int store_batch_due(void) {
  return st.batch_id && (st.batch_writes >= BATCH_MAX_WRITES ||
                         st.batch_bytes >= BATCH_MAX_BYTES);
}

/* Commit (or on failure roll back) the batch and tell the hook. */
int store_batch_commit(void) {
  if (!st.batch_id) {
    kick_sync();              /* batches committed while a sync ran */
    return TKV_OK;
  }
  uint64_t id = st.batch_id;
  int rc = tkv_commit(st.db);
  if (rc != TKV_OK) {
    store_note(rc);
    srv_log("group commit of %zu writes failed: %s", st.batch_writes,
            tkv_errmsg());
    tkv_rollback(st.db);
  } else {
    srv.group_commits++;
    srv.group_commit_writes += st.batch_writes;
  }
  st.batch_id = 0;
  st.savepoints = 0;
  if (rc != TKV_OK) {
    /* Ids stay dense: the failed batch counts as settled (its replies
    ** become errors now), so later ones can still become durable. */
    if (st.hook) st.hook(rc, id, tkv_errmsg());
    if (st.durable_id == st.committed_id) st.durable_id = id;
    st.committed_id = id;
    return rc;
  }
  st.committed_id = id;
  if (!st.overlap) {
    st.durable_id = id;
    if (st.hook) st.hook(TKV_OK, id, NULL);
  } else if (!syncer_running()) {
    int rc2 = store_settle();        /* start-up: no loop yet */
    if (rc2 != TKV_OK) return rc2;
  } else {
    kick_sync();
  }
  return rc;
}

/* An own transaction outside any, else the next savepoint. */
int store_atomic_begin(store_atomic *a) {
  a->own_txn = 0;
  a->savepoint = -1;
  if (st.overlap) {
    /* Into the batch: an own transaction would not be synced. */
    int rc = store_batch_join();
    if (rc != TKV_OK) return rc;
  }
  if (!tkv_in_transaction(st.db)) {
    int rc = tkv_begin(st.db);
    if (rc == TKV_OK) a->own_txn = 1;
    return rc;
  }
  int rc = tkv_savepoint(st.db, st.savepoints);
  if (rc == TKV_OK) a->savepoint = st.savepoints++;
  return rc;
}

/* Commit or undo what store_atomic_begin() started. */
int store_atomic_end(store_atomic *a, int ok) {
  int rc = TKV_OK;
  if (a->own_txn) {
    rc = ok ? tkv_commit(st.db) : tkv_rollback(st.db);
    if (ok && rc != TKV_OK) tkv_rollback(st.db);
  } else if (a->savepoint >= 0) {
    if (!ok) rc = tkv_rollback_to(st.db, a->savepoint);
    int rc2 = tkv_release(st.db, a->savepoint);
    if (rc == TKV_OK) rc = rc2;
    st.savepoints = a->savepoint;
  }
  a->own_txn = 0;
  a->savepoint = -1;
  return rc;
}

/* Remember TKV_BROKEN for store_recover(). */
void store_note(int rc) {
  if (rc == TKV_BROKEN) st.broken = 1;
}

/* Reopen a broken engine between loop iterations. */
int store_recover(void) {
  if (!st.broken || !st.db) return 0;
  srv_log("the engine reported a failure it cannot undo; reopening the "
          "store: %s", st.why[0] ? st.why : tkv_errmsg());
  st.why[0] = 0;
  syncer_wait();
  store_batch_commit();              /* fails and rolls back, or no-op */
  /* Replies that read what no sync covered: not sent (see store.h). */
  if (st.hook && st.durable_id < st.next_id - 1)
    st.hook(TKV_BROKEN, st.durable_id + 1,
            "the store failed and is being reopened");
  tkv_close(st.db);
  st.db = NULL;
  st.broken = 0;
  int rc = store_open(st.dir, st.sync, st.group_commit, st.merge_min);
  if (rc != TKV_OK) {
    srv_log("cannot reopen the store: %s: %s", tkv_strerror(rc),
            tkv_errmsg());
    st.db = NULL;
    return -1;
  }
  srv_log("store reopened (%llu keys)",
          (unsigned long long)tkv_count(st.db));
  return 0;
}

/* Commit the batch, then flush and fdatasync. */
int store_compact(uint64_t *preclaimed) {
  int rc = store_batch_commit();
  if (rc == TKV_OK) rc = tkv_compact(st.db, preclaimed);
  if (rc != TKV_OK) store_note(rc);
  return rc;
}


int store_sync(void) {
  int rc = store_settle();
  if (rc != TKV_OK) return rc;
  return tkv_sync(st.db);
}

/* ------------------------------------- Compaction, backup and check on
** request (COMPACT, BACKUP, CHECK and their REST forms).  Each is logged
** with what it did and how long it took; the engine's stats count them
** too (compactions, backups and checks, with their durations). */

static uint64_t now_usec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* What the engine's merge counters were at the last store_log_merges (or
** after the last compaction asked for, which is logged on its own). */
static struct {
  uint64_t merges, reclaimed, usec, damaged;
  int last_rc;
} seen;

static void merges_seen(const tkv_stats *s) {
  seen.merges = s->merges;
  seen.reclaimed = s->merge_bytes_reclaimed;
  seen.usec = s->merge_usec;
  seen.damaged = s->merge_damaged;
  seen.last_rc = s->last_compact_rc;
}

void store_log_merges(void) {
  tkv_stats s;
  if (!st.db || tkv_stats_get(st.db, &s) != TKV_OK) return;
  if (s.merges > seen.merges)
    srv_log("merged in the background: %llu merge%s, %llu bytes reclaimed "
            "in %.1f ms (%llu merges since start), %.1f%% dead now",
            (unsigned long long)(s.merges - seen.merges),
            s.merges - seen.merges == 1 ? "" : "s",
            (unsigned long long)(s.merge_bytes_reclaimed - seen.reclaimed),
            (double)(s.merge_usec - seen.usec) / 1000.0,
            (unsigned long long)s.merges, 100.0 * s.dead_ratio);
  if (s.merge_damaged > seen.damaged) srv_log("merge: %s", s.merge_note);
  if (s.last_compact_rc != TKV_OK && s.last_compact_rc != seen.last_rc)
    srv_log("background merge failed: %s", tkv_strerror(s.last_compact_rc));
  merges_seen(&s);
}

int store_compact_now(const char *who, uint64_t *preclaimed) {
  uint64_t reclaimed = 0, t0;
  int rc = store_batch_commit();
  store_log_merges();            /* background merges before this one ... */
  t0 = now_usec();
  if (rc == TKV_OK) rc = tkv_compact(st.db, &reclaimed);
  double ms = (double)(now_usec() - t0) / 1000.0;
  if (rc == TKV_OK) {
    tkv_stats s;
    srv_log("compaction (%s): %llu bytes reclaimed in %.1f ms", who,
            (unsigned long long)reclaimed, ms);
    if (tkv_stats_get(st.db, &s) == TKV_OK) merges_seen(&s);  /* ... not it */
  }
  else
    srv_log("compaction (%s) failed after %.1f ms: %s", who, ms,
            tkv_errmsg());
  if (preclaimed) *preclaimed = reclaimed;
  return rc;
}

const char *store_backup_path(const char *name, size_t len, char *out,
                              size_t size) {
  if (!srv.cfg.backup_dir)
    return "backups are off: start tinkv-server with --backup-dir DIR";
  if (len == 0 || len > 200 || memchr(name, '/', len) ||
      (len == 1 && name[0] == '.') ||
      (len == 2 && name[0] == '.' && name[1] == '.'))
    return "a backup name is one path component (no '/', not '.' or '..'), "
           "of 1 to 200 bytes";
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)name[i] < ' ' || name[i] == 0x7f)
      return "a backup name has no control characters";
  if ((size_t)snprintf(out, size, "%s/%.*s", srv.cfg.backup_dir, (int)len,
                       name) >= size)
    return "the backup path is too long";
  return NULL;
}

int store_backup(const char *who, const char *dest, int incremental,
                 tkv_backup_report *rep) {
  int rc = store_batch_commit();
  memset(rep, 0, sizeof *rep);
  if (rc == TKV_OK)
    rc = tkv_backup(st.db, dest, incremental ? TKV_BACKUP_INCREMENTAL : 0,
                    NULL, NULL, rep);
  if (rc == TKV_OK)
    srv_log("backup (%s) to %s%s: %llu files (%llu linked, %llu copied, "
            "%llu kept), %llu bytes copied in %.1f ms", who, dest,
            incremental ? ", incremental" : "",
            (unsigned long long)rep->files, (unsigned long long)rep->linked,
            (unsigned long long)rep->copied, (unsigned long long)rep->kept,
            (unsigned long long)rep->bytes_copied,
            (double)rep->usec / 1000.0);
  else
    srv_log("backup (%s) to %s failed: %s", who, dest, tkv_errmsg());
  return rc;
}

int store_check(const char *who, tkv_problem_fn problem_fn, void *ctx,
                tkv_check_report *rep) {
  int rc = store_batch_commit();
  memset(rep, 0, sizeof *rep);
  if (rc == TKV_OK) rc = tkv_check_db(st.db, problem_fn, NULL, ctx, rep);
  if (rc == TKV_OK)
    srv_log("check (%s): ok, %llu records in %llu files in %.1f ms", who,
            (unsigned long long)rep->records, (unsigned long long)rep->files,
            (double)rep->usec / 1000.0);
  else if (rc == TKV_CORRUPT)
    srv_log("check (%s): %llu problems in %.1f ms: %s", who,
            (unsigned long long)rep->problems, (double)rep->usec / 1000.0,
            tkv_errmsg());
  else
    srv_log("check (%s) failed: %s", who, tkv_errmsg());
  return rc;
}
