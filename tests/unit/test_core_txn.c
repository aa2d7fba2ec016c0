/*
** Tests of transactions (tkv_begin .. tkv_commit in core/tinkv.h): a
** transaction's writes are seen by its own handle only until commit, a
** rollback (whole, or to a savepoint) undoes them in memory and on disk, a
** second transaction of the same thread is refused with TKV_BUSY, and a
** crash before the commit record leaves nothing of the transaction.
*/
#include "engine_check.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define BIG_VALUE 8192
#define BIG_COUNT 200        /* 200 x 8 KiB: past the 1 MiB write buffer */

/* Write BIG_COUNT values of BIG_VALUE bytes under "big%03d". */
static void put_big(tkv_db *db, model *m, uint64_t seed){
  uint8_t *val = malloc(BIG_VALUE);
  char key[16];
  assert_non_null(val);
  for(int i=0; i<BIG_COUNT; i++){
    snprintf(key, sizeof key, "big%03d", i);
    fill_value(val, BIG_VALUE, seed + (uint64_t)i);
    assert_ok(tkv_put(db, key, strlen(key), val, BIG_VALUE));
    if( m ) model_put(m, key, strlen(key), val, BIG_VALUE);
  }
  free(val);
}

/* Ten small keys "k0".."k9" with values "v0".."v9". */
static void put_ten(tkv_db *db, model *m){
  char key[16], val[16];
  for(int i=0; i<10; i++){
    snprintf(key, sizeof key, "k%d", i);
    snprintf(val, sizeof val, "v%d", i);
    put_str(db, m, key, val);
  }
}

/* The transaction's handle sees its writes at once; another handle sees
** the committed state until the commit, then everything. */
static void test_commit_visibility(void **state){
  fixture *f = *state;
  tkv_db *a = open_store(f->dir), *b;
  model before = {0}, after = {0};
  uint64_t id;

  assert_ok(tkv_open(f->dir, NULL, &b));
  put_ten(a, &before);
  model_copy(&after, &before);

  assert_ok(tkv_begin(a));
  assert_true(tkv_in_transaction(a));
  assert_false(tkv_in_transaction(b));
  put_str(a, &after, "new", "inserted");
  put_str(a, &after, "k1", "changed");
  put_str(a, &after, "k1", "changed twice");
  del_str(a, &after, "k2");
  put_str(a, &after, "k3", "");
  assert_ok(tkv_write(a, "new2", 4, "x", 1, 0, &id));
  model_put(&after, "new2", 4, "x", 1);

  assert_store_is(a, &after);
  assert_store_is(b, &before);
  assert_tkv(TKV_NOTFOUND, tkv_lookup(b, "new", 3, NULL, NULL));
  assert_int_equal(stats_of(b).keys, 10);

  assert_ok(tkv_commit(a));
  assert_false(tkv_in_transaction(a));
  assert_store_is(a, &after);
  assert_store_is(b, &after);
  assert_int_equal(stats_of(b).keys, after.n);
  close_ok(b);
  reopen_with(&a, f->dir, NULL);
  assert_store_is(a, &after);
  close_ok(a);
  model_clear(&before);
  model_clear(&after);
}

/* Inside a transaction tkv_count includes its own inserts and deletes;
** other handles count committed keys only. */
static void test_count_in_transaction(void **state){
  fixture *f = *state;
  tkv_db *a = open_store(f->dir), *b;
  assert_ok(tkv_open(f->dir, NULL, &b));
  put_ten(a, NULL);
  assert_ok(tkv_begin(a));
  put_str(a, NULL, "n1", "x");
  put_str(a, NULL, "n2", "x");
  assert_int_equal(tkv_count(a), 12);
  put_str(a, NULL, "k0", "overwrite");
  assert_int_equal(tkv_count(a), 12);
  del_str(a, NULL, "k1");
  del_str(a, NULL, "n1");
  assert_int_equal(tkv_count(a), 10);
  put_str(a, NULL, "k1", "back");
  assert_int_equal(tkv_count(a), 11);
  assert_int_equal(tkv_count(b), 10);
  assert_ok(tkv_savepoint(a, 0));
  del_str(a, NULL, "k5");
  del_str(a, NULL, "k6");
  assert_int_equal(tkv_count(a), 9);
  assert_ok(tkv_rollback_to(a, 0));
  assert_int_equal(tkv_count(a), 11);
  assert_ok(tkv_commit(a));
  assert_int_equal(tkv_count(a), 11);
  assert_int_equal(tkv_count(b), 11);
  close_ok(b);
  reopen_with(&a, f->dir, NULL);
  assert_int_equal(tkv_count(a), 11);
  close_ok(a);
}

/* A rollback undoes every write in memory and on disk: the file is cut
** back even when the transaction was large enough to be written out, and
** a reopen shows the state from before the transaction. */
static void test_rollback_undoes_everything(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  model before = {0};
  tkv_stats st0, st1;
  seg_rec recs[64];
  long long size0;
  unsigned seg;
  int n;

  put_ten(db, &before);
  seg = newest_seg(f->dir);
  size0 = tu_file_size(seg_path(f->dir, seg, ".seg"));
  st0 = stats_of(db);

  /* A small transaction, still in the write buffer. */
  assert_ok(tkv_begin(db));
  put_str(db, NULL, "small", "x");
  del_str(db, NULL, "k0");
  assert_ok(tkv_rollback(db));
  assert_false(tkv_in_transaction(db));
  assert_store_is(db, &before);

  /* A large one, written to the file before the rollback. */
  assert_ok(tkv_begin(db));
  put_str(db, NULL, "k1", "changed");
  del_str(db, NULL, "k2");
  put_big(db, NULL, 1);
  assert_true(seg_records(seg_path(f->dir, seg, ".seg"), recs, 64, NULL) > 100);
  assert_ok(tkv_rollback(db));
  assert_store_is(db, &before);
  st1 = stats_of(db);
  assert_int_equal(st1.live_bytes, st0.live_bytes);
  assert_int_equal(st1.stale_bytes, st0.stale_bytes);
  assert_true(tu_file_size(seg_path(f->dir, seg, ".seg")) <= size0);

  /* Later writes go on from there. */
  put_str(db, &before, "after", "rollback");
  close_ok(db);
  n = seg_records(seg_path(f->dir, seg, ".seg"), recs, 64, NULL);
  assert_int_equal(n, 11);
  for(int i=0; i<n && i<64; i++) assert_int_equal(recs[i].type, TKV_REC_PUT);
  db = open_store(f->dir);
  assert_store_is(db, &before);
  close_ok(db);
  model_clear(&before);
}

/* Savepoints as in SQLite: rollback_to(n) undoes the writes after mark n
** and keeps n; release(n) forgets n and above; savepoint(n) marks lower
** unmarked ones too. */
static void test_savepoints_nested(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  model m = {0};
  put_str(db, &m, "x", "committed");
  put_str(db, &m, "y", "committed");

  assert_ok(tkv_begin(db));
  put_str(db, NULL, "a", "1");
  put_str(db, NULL, "x", "x1");
  assert_ok(tkv_savepoint(db, 0));
  put_str(db, NULL, "b", "2");
  put_str(db, NULL, "x", "x2");
  assert_ok(tkv_savepoint(db, 1));
  put_str(db, NULL, "c", "3");
  put_str(db, NULL, "x", "x3");
  del_str(db, NULL, "a");
  del_str(db, NULL, "y");

  assert_ok(tkv_rollback_to(db, 1));
  expect_str(db, "a", "1");
  expect_str(db, "b", "2");
  expect_str(db, "x", "x2");
  expect_str(db, "y", "committed");
  expect_absent_str(db, "c");

  /* Savepoint 1 is still there. */
  put_str(db, NULL, "d", "4");
  assert_ok(tkv_rollback_to(db, 1));
  expect_absent_str(db, "d");

  put_str(db, NULL, "e", "5");
  assert_ok(tkv_release(db, 1));
  assert_ok(tkv_rollback_to(db, 0));
  expect_absent_str(db, "b");
  expect_absent_str(db, "e");
  expect_str(db, "x", "x1");
  expect_str(db, "a", "1");

  /* Marking 2 marks 1 as well, at the same point. */
  put_str(db, NULL, "f", "6");
  assert_ok(tkv_savepoint(db, 2));
  put_str(db, NULL, "g", "7");
  assert_ok(tkv_rollback_to(db, 1));
  expect_absent_str(db, "g");
  expect_str(db, "f", "6");

  assert_ok(tkv_commit(db));
  model_put(&m, "a", 1, "1", 1);
  model_put(&m, "x", 1, "x1", 2);
  model_put(&m, "f", 1, "6", 1);
  assert_store_is(db, &m);
  close_ok(db);
  db = open_store(f->dir);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* A rollback to a savepoint after the transaction was written out cuts
** the file back to the savepoint; the commit that follows is whole. */
static void test_savepoint_rollback_after_flush(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  model m = {0};
  put_ten(db, &m);
  assert_ok(tkv_begin(db));
  put_str(db, &m, "kept", "before the savepoint");
  del_str(db, &m, "k3");
  assert_ok(tkv_savepoint(db, 0));
  put_big(db, NULL, 5);
  del_str(db, NULL, "k4");
  assert_ok(tkv_rollback_to(db, 0));
  put_str(db, &m, "also-kept", "after the rollback");
  assert_ok(tkv_commit(db));
  assert_store_is(db, &m);
  close_ok(db);
  db = open_store(f->dir);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* rollback_to of a savepoint never marked undoes everything since begin
** and leaves the transaction open. */
static void test_rollback_to_unmarked(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  model m = {0};
  put_str(db, &m, "old", "v");
  assert_ok(tkv_begin(db));
  put_str(db, NULL, "a", "1");
  del_str(db, NULL, "old");
  assert_ok(tkv_rollback_to(db, 3));
  assert_true(tkv_in_transaction(db));
  assert_store_is(db, &m);
  put_str(db, &m, "c", "3");
  assert_ok(tkv_commit(db));
  assert_store_is(db, &m);
  close_ok(db);
  db = open_store(f->dir);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* After tkv_prepare no writes are accepted; a rollback then still undoes
** the transaction, also on disk, and a commit publishes it. */
static void test_prepare_then_rollback(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  model m = {0};
  put_ten(db, &m);

  assert_ok(tkv_begin(db));
  put_str(db, NULL, "p", "prepared");
  del_str(db, NULL, "k0");
  assert_ok(tkv_prepare(db));
  assert_ok(tkv_prepare(db));
  assert_tkv(TKV_MISUSE, tkv_put(db, "q", 1, "x", 1));
  assert_tkv(TKV_MISUSE, tkv_savepoint(db, 0));
  assert_tkv(TKV_MISUSE, tkv_rollback_to(db, 0));
  assert_ok(tkv_rollback(db));
  assert_store_is(db, &m);
  reopen_with(&db, f->dir, NULL);
  assert_store_is(db, &m);

  /* The same, large enough to be written out before the prepare. */
  assert_ok(tkv_begin(db));
  put_big(db, NULL, 9);
  assert_ok(tkv_prepare(db));
  assert_ok(tkv_rollback(db));
  assert_store_is(db, &m);
  reopen_with(&db, f->dir, NULL);
  assert_store_is(db, &m);

  /* Prepare, then commit. */
  assert_ok(tkv_begin(db));
  put_str(db, &m, "p", "prepared");
  assert_ok(tkv_prepare(db));
  assert_ok(tkv_commit(db));
  assert_store_is(db, &m);
  reopen_with(&db, f->dir, NULL);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

static double now_seconds(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec/1e9;
}

/* While one handle has a transaction open, another handle of the same
** thread gets TKV_BUSY at once for begin, writes and compaction, and
** can still read the committed data. */
static void test_busy_second_handle(void **state){
  fixture *f = *state;
  tkv_db *a = open_store(f->dir), *b;
  double t0;
  assert_ok(tkv_open(f->dir, NULL, &b));
  put_str(a, NULL, "k", "committed");

  assert_ok(tkv_begin(a));
  put_str(a, NULL, "k", "pending");
  t0 = now_seconds();
  assert_tkv(TKV_BUSY, tkv_begin(b));
  assert_true(msg_has(tkv_errmsg(), "transaction"));
  assert_tkv(TKV_BUSY, tkv_put(b, "other", 5, "x", 1));
  assert_tkv(TKV_BUSY, tkv_delete(b, "k", 1));
  assert_tkv(TKV_BUSY, tkv_compact(b, NULL));
  assert_true(now_seconds() - t0 < 2.0);
  assert_false(tkv_in_transaction(b));
  expect_str(b, "k", "committed");
  expect_absent_str(b, "other");
  assert_tkv(TKV_MISUSE, tkv_begin(a));       /* one per handle */

  assert_ok(tkv_commit(a));
  expect_str(b, "k", "pending");
  assert_ok(tkv_begin(b));
  put_str(b, NULL, "other", "x");
  assert_tkv(TKV_BUSY, tkv_begin(a));
  assert_ok(tkv_rollback(b));
  put_str(a, NULL, "after", "y");
  close_ok(b);
  close_ok(a);
}

/* A handle used by another thread that holds a transaction for a while. */
typedef struct holder {
  tkv_db *db;
  int hold_ms;
  atomic_int started;
  int rc;
} holder;

static void *hold_then_commit(void *arg){
  holder *h = arg;
  h->rc = tkv_begin(h->db);
  if( !h->rc ) h->rc = tkv_put(h->db, "held", 4, "by the thread", 13);
  atomic_store(&h->started, 1);
  usleep((useconds_t)h->hold_ms * 1000);
  if( !h->rc ) h->rc = tkv_commit(h->db);
  return NULL;
}

/* When the transaction belongs to a handle last used by another thread,
** tkv_begin waits for it (up to 5 s) instead of failing at once. */
static void test_begin_waits_for_another_thread(void **state){
  fixture *f = *state;
  tkv_db *a = open_store(f->dir), *b;
  pthread_t thread;
  holder h;
  double t0, waited;
  assert_ok(tkv_open(f->dir, NULL, &b));
  h.db = a;
  h.hold_ms = 300;
  atomic_init(&h.started, 0);
  h.rc = -1;
  assert_int_equal(pthread_create(&thread, NULL, hold_then_commit, &h), 0);
  while( !atomic_load(&h.started) ) usleep(1000);
  t0 = now_seconds();
  assert_ok(tkv_begin(b));
  waited = now_seconds() - t0;
  assert_true(waited > 0.1 && waited < 4.0);
  expect_str(b, "held", "by the thread");
  put_str(b, NULL, "after", "the wait");
  assert_ok(tkv_commit(b));
  assert_int_equal(pthread_join(thread, NULL), 0);
  assert_int_equal(h.rc, TKV_OK);
  expect_str(a, "after", "the wait");
  close_ok(b);
  close_ok(a);
}

/* A transaction larger than max_file_size stays in one segment, which
** outgrows the limit (and its map: the commit maps it again whole); it
** reads back, while active and once sealed, reopens and compacts. */
static void test_transaction_larger_than_a_segment(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 65536, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  put_ten(db, &m);
  assert_ok(tkv_begin(db));
  put_big(db, &m, 21);
  del_str(db, &m, "k3");
  assert_ok(tkv_commit(db));
  assert_store_is(db, &m);
  put_str(db, &m, "after", "the big one");
  assert_store_is(db, &m);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  assert_ok(tkv_compact(db, NULL));
  assert_store_is(db, &m);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* Calls that need a transaction, without one: TKV_MISUSE. */
static void test_misuse_without_transaction(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  assert_tkv(TKV_MISUSE, tkv_commit(db));
  assert_tkv(TKV_MISUSE, tkv_rollback(db));
  assert_tkv(TKV_MISUSE, tkv_prepare(db));
  assert_tkv(TKV_MISUSE, tkv_savepoint(db, 0));
  assert_tkv(TKV_MISUSE, tkv_rollback_to(db, 0));
  assert_tkv(TKV_MISUSE, tkv_release(db, 0));
  assert_ok(tkv_begin(db));
  assert_tkv(TKV_INVALID, tkv_savepoint(db, -1));
  assert_tkv(TKV_INVALID, tkv_rollback_to(db, -1));
  assert_ok(tkv_commit(db));
  close_ok(db);
}

/* Within one transaction: a key inserted then deleted is absent after the
** commit, a key deleted then inserted has its new value, TKV_NOOVERWRITE
** sees the transaction's own writes. */
static void test_write_sequences_in_transaction(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  model m = {0};
  put_str(db, &m, "deleted-then-put", "old");
  put_str(db, &m, "put-then-deleted", "old");
  assert_ok(tkv_begin(db));
  put_str(db, &m, "fresh", "1");
  del_str(db, &m, "fresh");
  del_str(db, &m, "deleted-then-put");
  put_str(db, &m, "deleted-then-put", "new");
  put_str(db, &m, "put-then-deleted", "newer");
  del_str(db, &m, "put-then-deleted");
  assert_tkv(TKV_NOTFOUND, tkv_delete(db, "fresh", 5));
  put_str(db, &m, "n", "1");
  assert_tkv(TKV_EXISTS, tkv_write(db, "n", 1, "2", 1, TKV_NOOVERWRITE, NULL));
  del_str(db, &m, "n");
  assert_ok(tkv_write(db, "n", 1, "3", 1, TKV_NOOVERWRITE, NULL));
  model_put(&m, "n", 1, "3", 1);
  assert_ok(tkv_commit(db));
  assert_store_is(db, &m);
  close_ok(db);
  db = open_store(f->dir);
  assert_store_is(db, &m);

  /* An empty transaction commits and rolls back quietly. */
  assert_ok(tkv_begin(db));
  assert_ok(tkv_commit(db));
  assert_ok(tkv_begin(db));
  assert_ok(tkv_rollback(db));
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* Closing a handle rolls its transaction back and frees the writer slot
** for the other handles. */
static void test_close_rolls_back(void **state){
  fixture *f = *state;
  tkv_db *a = open_store(f->dir), *b;
  assert_ok(tkv_open(f->dir, NULL, &b));
  put_str(a, NULL, "k", "committed");
  assert_ok(tkv_begin(a));
  put_str(a, NULL, "k", "pending");
  put_str(a, NULL, "n", "pending");
  close_ok(a);
  expect_str(b, "k", "committed");
  expect_absent_str(b, "n");
  assert_ok(tkv_begin(b));
  assert_ok(tkv_commit(b));
  close_ok(b);
  a = open_store(f->dir);
  expect_str(a, "k", "committed");
  expect_absent_str(a, "n");
  close_ok(a);
}

/* A crash in the middle of a transaction whose records already reached the
** file (a copy of the directory taken then): the copy opens with nothing of
** the transaction, and takes new transactions afterwards. */
static void test_crash_mid_transaction(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir), *copy;
  model before = {0}, after = {0}, later = {0};
  seg_rec recs[8];
  unsigned seg;
  put_ten(db, &before);
  model_copy(&after, &before);

  assert_ok(tkv_begin(db));
  del_str(db, &after, "k5");
  put_str(db, &after, "k6", "changed");
  put_big(db, &after, 3);
  seg = newest_seg(f->dir);
  /* The transaction's records are in the file. */
  assert_int_equal(seg_records(seg_path(f->dir, seg, ".seg"), recs, 8, NULL)
                   > 100, 1);
  assert_int_equal(recs[5].type, TKV_REC_PUT);
  crash_image(f->dir, f->copy);

  copy = open_store(f->copy);
  assert_store_is(copy, &before);
  model_copy(&later, &before);
  assert_ok(tkv_begin(copy));
  put_str(copy, &later, "later", "txn");
  del_str(copy, &later, "k1");
  assert_ok(tkv_commit(copy));
  put_str(copy, &later, "single", "put");
  reopen_with(&copy, f->copy, NULL);
  assert_store_is(copy, &later);
  close_ok(copy);

  /* The original commits and keeps all of it. */
  assert_ok(tkv_commit(db));
  assert_store_is(db, &after);
  close_ok(db);
  db = open_store(f->dir);
  assert_store_is(db, &after);
  close_ok(db);
  model_clear(&before);
  model_clear(&after);
  model_clear(&later);
}


/* ------------------------------------------ Failures and what follows. */

/* A read on its own thread, so that a read that never returns fails the
** test instead of hanging it. */
typedef struct bounded_get {
  tkv_db *db;
  const char *key;
  atomic_int done;
  int rc;
} bounded_get;

static void *bounded_get_run(void *arg){
  bounded_get *g = arg;
  void *v = NULL;
  size_t n;
  g->rc = tkv_get(g->db, g->key, strlen(g->key), &v, &n);
  tkv_free(v);
  atomic_store(&g->done, 1);
  return NULL;
}

/* tkv_get of key within 10 s, or fail. */
static int get_within(tkv_db *db, const char *key){
  bounded_get g;
  pthread_t th;
  memset(&g, 0, sizeof g);
  g.db = db;
  g.key = key;
  assert_int_equal(pthread_create(&th, NULL, bounded_get_run, &g), 0);
  for(int i=0; i<1000 && !atomic_load(&g.done); i++) usleep(10000);
  if( !atomic_load(&g.done) ){
    pthread_detach(th);
    fail_msg("tkv_get(%s) did not return in 10 s", key);
  }
  pthread_join(th, NULL);
  return g.rc;
}

/*
** A rollback-to whose records cannot be taken out of the file (truncate
** and the zeroing write both fail, after a value went straight to the
** file): it fails with TKV_BROKEN, its writes are undone in memory (a read
** of one returns at once), and the transaction can do nothing but roll
** back: no write, no commit, so nothing is acknowledged that a reopen
** would not find.
*/
static void test_failed_rollback_to_poisons_transaction(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 0, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  size_t big_len = 2u << 20;
  uint8_t *big = malloc(big_len);
  fault_plan plan;
  model m = {0};
  assert_non_null(big);
  fill_value(big, big_len, 5);
  put_str(db, &m, "committed", "before");
  assert_ok(tkv_begin(db));
  put_str(db, NULL, "k0", "zero");
  assert_ok(tkv_savepoint(db, 0));
  assert_ok(tkv_put(db, "k1", 2, big, big_len));   /* straight to the file */
  put_str(db, NULL, "k2", "two");
  fault_arm(&plan, TKV_IO_TRUNCATE, 1, EIO);
  plan.sticky = 1;
  plan.then_op = TKV_IO_WRITE;
  assert_tkv(TKV_BROKEN, tkv_rollback_to(db, 0));
  assert_true(msg_has(tkv_errmsg(), "reopen"));
  fault_off();
  free(big);

  /* Undone in memory: the reads return, without the rolled-back keys. */
  assert_int_equal(get_within(db, "k1"), TKV_NOTFOUND);
  assert_int_equal(get_within(db, "k2"), TKV_NOTFOUND);
  expect_str(db, "k0", "zero");

  /* Nothing more goes into the transaction, and it cannot commit. */
  assert_tkv(TKV_BROKEN, tkv_put(db, "k3", 2, "three", 5));
  assert_tkv(TKV_BROKEN, tkv_savepoint(db, 1));
  assert_tkv(TKV_BROKEN, tkv_rollback_to(db, 0));
  assert_tkv(TKV_BROKEN, tkv_commit(db));
  assert_true(tkv_in_transaction(db));
  assert_ok(tkv_rollback(db));
  assert_false(tkv_in_transaction(db));
  assert_tkv(TKV_BROKEN, tkv_put(db, "k9", 2, "x", 1));
  assert_store_is(db, &m);
  assert_tkv(TKV_BROKEN, tkv_close(db));

  /* What the reopen finds is what was acknowledged. */
  db = open_with(f->dir, &o);
  assert_store_is(db, &m);
  put_str(db, &m, "after", "reopen");
  close_ok(db);
  model_clear(&m);
}

/* A hook for the next test: once armed, the first fdatasync fails, and
** from then on every truncate and write fails (nothing can be cut off). */
static int cut_armed;
static int cut_hook(int op, const char *path, void *ctx){
  (void)path; (void)ctx;
  if( cut_armed==1 && op==TKV_IO_SYNC ){ cut_armed = 2; return EIO; }
  if( cut_armed==2 && (op==TKV_IO_TRUNCATE || op==TKV_IO_WRITE) ) return EIO;
  return 0;
}

/*
** A commit whose fdatasync fails and whose commit record cannot be taken
** back: the caller is told the truth, TKV_BROKEN (the next open will find
** the transaction committed), not a failure it could take for "not
** committed".  tkv_rollback and the last tkv_close try again to cut the
** record off; with_cut: the file system lets the close do it, and the
** reopen finds nothing of the transaction; else it finds all of it.
*/
static void failed_commit_record_stays(fixture *f, int with_cut){
  tkv_options o = store_options(TKV_SYNC_FULL, 0, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  model m = {0}, committed = {0};
  put_str(db, &m, "a", "1");
  model_copy(&committed, &m);
  assert_ok(tkv_begin(db));
  put_str(db, &committed, "txkey", "committed at the next open");
  put_str(db, &committed, "a", "2");
  cut_armed = 1;
  tkv_test_set_io_hook(cut_hook, NULL);
  assert_tkv(TKV_BROKEN, tkv_commit(db));
  assert_true(msg_has(tkv_errmsg(), "committed"));
  assert_true(msg_has(tkv_errmsg(), "reopen"));
  assert_true(tkv_in_transaction(db));
  assert_tkv(TKV_BROKEN, tkv_commit(db));
  assert_tkv(TKV_BROKEN, tkv_rollback(db));
  assert_false(tkv_in_transaction(db));
  assert_store_is(db, &m);
  if( with_cut ) fault_off();
  assert_tkv(TKV_BROKEN, tkv_close(db));
  fault_off();
  cut_armed = 0;
  db = open_with(f->dir, &o);
  assert_store_is(db, with_cut ? &m : &committed);
  close_ok(db);
  model_clear(&m);
  model_clear(&committed);
}

static void test_failed_commit_record_cut_at_close(void **state){
  failed_commit_record_stays(*state, 1);
}

static void test_failed_commit_record_found_by_reopen(void **state){
  failed_commit_record_stays(*state, 0);
}

/*
** A commit whose fdatasync fails, once: the commit is not acknowledged,
** and it is not acknowledged by a retry either (the kernel may have
** dropped the pages it could not write, and a second fdatasync would say
** nothing of them).  The engine refuses writes until reopened; tkv_sync
** refuses too.  After the reopen the transaction is there or not, every
** acknowledged write is, and the store works.
*/
static void test_commit_after_failed_sync_is_refused(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 0, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  fault_plan plan;
  model m = {0}, alt = {0};
  char why[600];
  put_str(db, &m, "a", "1");
  model_copy(&alt, &m);
  assert_ok(tkv_begin(db));
  put_str(db, &alt, "t", "maybe");
  fault_arm(&plan, TKV_IO_SYNC, 1, EIO);
  assert_tkv(TKV_IO, tkv_commit(db));
  assert_true(msg_has(tkv_errmsg(), strerror(EIO)));
  assert_true(msg_has(tkv_errmsg(), "reopen"));
  fault_off();
  assert_tkv(TKV_BROKEN, tkv_commit(db));
  assert_true(tkv_in_transaction(db));
  assert_ok(tkv_rollback(db));
  assert_tkv(TKV_BROKEN, tkv_put(db, "b", 1, "2", 1));
  assert_tkv(TKV_BROKEN, tkv_sync(db));
  assert_store_is(db, &m);
  assert_tkv(TKV_BROKEN, tkv_close(db));
  db = open_with(f->dir, &o);
  if( store_diff(db, &m, why, sizeof why) ) assert_store_is(db, &alt);
  put_str(db, NULL, "b", "2");
  close_ok(db);
  model_clear(&m);
  model_clear(&alt);
}

/* The same for tkv_sync, the durability point of sync=normal: after one
** failed fdatasync, a second tkv_sync must not report success. */
static void test_sync_after_failed_sync_is_refused(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 0, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  fault_plan plan;
  put_str(db, NULL, "a", "1");
  fault_arm(&plan, TKV_IO_SYNC, 1, EIO);
  assert_tkv(TKV_IO, tkv_sync(db));
  fault_off();
  assert_tkv(TKV_BROKEN, tkv_sync(db));
  assert_tkv(TKV_BROKEN, tkv_put(db, "b", 1, "2", 1));
  expect_str(db, "a", "1");
  assert_tkv(TKV_BROKEN, tkv_close(db));
  db = open_with(f->dir, &o);
  expect_str(db, "a", "1");
  close_ok(db);
}

int main(void){
  const struct CMUnitTest tests[] = {
    CORE_TEST(test_commit_visibility),
    CORE_TEST(test_count_in_transaction),
    CORE_TEST(test_rollback_undoes_everything),
    CORE_TEST(test_savepoints_nested),
    CORE_TEST(test_savepoint_rollback_after_flush),
    CORE_TEST(test_rollback_to_unmarked),
    CORE_TEST(test_prepare_then_rollback),
    CORE_TEST(test_busy_second_handle),
    CORE_TEST(test_begin_waits_for_another_thread),
    CORE_TEST(test_misuse_without_transaction),
    CORE_TEST(test_write_sequences_in_transaction),
    CORE_TEST(test_close_rolls_back),
    CORE_TEST(test_crash_mid_transaction),
    CORE_TEST(test_transaction_larger_than_a_segment),
    CORE_TEST(test_failed_rollback_to_poisons_transaction),
    CORE_TEST(test_failed_commit_record_cut_at_close),
    CORE_TEST(test_failed_commit_record_found_by_reopen),
    CORE_TEST(test_commit_after_failed_sync_is_refused),
    CORE_TEST(test_sync_after_failed_sync_is_refused),
  };
  return run_core_tests(tests);
}
