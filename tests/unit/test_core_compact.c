/*
** Tests of compaction (tkv_compact, core/compact.c): it frees the space of
** stale records and keeps every live value and id; writes and deletes made
** after it survive a reopen (a deleted key never comes back from an older
** file); it runs by itself past compact_threshold; it is refused while a
** transaction is open; and a crash or an I/O failure at any step of it
** leaves a store that opens with all its data.
**
** Background merging (core/merge.c, core/mergepolicy.c): the policy's
** choices; partial merges that keep deletes and newer writes across
** reopens; a write made while its record is being copied keeps the newer
** value; readers and a writer running throughout merges; a corrupt record
** that does not stop merging; a crash at every step of a partial merge.
*/
#include "engine_check.h"
#include "mergepolicy.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define SMALL_SEG 4096

static tkv_options small_segments(void){
  return store_options(TKV_SYNC_NORMAL, SMALL_SEG, UINT64_MAX);
}

/* Random writes on keys "r000".."r199": puts of 1..300 bytes, deletes of
** present keys, and now and then a transaction of a few of them. */
static void random_ops(tkv_db *db, model *m, uint64_t seed, int n){
  uint8_t val[300];
  char key[16];
  uint64_t s = seed;
  for(int i=0; i<n; i++){
    int in_txn = tu_rand(&s) % 10 == 0;
    int count = in_txn ? 1 + (int)(tu_rand(&s) % 5) : 1;
    if( in_txn ) assert_ok(tkv_begin(db));
    for(int j=0; j<count; j++){
      snprintf(key, sizeof key, "r%03d", (int)(tu_rand(&s) % 200));
      if( tu_rand(&s) % 4 == 0 && model_get(m, key, strlen(key)) ){
        del_str(db, m, key);
      }else{
        size_t vlen = 1 + (size_t)(tu_rand(&s) % sizeof val);
        fill_value(val, vlen, tu_rand(&s));
        assert_ok(tkv_put(db, key, strlen(key), val, vlen));
        model_put(m, key, strlen(key), val, vlen);
      }
    }
    if( in_txn ) assert_ok(tkv_commit(db));
  }
}

/* Every segment has its hint and no temporary file is left. */
static void expect_clean_dir(const char *dir){
  char **segs;
  int n;
  assert_int_equal(tu_count_files(dir, ".tmp"), 0);
  segs = tu_list_files(dir, ".seg", &n);
  for(int i=0; i<n; i++){
    char hint[64];
    snprintf(hint, sizeof hint, "%.10s.hint", segs[i]);
    if( !tu_exists(tu_path(dir, hint)) ) fail_msg("%s has no hint", segs[i]);
  }
  tu_free_names(segs);
}

/* Compaction frees the bytes of overwritten and deleted records; every
** live value stays exact; the result reopens. */
static void test_compact_reclaims_space(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  tkv_stats st0, st1;
  uint64_t reclaimed = 0;
  for(int round=0; round<5; round++) random_ops(db, &m, 11 + round, 300);
  st0 = stats_of(db);
  assert_true(st0.stale_bytes > 0);
  assert_true(st0.files > 10);

  assert_ok(tkv_compact(db, &reclaimed));
  st1 = stats_of(db);
  assert_true(reclaimed > 0);
  /* Freed: the stale records' space, give or take the space reserved
  ** ahead of the active segment. */
  assert_true(reclaimed <= st0.disk_bytes - st1.disk_bytes);
  assert_true(reclaimed + SMALL_SEG >= st0.disk_bytes - st1.disk_bytes);
  assert_int_equal(st1.last_reclaimed, reclaimed);
  assert_int_equal(st1.compactions, st0.compactions + 1);
  assert_int_equal(st1.stale_bytes, 0);
  assert_int_equal(st1.live_bytes, st0.live_bytes);
  assert_int_equal(st1.keys, m.n);
  assert_true(st1.files < st0.files);
  assert_true(st1.disk_bytes < st0.disk_bytes);
  assert_int_equal(st1.files, tu_count_files(f->dir, ".seg"));
  assert_store_is(db, &m);
  expect_clean_dir(f->dir);

  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* The classic bug: after a compaction, deletes and overwrites land in
** newer segments; a reopen must replay them after the compaction's output,
** so deleted keys stay deleted and overwritten keys keep the newest
** value.  With one output file and with several. */
static void test_writes_after_compaction_survive_reopen(void **state){
  fixture *f = *state;
  for(int variant=0; variant<2; variant++){
    tkv_options o = variant ? small_segments()
                            : store_options(TKV_SYNC_NORMAL, 0, UINT64_MAX);
    tkv_db *db;
    model m = {0};
    char key[16];
    tu_rmrf(f->dir);
    db = open_with(f->dir, &o);
    random_ops(db, &m, 100 + (uint64_t)variant, 600);
    assert_ok(tkv_compact(db, NULL));
    /* Delete keys that are in the output, overwrite others. */
    for(int i=0; i<200; i++){
      snprintf(key, sizeof key, "r%03d", i);
      if( !model_get(&m, key, strlen(key)) ) continue;
      if( i%3==0 ) del_str(db, &m, key);
      else if( i%3==1 ) put_str(db, &m, key, "newest after compaction");
    }
    put_str(db, &m, "brand-new", "x");
    assert_store_is(db, &m);
    reopen_with(&db, f->dir, &o);
    assert_store_is(db, &m);
    reopen_with(&db, f->dir, &o);
    assert_store_is(db, &m);
    close_ok(db);
    model_clear(&m);
  }
}

/* Reads of segment files an io hook sees, counted. */
static int count_seg_reads(int op, const char *path, void *ctx){
  size_t n = strlen(path);
  if( op==TKV_IO_READ && n>4 && strcmp(path + n - 4, ".seg")==0 ){
    (*(long *)ctx)++;
  }
  return 0;
}

/* Opening a merged store checks each output's hint against the records'
** headers and keys through the segment's map: a handful of file reads,
** not one per record.  The newest segment here is an output (small
** segments: the compaction writes three), which was the one read a record
** at a time (1,471 reads here; a merged store of 1M keys opened in 0.85 s
** instead of 0.3 s). */
static void test_open_reads_merge_outputs_through_the_map(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 48 << 10, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  long reads = 0;
  assert_ok(tkv_begin(db));
  for(int i=0; i<5000; i++){
    char key[16], val[32];
    snprintf(key, sizeof key, "k%05d", (i*7919)%5000);
    snprintf(val, sizeof val, "value %d", i);
    put_str(db, &m, key, val);
  }
  assert_ok(tkv_commit(db));
  assert_ok(tkv_compact(db, NULL));
  close_ok(db);
  tkv_test_set_io_hook(count_seg_reads, &reads);
  db = open_with(f->dir, &o);
  tkv_test_set_io_hook(NULL, NULL);
  assert_true(reads<50);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* Compactions back to back, with and without writes between, and with
** reopens between some of them. */
static void test_repeated_compactions(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  uint64_t reclaimed;
  random_ops(db, &m, 7, 400);
  assert_ok(tkv_compact(db, NULL));
  assert_ok(tkv_compact(db, &reclaimed));          /* nothing new */
  assert_store_is(db, &m);
  for(int round=0; round<8; round++){
    random_ops(db, &m, 1000 + (uint64_t)round, 150);
    assert_ok(tkv_compact(db, NULL));
    if( round%2 ) assert_ok(tkv_compact(db, NULL));
    random_ops(db, &m, 2000 + (uint64_t)round, 20);
    assert_store_is(db, &m);
    if( round%3==0 ) reopen_with(&db, f->dir, &o);
    assert_store_is(db, &m);
  }
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  assert_ok(tkv_compact(db, NULL));
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* Past compact_threshold stale bytes the background thread merges by
** itself; stats count it, the space stays bounded and the data is intact. */
static void test_automatic_compaction(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, SMALL_SEG, 16384);
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  tkv_stats st;
  int i;
  assert_int_equal(stats_of(db).compact_threshold, 16384);
  for(i=0; i<2000 && stats_of(db).compactions<2; i++){
    random_ops(db, &m, 500 + (uint64_t)i, 10);
    tkv_test_merge_wait(db);
  }
  st = stats_of(db);
  assert_true(st.compactions>=2);
  assert_int_equal(st.last_compact_rc, TKV_OK);
  assert_true(st.merge_bytes_copied > 0);
  assert_true(st.merge_bytes_reclaimed > 0);
  /* The policy's bound: under the threshold, or disk data within twice
  ** the live data plus the active segment and one merge's output. */
  if( st.stale_bytes >= 16384
   && st.stale_bytes > st.live_bytes + 2*SMALL_SEG ){
    fail_msg("stale %llu live %llu", (unsigned long long)st.stale_bytes,
             (unsigned long long)st.live_bytes);
  }
  assert_store_is(db, &m);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  assert_int_equal(stats_of(db).compactions, 0);   /* counted per open */

  /* A threshold of UINT64_MAX never compacts. */
  close_ok(db);
  o.compact_threshold = UINT64_MAX;
  db = open_with(f->dir, &o);
  for(i=0; i<100; i++) random_ops(db, &m, 900 + (uint64_t)i, 10);
  assert_int_equal(stats_of(db).compactions, 0);
  close_ok(db);
  model_clear(&m);
}

/* No compaction while a transaction is open, from its handle or any
** other; afterwards it runs. */
static void test_compaction_refused_in_transaction(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *a = open_with(f->dir, &o), *b;
  model m = {0};
  assert_ok(tkv_open(f->dir, NULL, &b));
  random_ops(a, &m, 3, 200);
  assert_ok(tkv_begin(a));
  put_str(a, &m, "pending", "x");
  assert_tkv(TKV_BUSY, tkv_compact(a, NULL));
  assert_true(msg_has(tkv_errmsg(), "transaction"));
  assert_tkv(TKV_BUSY, tkv_compact(b, NULL));
  assert_int_equal(stats_of(a).compactions, 0);
  assert_ok(tkv_commit(a));
  assert_ok(tkv_compact(b, NULL));
  assert_store_is(a, &m);
  close_ok(b);
  reopen_with(&a, f->dir, &o);
  assert_store_is(a, &m);
  close_ok(a);
  model_clear(&m);
}

/* Ids survive compaction, and an open cursor goes on where it was. */
static void test_compaction_keeps_ids_and_cursors(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  uint64_t *ids;
  tkv_cursor *cur;
  size_t i;
  random_ops(db, &m, 77, 500);
  ids = calloc(m.n, sizeof *ids);
  assert_non_null(ids);
  for(i=0; i<m.n; i++){
    assert_ok(tkv_lookup(db, m.v[i].key, m.v[i].klen, &ids[i], NULL));
  }
  assert_ok(tkv_cursor_open(db, &cur));
  assert_ok(tkv_cursor_seek(cur, m.v[m.n/2].key, m.v[m.n/2].klen));
  assert_ok(tkv_compact(db, NULL));
  for(i=0; i<m.n; i++){
    uint64_t id;
    assert_ok(tkv_lookup(db, m.v[i].key, m.v[i].klen, &id, NULL));
    assert_int_equal(id, ids[i]);
  }
  /* The cursor reads values from their new place and walks on. */
  for(i=m.n/2; i<m.n; i++){
    void *val;
    size_t vlen;
    const void *k;
    size_t klen;
    assert_true(tkv_cursor_valid(cur));
    tkv_cursor_key(cur, &k, &klen);
    assert_int_equal(klen, m.v[i].klen);
    assert_memory_equal(k, m.v[i].key, klen);
    assert_int_equal(tkv_cursor_id(cur), ids[i]);
    assert_ok(tkv_cursor_value(cur, &val, &vlen));
    assert_int_equal(vlen, m.v[i].vlen);
    assert_memory_equal(val, m.v[i].val, vlen);
    tkv_free(val);
    assert_ok(tkv_cursor_next(cur));
  }
  assert_false(tkv_cursor_valid(cur));
  tkv_cursor_close(cur);
  close_ok(db);
  free(ids);
  model_clear(&m);
}

/* Empty stores, stores whose keys are all deleted, values larger than the
** compaction's write buffer, and a key of the largest size. */
static void test_compaction_edge_cases(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  uint64_t reclaimed = 99;
  size_t big = (3u << 20) + 7;
  uint8_t *val = malloc(big);
  assert_non_null(val);
  assert_ok(tkv_compact(db, &reclaimed));
  assert_int_equal(reclaimed, 0);
  put_str(db, NULL, "a", "1");
  put_str(db, NULL, "b", "2");
  del_str(db, NULL, "a");
  del_str(db, NULL, "b");
  assert_ok(tkv_compact(db, &reclaimed));
  assert_true(reclaimed > 0);
  assert_store_is(db, &m);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);

  fill_value(val, big, 1);
  assert_ok(tkv_put(db, "big", 3, val, big));
  model_put(&m, "big", 3, val, big);
  put_str(db, &m, "small", "s");
  assert_ok(tkv_put(db, "big2", 4, val, big - 1000));
  model_put(&m, "big2", 4, val, big - 1000);
  /* The longest key there is, with a value. */
  assert_ok(tkv_put(db, val, TKV_KEY_MAX, "long key", 8));
  model_put(&m, val, TKV_KEY_MAX, "long key", 8);
  assert_ok(tkv_compact(db, NULL));
  assert_store_is(db, &m);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  free(val);
  model_clear(&m);
}

/* ------------------------------------------------ Crashes and failures. */

/* The store used by the crash tests: several segments, stale records, a
** transaction, and deletes.  Closed; its content is in m. */
static void make_template(const char *dir, model *m){
  tkv_options o = small_segments();
  tkv_db *db = open_with(dir, &o);
  random_ops(db, m, 4242, 70);
  close_ok(db);
}

/* After a compaction that crashed or failed, the store must keep working:
** deletes and overwrites, another compaction, and reopens all agree with
** the model. */
static void check_after_trouble(const char *dir, model *m, const char *what){
  tkv_options o = small_segments();
  tkv_db *db = NULL;
  char why[600];
  int rc = tkv_open(dir, &o, &db);
  if( rc ) fail_msg("%s: tkv_open: %s: %s", what, tkv_strerror(rc),
                    tkv_errmsg());
  if( store_diff(db, m, why, sizeof why) ) fail_msg("%s: %s", what, why);
  random_ops(db, m, 31337, 30);
  rc = tkv_compact(db, NULL);
  if( rc ) fail_msg("%s: compaction after: %s", what, tkv_errmsg());
  random_ops(db, m, 31338, 10);
  reopen_with(&db, dir, &o);
  if( store_diff(db, m, why, sizeof why) ){
    fail_msg("%s: after reopen: %s", what, why);
  }
  close_ok(db);
}

typedef struct snapshots {
  const char *dir;        /* the store */
  const char *root;       /* where to put the images */
  int n;
} snapshots;

/* Before every file-system call that can change what a reopen sees: copy
** the store as it is on disk now.  Calls on temporary files other than
** their rename are skipped: open removes those files. */
static int snapshot_hook(int op, const char *path, void *ctx){
  snapshots *s = ctx;
  size_t n = strlen(path);
  char to[4400];
  if( op==TKV_IO_READ || op==TKV_IO_MMAP ) return 0;
  if( n>4 && !strcmp(path + n - 4, ".tmp") && op!=TKV_IO_RENAME ) return 0;
  snprintf(to, sizeof to, "%s/snap%04d", s->root, s->n++);
  if( tu_copy_dir(s->dir, to) ) abort();
  return 0;
}

/* A crash before any file-system call of a compaction: the image opens
** with every value, and goes on working (no deleted key comes back from
** what the compaction left behind). */
static void test_crash_at_every_step_of_compaction(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  model m = {0};
  snapshots snap;
  tkv_db *db;
  make_template(f->dir, &m);
  db = open_with(f->dir, &o);
  snap.dir = f->dir;
  snap.root = f->root;
  snap.n = 0;
  tkv_test_set_io_hook(snapshot_hook, &snap);
  assert_ok(tkv_compact(db, NULL));
  fault_off();
  close_ok(db);
  if( getenv("TKV_TEST_VERBOSE") ) print_message("%d crash points\n", snap.n);
  assert_true(snap.n > 10);
  for(int i=0; i<=snap.n; i++){
    char from[4400], what[64];
    model copy = {0};
    if( i<snap.n ) snprintf(from, sizeof from, "%s/snap%04d", f->root, i);
    else snprintf(from, sizeof from, "%s", f->dir);
    crash_image(from, f->copy);
    snprintf(what, sizeof what, "crash before call %d of %d", i, snap.n);
    model_copy(&copy, &m);
    check_after_trouble(f->copy, &copy, what);
    model_clear(&copy);
    tu_rmrf(from);
  }
  model_clear(&m);
}

/* The nth rename, unlink, sync, ... of a compaction fails (n = 1, 2, ...
** until none is left to fail): the compaction reports it or finishes, the
** data is intact in this open, and after further writes, a compaction
** and a reopen. */
static void test_io_failure_at_every_step_of_compaction(void **state){
  fixture *f = *state;
  static const int ops[] = {
    TKV_IO_RENAME, TKV_IO_UNLINK, TKV_IO_SYNC, TKV_IO_DIRSYNC,
    TKV_IO_WRITE, TKV_IO_OPEN, TKV_IO_TRUNCATE, TKV_IO_READ,
  };
  tkv_options o = small_segments();
  char tmpl[4400];
  model m = {0};
  snprintf(tmpl, sizeof tmpl, "%s/template", f->root);
  make_template(tmpl, &m);
  for(size_t k=0; k<sizeof ops/sizeof ops[0]; k++){
    for(long nth=1; ; nth++){
      fault_plan plan;
      model copy = {0};
      char what[128], why[600];
      tkv_db *db;
      int rc;
      crash_image(tmpl, f->dir);
      db = open_with(f->dir, &o);
      fault_arm(&plan, ops[k], nth, EIO);
      rc = tkv_compact(db, NULL);
      fault_off();
      if( !plan.fired ){
        assert_ok(rc);
        close_ok(db);
        break;
      }
      snprintf(what, sizeof what, "%s #%ld failed (%.60s)",
               io_op_name(ops[k]), nth, base_name(plan.path));
      if( rc ){
        assert_true(rc==TKV_IO || rc==TKV_BROKEN);
        assert_true(msg_has(tkv_errmsg(), "Input/output error"));
      }
      if( store_diff(db, &m, why, sizeof why) ){
        fail_msg("%s: compaction gave %s, then %s", what, tkv_strerror(rc),
                 why);
      }
      close_ok(db);
      model_copy(&copy, &m);
      check_after_trouble(f->dir, &copy, what);
      model_clear(&copy);
    }
  }
  model_clear(&m);
}

/* ------------------------------------------------- Background merging. */

/* The policy: nothing below the threshold; the deadest segments first;
** tombstones count only in the oldest segment; quarantined segments are
** left alone; the space limit takes less dead ones when needed. */
static void test_merge_policy(void **state){
  mp_seg segs[6];
  mp_store st;
  uint8_t sel[6];
  (void)state;
  memset(segs, 0, sizeof segs);
  for(int i=0; i<6; i++) segs[i].size = 1000;
  segs[0].live = 900;              /* 10% dead */
  segs[1].live = 300;              /* 70% dead */
  segs[2].live = 100;              /* 90% dead */
  segs[3].live = 500;              /* 50% dead */
  segs[4].live = 200; segs[4].tomb = 300;  /* 80% dead, 30% tombstones */
  segs[5].live = 1000;             /* all live */
  st.live = 3000;
  st.total = 6000;
  st.threshold = 3001;             /* stale 3000: below */
  assert_int_equal(mp_pick(segs, 6, &st, sel), 0);
  st.threshold = 1000;
  assert_int_equal(mp_pick(segs, 6, &st, sel), 2);
  assert_int_equal(sel[1] + sel[2], 2);        /* 4 has only 50% to gain */
  /* The oldest segment's tombstones can go. */
  segs[0].live = 200; segs[0].tomb = 300;
  assert_int_equal(mp_pick(segs, 6, &st, sel), 3);
  assert_true(sel[0] && sel[1] && sel[2]);
  /* A quarantined segment is skipped. */
  segs[2].quarantined = 1;
  assert_int_equal(mp_pick(segs, 6, &st, sel), 2);
  assert_false(sel[2]);
  /* No segment dead enough, but disk > 2x live: the emptiest go. */
  for(int i=0; i<6; i++){
    segs[i].live = 450; segs[i].tomb = 0; segs[i].quarantined = 0;
  }
  st.live = 2700;
  st.total = 6000;
  assert_true(mp_pick(segs, 6, &st, sel) >= 1);
  st.total = 5000;
  for(int i=0; i<5; i++) segs[i].size = 833;
  st.live = 2700;
  assert_int_equal(mp_pick(segs, 5, &st, sel), 0);   /* 1.85x: fine */
  /* The active segment is sealed early only when it alone holds the
  ** threshold's worth of stale bytes and is dead enough. */
  memset(segs, 0, sizeof segs);
  segs[0].size = 5000; segs[0].live = 1000;
  st.threshold = 1000;
  assert_true(mp_rotate_active(&segs[0], &st));
  st.threshold = 4001;
  assert_false(mp_rotate_active(&segs[0], &st));
  st.threshold = 1000;
  segs[0].live = 2500;
  assert_false(mp_rotate_active(&segs[0], &st));
}

/* Random work on hot keys over cold keys that never change, with
** deletes, while the background thread merges: after each round, the
** store and a reopen agree with the model (no deleted key comes back from
** an older segment, merge output never outranks a newer write). */
static void test_partial_merges_keep_deletes_across_reopen(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, SMALL_SEG, 4096);
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  char key[32];
  tkv_stats st;
  /* Cold keys, and keys deleted right after they are written, in the
  ** oldest segments. */
  for(int i=0; i<60; i++){
    snprintf(key, sizeof key, "cold%03d", i);
    put_str(db, &m, key, "cold value that stays");
    snprintf(key, sizeof key, "gone%03d", i);
    put_str(db, &m, key, "deleted soon");
  }
  for(int i=0; i<60; i++){
    snprintf(key, sizeof key, "gone%03d", i);
    del_str(db, &m, key);
  }
  for(int round=0; round<12; round++){
    random_ops(db, &m, 7000 + (uint64_t)round, 150);
    tkv_test_merge_wait(db);
    assert_store_is(db, &m);
    reopen_with(&db, f->dir, &o);
    assert_store_is(db, &m);
  }
  st = stats_of(db);
  (void)st;
  close_ok(db);
  db = open_with(f->dir, &o);
  /* Merges ran in this open too, and the files are bounded. */
  for(int round=0; round<6; round++){
    random_ops(db, &m, 9000 + (uint64_t)round, 150);
    tkv_test_merge_wait(db);
  }
  st = stats_of(db);
  assert_true(st.merges > 0);
  assert_int_equal(st.last_compact_rc, TKV_OK);
  assert_true(st.dead_ratio < 0.9);
  assert_true(st.write_amp > 1.0);
  assert_store_is(db, &m);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* Context of the hook that writes while a merge is between its copy and
** its switch. */
typedef struct racer {
  tkv_db *db;            /* a second handle */
  model *m;
  int done;
} racer;

static int write_during_merge_hook(int op, const char *path, void *ctx){
  racer *r = ctx;
  size_t n = strlen(path);
  if( r->done || op!=TKV_IO_RENAME || n<8 || strcmp(path + n - 8, ".seg.tmp") ){
    return 0;
  }
  r->done = 1;
  /* The merge copied every live record already; now change some. */
  put_str(r->db, r->m, "r001", "written during the merge");
  put_str(r->db, r->m, "r002", "written during the merge, too");
  if( model_get(r->m, "r003", 4) ) del_str(r->db, r->m, "r003");
  return 0;
}

/* A key written (or deleted) while its record is being merged keeps the
** newer state, now and after a reopen: the merge repoints an entry only if
** it still points at the record it copied. */
static void test_merge_keeps_write_made_during_merge(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o), *db2 = open_with(f->dir, &o);
  model m = {0};
  racer r;
  for(int round=0; round<3; round++) random_ops(db, &m, 300 + round, 200);
  put_str(db, &m, "r001", "before");
  put_str(db, &m, "r002", "before");
  put_str(db, &m, "r003", "before");
  r.db = db2;
  r.m = &m;
  r.done = 0;
  tkv_test_set_io_hook(write_during_merge_hook, &r);
  assert_ok(tkv_compact(db, NULL));
  fault_off();
  assert_true(r.done);
  expect_str(db, "r001", "written during the merge");
  expect_absent_str(db, "r003");
  assert_store_is(db, &m);
  close_ok(db2);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  assert_ok(tkv_compact(db, NULL));
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* Threads of the concurrency test. */
typedef struct conc_ctx {
  tkv_db *db;
  _Atomic int stop;
  _Atomic long reads, bad;
  char why[200];
} conc_ctx;

#define CONC_KEYS 400

/* Values say which key they belong to: "<key>=<version>". */
static void *reader_main(void *arg){
  conc_ctx *c = arg;
  uint64_t s = (uint64_t)(uintptr_t)&s;
  tkv_cursor *cur = NULL;
  if( tkv_cursor_open(c->db, &cur) ) return NULL;
  while( !atomic_load(&c->stop) ){
    char key[16];
    void *val;
    size_t vlen;
    int rc;
    snprintf(key, sizeof key, "k%04d", (int)(tu_rand(&s) % CONC_KEYS));
    rc = tkv_get(c->db, key, strlen(key), &val, &vlen);
    if( rc==TKV_OK ){
      if( vlen<=strlen(key) || memcmp(val, key, strlen(key))
       || ((char*)val)[strlen(key)]!='=' ){
        snprintf(c->why, sizeof c->why, "get %s gave %.40s", key,
                 (char*)val);
        atomic_fetch_add(&c->bad, 1);
      }
      tkv_free(val);
    }else if( rc!=TKV_NOTFOUND ){
      snprintf(c->why, sizeof c->why, "get %s: %s", key, tkv_errmsg());
      atomic_fetch_add(&c->bad, 1);
    }
    /* A short walk with values. */
    if( tu_rand(&s) % 8 == 0 && tkv_cursor_seek(cur, key, strlen(key))==0 ){
      for(int i=0; i<20 && tkv_cursor_valid(cur); i++){
        const void *k;
        size_t klen;
        tkv_cursor_key(cur, &k, &klen);
        rc = tkv_cursor_value(cur, &val, &vlen);
        if( rc==TKV_OK ){
          if( vlen<=klen || memcmp(val, k, klen) ){
            snprintf(c->why, sizeof c->why, "cursor value mismatch");
            atomic_fetch_add(&c->bad, 1);
          }
          tkv_free(val);
        }else if( rc!=TKV_NOTFOUND ){
          snprintf(c->why, sizeof c->why, "cursor: %s", tkv_errmsg());
          atomic_fetch_add(&c->bad, 1);
        }
        if( tkv_cursor_next(cur) ) break;
      }
    }
    atomic_fetch_add(&c->reads, 1);
  }
  tkv_cursor_close(cur);
  return NULL;
}

/* A writer (transactions of updates and deletes) and two readers run while
** the background thread merges: readers never see a wrong value or an
** error, merges happen, and the final state (and a reopen) match what the
** writer committed. */
static void test_background_merge_with_writer_and_readers(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_OFF, 16384, 16384);
  tkv_db *db = open_with(f->dir, &o);
  tkv_db *rdb[2];
  pthread_t th[2];
  conc_ctx ctx[2];
  model m = {0};
  uint64_t s = 99;
  char key[16], val[64];
  tkv_stats st;
  for(int i=0; i<2; i++){
    memset(&ctx[i], 0, sizeof ctx[i]);
    rdb[i] = open_with(f->dir, &o);
    ctx[i].db = rdb[i];
    assert_int_equal(pthread_create(&th[i], NULL, reader_main, &ctx[i]), 0);
  }
  for(int t=0; t<600; t++){
    assert_ok(tkv_begin(db));
    for(int j=0; j<10; j++){
      int k = (int)(tu_rand(&s) % CONC_KEYS);
      snprintf(key, sizeof key, "k%04d", k);
      if( tu_rand(&s) % 10 == 0 ){
        if( model_get(&m, key, strlen(key)) ) del_str(db, &m, key);
      }else{
        int n = snprintf(val, sizeof val, "%s=%d.%d.%040d", key, t, j, 0);
        assert_ok(tkv_put(db, key, strlen(key), val, (size_t)n));
        model_put(&m, key, strlen(key), val, (size_t)n);
      }
    }
    assert_ok(tkv_commit(db));
  }
  for(int i=0; i<2; i++){
    atomic_store(&ctx[i].stop, 1);
    pthread_join(th[i], NULL);
    if( atomic_load(&ctx[i].bad) ) fail_msg("reader %d: %s", i, ctx[i].why);
    assert_true(atomic_load(&ctx[i].reads) > 0);
    close_ok(rdb[i]);
  }
  tkv_test_merge_wait(db);
  st = stats_of(db);
  assert_true(st.merges >= 1);
  assert_int_equal(st.last_compact_rc, TKV_OK);
  assert_store_is(db, &m);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* One corrupt record in an old segment: it is reported (file, offset),
** its value keeps reading as corrupt (never wrong data), and merging of
** everything else goes on, keeping the disk use bounded. */
static void test_corrupt_record_does_not_stop_merging(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, SMALL_SEG, 8192);
  tkv_options never = small_segments();
  tkv_db *db = open_with(f->dir, &never);
  model m = {0};
  seg_rec recs[64];
  char key[32];
  void *val;
  size_t vlen;
  unsigned seg;
  tkv_stats st;
  int n;
  /* cold000 first, in a segment whose other records die later. */
  for(int i=0; i<40; i++){
    snprintf(key, sizeof key, "cold%03d", i);
    put_str(db, &m, key, "cold value, never overwritten");
    if( i==0 ) random_ops(db, &m, 49, 100);
  }
  for(int round=0; round<3; round++) random_ops(db, &m, 50 + round, 100);
  close_ok(db);
  /* Damage the value of the first record of the oldest segment: cold000. */
  seg = oldest_seg(f->dir);
  n = seg_records(seg_path(f->dir, seg, ".seg"), recs, 64, NULL);
  assert_true(n > 2);
  assert_int_equal(tu_flip_byte(seg_path(f->dir, seg, ".seg"),
                                (long long)recs[0].off + recs[0].size - 2,
                                0x10), 0);
  model_del(&m, "cold000", 7);     /* unreadable from now on */
  db = open_with(f->dir, &o);
  assert_tkv(TKV_CORRUPT, tkv_get(db, "cold000", 7, &val, &vlen));
  for(int round=0; round<20; round++){
    random_ops(db, &m, 600 + (uint64_t)round, 100);
    tkv_test_merge_wait(db);
  }
  st = stats_of(db);
  assert_true(st.merges > 2);
  assert_true(st.merge_damaged >= 1);
  assert_true(msg_has(st.merge_note, seg_path(f->dir, seg, ".seg")));
  snprintf(key, sizeof key, "offset %llu", (unsigned long long)recs[0].off);
  assert_true(msg_has(st.merge_note, key));
  assert_int_equal(st.last_compact_rc, TKV_OK);
  assert_true(st.disk_bytes < 3*(st.live_bytes + 4*SMALL_SEG));
  assert_tkv(TKV_CORRUPT, tkv_get(db, "cold000", 7, &val, &vlen));
  /* Everything else is exact (the model no longer has cold000, so compare
  ** key by key). */
  for(size_t i=0; i<m.n; i++){
    assert_ok(tkv_get(db, m.v[i].key, m.v[i].klen, &val, &vlen));
    assert_int_equal(vlen, m.v[i].vlen);
    assert_memory_equal(val, m.v[i].val, vlen);
    tkv_free(val);
  }
  /* Once the damaged key is deleted, a full compaction frees its file. */
  assert_ok(tkv_delete(db, "cold000", 7));
  assert_ok(tkv_compact(db, NULL));
  assert_false(tu_exists(seg_path(f->dir, seg, ".seg")));
  assert_store_is(db, &m);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* snapshot_hook for the calls of the merge thread only. */
static pthread_t snap_main;
static int merge_snapshot_hook(int op, const char *path, void *ctx){
  if( pthread_equal(pthread_self(), snap_main) ) return 0;
  return snapshot_hook(op, path, ctx);
}

/* A crash before any file-system call of a background (partial) merge,
** while later segments stay: every image opens with every committed value
** and goes on working. */
static void test_crash_at_every_step_of_partial_merge(void **state){
  fixture *f = *state;
  tkv_options never = small_segments();
  tkv_options o = store_options(TKV_SYNC_NORMAL, SMALL_SEG, 4096);
  model m = {0};
  snapshots snap;
  tkv_db *db = open_with(f->dir, &never);
  char key[32];
  for(int i=0; i<40; i++){
    snprintf(key, sizeof key, "cold%03d", i);
    put_str(db, &m, key, "a cold value that stays in old segments");
  }
  random_ops(db, &m, 4243, 250);
  close_ok(db);
  db = open_with(f->dir, &o);
  snap.dir = f->dir;
  snap.root = f->root;
  snap.n = 0;
  /* The commit wakes the merge thread; the hook takes images of the
  ** merge thread's calls only, while this thread waits. */
  snap_main = pthread_self();
  tkv_test_set_io_hook(merge_snapshot_hook, &snap);
  put_str(db, &m, "trigger", "x");
  tkv_test_merge_wait(db);
  fault_off();
  assert_true(stats_of(db).merges >= 1);
  close_ok(db);
  if( getenv("TKV_TEST_VERBOSE") ) print_message("%d crash points\n", snap.n);
  assert_true(snap.n > 8);
  for(int i=0; i<=snap.n; i++){
    char from[4400], what[64];
    model copy = {0};
    if( i<snap.n ) snprintf(from, sizeof from, "%s/snap%04d", f->root, i);
    else snprintf(from, sizeof from, "%s", f->dir);
    crash_image(from, f->copy);
    snprintf(what, sizeof what, "crash before call %d of %d", i, snap.n);
    model_copy(&copy, &m);
    check_after_trouble(f->copy, &copy, what);
    model_clear(&copy);
    tu_rmrf(from);
  }
  model_clear(&m);
}

int main(void){
  const struct CMUnitTest tests[] = {
    CORE_TEST(test_compact_reclaims_space),
    CORE_TEST(test_writes_after_compaction_survive_reopen),
    CORE_TEST(test_open_reads_merge_outputs_through_the_map),
    CORE_TEST(test_repeated_compactions),
    CORE_TEST(test_automatic_compaction),
    CORE_TEST(test_compaction_refused_in_transaction),
    CORE_TEST(test_compaction_keeps_ids_and_cursors),
    CORE_TEST(test_compaction_edge_cases),
    CORE_TEST(test_crash_at_every_step_of_compaction),
    CORE_TEST(test_io_failure_at_every_step_of_compaction),
    CORE_TEST(test_merge_policy),
    CORE_TEST(test_partial_merges_keep_deletes_across_reopen),
    CORE_TEST(test_merge_keeps_write_made_during_merge),
    CORE_TEST(test_background_merge_with_writer_and_readers),
    CORE_TEST(test_corrupt_record_does_not_stop_merging),
    CORE_TEST(test_crash_at_every_step_of_partial_merge),
  };
  return run_core_tests(tests);
}
