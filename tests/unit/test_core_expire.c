/*
** Tests of per-key expiry (core/tinkv.h "Expiry", core/FORMAT.md format 3):
** an expired key is absent from every read path at once; its time is in
** its record, so it survives reopening (from hints and from a scan) and a
** crash image; the expiry step writes tombstones, so that no merge or
** clock change can bring an older value back; transactions keep pending
** expiry times to themselves; and a format 2 store opens and takes
** expiring writes in new, format 3 segments.
**
** The expiry clock is stopped with tkv_test_set_clock: nothing sleeps.
*/
#include "engine_check.h"

#include <dirent.h>
#include <pthread.h>
#include <unistd.h>

#define T0 1800000000000ull      /* some time in 2027, in ms */

static void set_clock(uint64_t ms){ tkv_test_set_clock(ms); }

static int clock_teardown(void **state){
  tkv_test_set_clock(0);
  return fixture_teardown(state);
}

#define EXPIRE_TEST(fn) \
  cmocka_unit_test_setup_teardown(fn, fixture_setup, clock_teardown)

static void put_exp(tkv_db *db, const char *key, const char *val,
                    uint64_t at){
  int rc = tkv_write_expire(db, key, strlen(key), val, strlen(val), 0, at,
                            NULL);
  if( rc ) fail_msg("tkv_write_expire(%s): %s: %s", key, tkv_strerror(rc),
                    tkv_errmsg());
}

static uint64_t expire_of(tkv_db *db, const char *key){
  uint64_t at = 12345;
  assert_ok(tkv_expire_get(db, key, strlen(key), &at));
  return at;
}

/* The keys a cursor walk sees, joined with ",". */
static void walk_keys(tkv_db *db, char *out, size_t n){
  tkv_cursor *c;
  size_t len = 0;
  out[0] = 0;
  assert_ok(tkv_cursor_open(db, &c));
  assert_ok(tkv_cursor_seek(c, NULL, 0));
  while( tkv_cursor_valid(c) ){
    const void *k;
    size_t klen;
    tkv_cursor_key(c, &k, &klen);
    len += (size_t)snprintf(out + len, n - len, "%s%.*s", len ? "," : "",
                            (int)klen, (const char *)k);
    assert_ok(tkv_cursor_next(c));
  }
  tkv_cursor_close(c);
}

/* Once the clock passes a key's time, get, lookup, cursors, ids, count
** and the write flags all treat it as absent, at once. */
static void test_expired_key_absent_everywhere(void **state){
  fixture *f = *state;
  tkv_db *db;
  tkv_cursor *c;
  uint64_t idb;
  char keys[256];
  set_clock(T0);
  db = open_store(f->dir);
  put_str(db, NULL, "a", "1");
  put_exp(db, "b", "2", T0 + 1000);
  put_exp(db, "c", "3", T0 + 2000);
  assert_ok(tkv_lookup(db, "b", 1, &idb, NULL));
  assert_int_equal(tkv_count(db), 3);
  assert_int_equal(expire_of(db, "a"), 0);
  assert_int_equal(expire_of(db, "b"), T0 + 1000);
  walk_keys(db, keys, sizeof keys);
  assert_string_equal(keys, "a,b,c");

  set_clock(T0 + 1000);            /* at its time: still there (Redis) */
  expect_str(db, "b", "2");
  set_clock(T0 + 1001);
  expect_absent_str(db, "b");
  assert_tkv(TKV_NOTFOUND, tkv_lookup(db, "b", 1, NULL, NULL));
  assert_tkv(TKV_NOTFOUND, tkv_expire_get(db, "b", 1, NULL));
  assert_int_equal(tkv_count(db), 2);
  walk_keys(db, keys, sizeof keys);
  assert_string_equal(keys, "a,c");
  assert_ok(tkv_cursor_open(db, &c));
  assert_tkv(TKV_NOTFOUND, tkv_cursor_seek_id(c, idb));
  tkv_cursor_close(c);
  /* Writes: absent for MUSTEXIST, free for NOOVERWRITE. */
  assert_tkv(TKV_NOTFOUND, tkv_write(db, "b", 1, "x", 1, TKV_MUSTEXIST, NULL));
  assert_tkv(TKV_EXISTS, tkv_write(db, "c", 1, "x", 1, TKV_NOOVERWRITE, NULL));
  assert_ok(tkv_write(db, "b", 1, "new", 3, TKV_NOOVERWRITE, NULL));
  expect_str(db, "b", "new");
  assert_int_equal(expire_of(db, "b"), 0);     /* a plain write clears it */
  assert_int_equal(tkv_count(db), 3);

  set_clock(T0 + 5000);
  walk_keys(db, keys, sizeof keys);
  assert_string_equal(keys, "a,b");
  assert_int_equal(tkv_count(db), 2);
  assert_int_equal(stats_of(db).keys, 3);      /* no tombstone yet */
  close_ok(db);
}

/* Set, keep and clear an expiry time without changing the value. */
static void test_expire_set_keep_clear(void **state){
  fixture *f = *state;
  tkv_db *db;
  set_clock(T0);
  db = open_store(f->dir);
  put_str(db, NULL, "k", "value");
  assert_ok(tkv_expire_set(db, "k", 1, T0 + 500));
  expect_str(db, "k", "value");
  assert_int_equal(expire_of(db, "k"), T0 + 500);
  assert_ok(tkv_write_expire(db, "k", 1, "v2", 2, TKV_KEEPEXPIRE, 0, NULL));
  assert_int_equal(expire_of(db, "k"), T0 + 500);
  expect_str(db, "k", "v2");
  assert_ok(tkv_expire_set(db, "k", 1, 0));
  assert_int_equal(expire_of(db, "k"), 0);
  expect_str(db, "k", "v2");
  assert_tkv(TKV_NOTFOUND, tkv_expire_set(db, "none", 4, T0 + 1));
  /* A time in the past: gone at once. */
  assert_ok(tkv_expire_set(db, "k", 1, T0 - 1));
  expect_absent_str(db, "k");
  assert_tkv(TKV_NOTFOUND, tkv_expire_set(db, "k", 1, T0 + 1));
  close_ok(db);
}

/* Remove every hint file of dir (the next open scans the segments). */
static void drop_hints(const char *dir){
  DIR *d = opendir(dir);
  struct dirent *de;
  char path[8192];
  assert_non_null(d);
  while( (de = readdir(d))!=NULL ){
    size_t n = strlen(de->d_name);
    if( n>5 && !strcmp(de->d_name + n - 5, ".hint") ){
      snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
      assert_int_equal(unlink(path), 0);
    }
  }
  closedir(d);
}

static void expect_times(tkv_db *db, int n){
  for(int i=0; i<n; i++){
    char key[16], val[64];
    snprintf(key, sizeof key, "k%03d", i);
    snprintf(val, sizeof val, "value %d with some padding to fill pages", i);
    expect_str(db, key, val);
    assert_int_equal(expire_of(db, key), i%2 ? T0 + 1000 + (uint64_t)i : 0);
  }
}

/* Times survive a reopen from hint files, from a scan of the segments
** and from a crash image of the open store. */
static void test_expiry_survives_reopen_and_crash(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 4096, UINT64_MAX);
  tkv_db *db, *img;
  const int n = 200;
  set_clock(T0);
  db = open_with(f->dir, &o);
  for(int i=0; i<n; i++){
    char key[16], val[64];
    snprintf(key, sizeof key, "k%03d", i);
    snprintf(val, sizeof val, "value %d with some padding to fill pages", i);
    if( i%2 ) put_exp(db, key, val, T0 + 1000 + (uint64_t)i);
    else put_str(db, NULL, key, val);
  }
  assert_true(stats_of(db).files >= 3);
  crash_image(f->dir, f->copy);
  reopen_with(&db, f->dir, &o);            /* sealed segments: hints */
  expect_times(db, n);
  close_ok(db);
  drop_hints(f->dir);
  db = open_with(f->dir, &o);              /* scans */
  expect_times(db, n);
  assert_int_equal(stats_of(db).expires, n/2);
  set_clock(T0 + 1100);                    /* k001..k099 odd expired */
  assert_int_equal(tkv_count(db), n - 50);
  close_ok(db);
  set_clock(T0);
  img = open_with(f->copy, &o);
  expect_times(img, n);
  close_ok(img);
  /* tkv_check reads the times in records and hints; salvage keeps them. */
  {
    tkv_check_report rep;
    tkv_salvage_report srep;
    char dest[4300];
    int rc = tkv_check(f->dir, NULL, NULL, NULL, &rep);
    if( rc ) fail_msg("tkv_check: %s", tkv_errmsg());
    assert_true(rep.hint_entries > 0);
    snprintf(dest, sizeof dest, "%s/salvaged", f->root);
    assert_ok(tkv_salvage(f->dir, dest, NULL, NULL, NULL, &srep));
    img = open_with(dest, &o);
    expect_times(img, n);
    close_ok(img);
  }
}

/* The expiry step writes tombstones: after it, a compaction and a clock
** set back, neither the expired value nor an older one in an older
** segment comes back. */
static void test_expire_step_reclaims_for_good(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 4096, UINT64_MAX);
  tkv_db *db;
  unsigned n = 0;
  char key[16];
  set_clock(T0);
  db = open_with(f->dir, &o);
  for(int i=0; i<100; i++){                /* old values, older segments */
    snprintf(key, sizeof key, "x%03d", i);
    put_str(db, NULL, key, "old value that must never come back");
  }
  for(int i=0; i<100; i++){
    snprintf(key, sizeof key, "x%03d", i);
    put_exp(db, key, "expiring", T0 + 10);
  }
  put_str(db, NULL, "keep", "me");
  set_clock(T0 + 20);
  assert_int_equal(tkv_count(db), 1);
  assert_ok(tkv_expire_step(db, 30, &n));
  assert_int_equal(n, 30);
  assert_int_equal(stats_of(db).keys, 71);
  assert_ok(tkv_expire_step(db, 1000, &n));
  assert_int_equal(n, 70);
  assert_ok(tkv_expire_step(db, 1000, &n));
  assert_int_equal(n, 0);
  assert_int_equal(stats_of(db).keys, 1);
  assert_int_equal(stats_of(db).expires, 0);
  assert_ok(tkv_compact(db, NULL));
  set_clock(T0);                           /* before the expiry time */
  reopen_with(&db, f->dir, &o);
  assert_int_equal(tkv_count(db), 1);
  expect_absent_str(db, "x000");
  expect_absent_str(db, "x099");
  expect_str(db, "keep", "me");
  close_ok(db);
}

/* Without the expiry step, a compaction keeps an expired key's record
** (its tombstone is not written yet), so nothing older resurfaces. */
static void test_compaction_keeps_expired_records(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 4096, UINT64_MAX);
  tkv_db *db;
  set_clock(T0);
  db = open_with(f->dir, &o);
  put_str(db, NULL, "k", "old");
  for(int i=0; i<100; i++){
    char key[16];
    snprintf(key, sizeof key, "pad%03d", i);
    put_str(db, NULL, key, "padding padding padding padding padding");
  }
  put_exp(db, "k", "new", T0 + 10);
  set_clock(T0 + 20);
  assert_ok(tkv_compact(db, NULL));
  expect_absent_str(db, "k");
  reopen_with(&db, f->dir, &o);
  expect_absent_str(db, "k");
  set_clock(T0);
  expect_str(db, "k", "new");      /* its own record, never "old" */
  assert_int_equal(expire_of(db, "k"), T0 + 10);
  close_ok(db);
}

/* A delete of an expired key writes its tombstone and says NOTFOUND. */
static void test_delete_expired(void **state){
  fixture *f = *state;
  tkv_db *db;
  set_clock(T0);
  db = open_store(f->dir);
  put_exp(db, "k", "v", T0 + 1);
  set_clock(T0 + 2);
  assert_int_equal(stats_of(db).keys, 1);
  assert_tkv(TKV_NOTFOUND, tkv_delete(db, "k", 1));
  assert_int_equal(stats_of(db).keys, 0);
  assert_tkv(TKV_NOTFOUND, tkv_delete(db, "k", 1));
  close_ok(db);
}

/* In a transaction, the owner sees its pending times; others see the
** committed ones; a rollback leaves no trace, a commit publishes them. */
static void test_transaction_expiry(void **state){
  fixture *f = *state;
  tkv_db *a, *b;
  set_clock(T0);
  a = open_store(f->dir);
  assert_ok(tkv_open(f->dir, NULL, &b));
  put_exp(a, "k", "v", T0 + 100);
  put_str(a, NULL, "p", "plain");
  assert_ok(tkv_begin(a));
  put_exp(a, "p", "tx", T0 + 50);
  put_exp(a, "n", "new", T0 + 60);
  assert_ok(tkv_write_expire(a, "k", 1, "v2", 2, 0, 0, NULL));
  assert_int_equal(expire_of(a, "p"), T0 + 50);
  assert_int_equal(expire_of(a, "n"), T0 + 60);
  assert_int_equal(expire_of(a, "k"), 0);
  assert_int_equal(expire_of(b, "p"), 0);
  assert_int_equal(expire_of(b, "k"), T0 + 100);
  assert_tkv(TKV_NOTFOUND, tkv_expire_get(b, "n", 1, NULL));
  set_clock(T0 + 55);
  assert_int_equal(tkv_count(a), 2);          /* k, n */
  assert_int_equal(tkv_count(b), 2);          /* k, p */
  expect_absent_str(a, "p");
  assert_ok(tkv_rollback(a));
  assert_int_equal(expire_of(a, "p"), 0);
  assert_tkv(TKV_NOTFOUND, tkv_expire_get(a, "n", 1, NULL));
  assert_int_equal(expire_of(a, "k"), T0 + 100);
  assert_int_equal(stats_of(a).expires, 1);

  assert_ok(tkv_begin(a));
  put_exp(a, "p", "tx", T0 + 500);
  put_exp(a, "n", "new", T0 + 600);
  assert_ok(tkv_savepoint(a, 0));
  put_exp(a, "n", "newer", T0 + 700);
  assert_ok(tkv_rollback_to(a, 0));
  assert_ok(tkv_commit(a));
  assert_int_equal(expire_of(b, "p"), T0 + 500);
  assert_int_equal(expire_of(b, "n"), T0 + 600);
  expect_str(b, "n", "new");
  assert_int_equal(stats_of(a).expires, 3);
  close_ok(b);
  reopen_with(&a, f->dir, NULL);
  assert_int_equal(expire_of(a, "n"), T0 + 600);
  assert_int_equal(expire_of(a, "p"), T0 + 500);
  close_ok(a);
}

/* Set the format version in the header of file `path` to v. */
static void set_header_version(const char *path, uint32_t v){
  uint8_t buf[TKV_FILE_HDR];
  tkv_file_hdr h;
  const char *why;
  FILE *fp = fopen(path, "r+b");
  assert_non_null(fp);
  assert_int_equal(fread(buf, 1, sizeof buf, fp), sizeof buf);
  assert_int_equal(tkv_file_hdr_decode(buf, TKV_MAGIC_SEG, &h, &why), 0);
  h.version = v;
  tkv_file_hdr_encode(&h, buf);
  assert_int_equal(fseek(fp, 0, SEEK_SET), 0);
  assert_int_equal(fwrite(buf, 1, sizeof buf, fp), sizeof buf);
  fclose(fp);
}

static uint32_t header_version(const char *path){
  uint8_t buf[TKV_FILE_HDR];
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  assert_int_equal(fread(buf, 1, sizeof buf, fp), sizeof buf);
  fclose(fp);
  return tkv_get32(buf + 8);
}

/* A format 2 store (records without expiry are the same bytes in both
** formats) opens; expiring writes go to a new, format 3 segment; the old
** segment stays format 2 and both read back after a reopen. */
static void test_format2_store_upgrades(void **state){
  fixture *f = *state;
  tkv_db *db;
  unsigned first;
  set_clock(T0);
  db = open_store(f->dir);
  put_str(db, NULL, "old", "from format 2");
  close_ok(db);
  first = newest_seg(f->dir);
  set_header_version(seg_path(f->dir, first, ".seg"), 2);
  drop_hints(f->dir);
  db = open_store(f->dir);
  expect_str(db, "old", "from format 2");
  put_exp(db, "new", "expiring", T0 + 100);
  close_ok(db);
  assert_int_equal(header_version(seg_path(f->dir, first, ".seg")), 2);
  assert_true(newest_seg(f->dir) > first);
  assert_int_equal(header_version(seg_path(f->dir, newest_seg(f->dir),
                                           ".seg")), TKV_FORMAT_VERSION);
  db = open_store(f->dir);
  expect_str(db, "old", "from format 2");
  assert_int_equal(expire_of(db, "new"), T0 + 100);
  assert_int_equal(TKV_FORMAT_VERSION, 3);
  close_ok(db);
}

/* Record layout: the flag bit and the 8 bytes only when a time is set. */
static void test_record_layout(void **state){
  uint8_t rec[64];
  tkv_rec_hdr h;
  int zero;
  (void)state;
  assert_int_equal(tkv_rec_size(1, 3), TKV_REC_HDR + 4);
  tkv_rec_encode(rec, TKV_REC_PUT, "k", 1, "abc", 3, T0);
  assert_int_equal(tkv_rec_hdr_decode(rec, &h, &zero), 0);
  assert_int_equal(h.vlen, 3 | TKV_VLEN_EXPIRES);
  assert_int_equal(tkv_rec_size(1, h.vlen), TKV_REC_HDR + 4 + 8);
  assert_int_equal(tkv_rec_expire(rec + TKV_REC_HDR + 1, h.vlen), T0);
  assert_int_equal(tkv_rec_crc(rec, rec + TKV_REC_HDR, 1,
                               rec + TKV_REC_HDR + 1, h.vlen), h.crc);
  tkv_rec_encode(rec, TKV_REC_PUT, "k", 1, "abc", 3, 0);
  assert_int_equal(tkv_rec_hdr_decode(rec, &h, &zero), 0);
  assert_int_equal(h.vlen, 3);
}

/*
** The expiry table keeps times in order (a heap beside a hash): under a
** mix of new times, changed times, cleared times and deletes of 3000 keys,
** at each of several clock steps tkv_count leaves out exactly the keys a
** model says expired, tkv_count_stored still counts them, every live
** key's time reads back, and the expiry step removes exactly the expired
** ones and nothing else.
*/
#define ORDER_KEYS 3000
static void test_expiry_order_model(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_OFF, 1u << 20, UINT64_MAX);
  static uint64_t at[ORDER_KEYS];   /* 0: no time; UINT64_MAX: deleted */
  tkv_db *db;
  char key[16];
  uint32_t r = 12345;
  set_clock(T0);
  db = open_with(f->dir, &o);
  for(int i=0; i<ORDER_KEYS; i++){
    snprintf(key, sizeof key, "k%05d", i);
    r = r*1103515245u + 12345u;
    at[i] = (r>>8) % 4 ? T0 + 1 + (r>>12) % 10000 : 0;
    if( at[i] ) put_exp(db, key, "v", at[i]);
    else put_str(db, NULL, key, "v");
  }
  for(int i=0; i<ORDER_KEYS; i+=3){        /* change, clear, delete some */
    snprintf(key, sizeof key, "k%05d", i);
    r = r*1103515245u + 12345u;
    switch( (r>>8) % 4 ){
    case 0: at[i] = T0 + 1 + (r>>12) % 10000;
            assert_ok(tkv_expire_set(db, key, strlen(key), at[i])); break;
    case 1: at[i] = 0;
            assert_ok(tkv_expire_set(db, key, strlen(key), 0)); break;
    case 2: at[i] = UINT64_MAX;
            assert_ok(tkv_delete(db, key, strlen(key))); break;
    default: at[i] = T0 + 1 + (r>>12) % 10000;
             put_exp(db, key, "w", at[i]); break;
    }
  }
  for(uint64_t now=T0; now<=T0+11250; now+=1250){
    uint64_t stored = 0, live = 0, expired = 0;
    unsigned n = 1;
    set_clock(now);
    for(int i=0; i<ORDER_KEYS; i++){
      if( at[i]==UINT64_MAX ) continue;
      stored++;
      if( at[i] && at[i]<now ) expired++;
      else live++;
    }
    assert_int_equal(tkv_count(db), live);
    assert_int_equal(tkv_count_stored(db), stored);
    for(int i=0; i<ORDER_KEYS; i+=7){
      uint64_t t = 1;
      snprintf(key, sizeof key, "k%05d", i);
      int rc = tkv_expire_get(db, key, strlen(key), &t);
      if( at[i]==UINT64_MAX || (at[i] && at[i]<now) ){
        assert_int_equal(rc, TKV_NOTFOUND);
      }else{
        assert_ok(rc);
        assert_int_equal(t, at[i]);
      }
    }
    uint64_t reclaimed = 0;
    while( n ){
      assert_ok(tkv_expire_step(db, 100, &n));
      reclaimed += n;
    }
    assert_int_equal(reclaimed, expired);
    for(int i=0; i<ORDER_KEYS; i++){
      if( at[i] && at[i]!=UINT64_MAX && at[i]<now ) at[i] = UINT64_MAX;
    }
    assert_int_equal(tkv_count_stored(db), live);
    assert_int_equal(tkv_count(db), live);
  }
  assert_int_equal(stats_of(db).expires, 0);
  close_ok(db);
}

/* tkv_expire_step_keys names each key it removed, once, after the
** commit. */
static void collect_key(void *ctx, const void *key, size_t klen){
  char *out = ctx;
  size_t len = strlen(out);
  snprintf(out + len, 256 - len, "%s%.*s", len ? "," : "", (int)klen,
           (const char *)key);
}

static void test_expire_step_keys(void **state){
  fixture *f = *state;
  tkv_db *db;
  char seen[256] = "";
  unsigned n = 0;
  set_clock(T0);
  db = open_store(f->dir);
  put_exp(db, "a", "1", T0 + 5);
  put_exp(db, "b", "2", T0 + 50);
  put_str(db, NULL, "c", "3");
  set_clock(T0 + 10);
  assert_ok(tkv_expire_step_keys(db, 10, collect_key, seen, &n));
  assert_int_equal(n, 1);
  assert_string_equal(seen, "a");
  assert_ok(tkv_expire_step_keys(db, 10, collect_key, seen, &n));
  assert_int_equal(n, 0);
  assert_string_equal(seen, "a");
  close_ok(db);
}

/*
** tkv_clock_pin stops the clock for the calling thread only: a key whose
** time is long past is live for the pinning thread (reads and the flags
** of writes agree), absent for another thread meanwhile, and absent for
** the first one again once it unpins.
*/
static void *count_in_thread(void *arg){
  tkv_db *db = arg;
  return (void *)(uintptr_t)tkv_count(db);
}

static void test_clock_pin(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  pthread_t th;
  void *other;
  put_exp(db, "old", "1", 2000);        /* 1970: long expired */
  assert_int_equal(tkv_count(db), 0);
  tkv_clock_pin(1000);
  assert_int_equal(tkv_clock_ms(), 1000);
  assert_int_equal(tkv_count(db), 1);
  expect_str(db, "old", "1");
  assert_int_equal(tkv_write(db, "old", 3, "2", 1,
                             TKV_MUSTEXIST | TKV_KEEPEXPIRE, NULL), TKV_OK);
  assert_int_equal(expire_of(db, "old"), 2000);
  assert_int_equal(pthread_create(&th, NULL, count_in_thread, db), 0);
  assert_int_equal(pthread_join(th, &other), 0);
  assert_int_equal((uintptr_t)other, 0);
  tkv_clock_pin(0);
  assert_true(tkv_clock_ms() > 1700000000000ull);
  expect_absent_str(db, "old");
  assert_int_equal(tkv_count(db), 0);
  assert_int_equal(tkv_count_stored(db), 1);
  close_ok(db);
}

int main(void){
  const struct CMUnitTest tests[] = {
    EXPIRE_TEST(test_expired_key_absent_everywhere),
    EXPIRE_TEST(test_expire_set_keep_clear),
    EXPIRE_TEST(test_expiry_survives_reopen_and_crash),
    EXPIRE_TEST(test_expire_step_reclaims_for_good),
    EXPIRE_TEST(test_compaction_keeps_expired_records),
    EXPIRE_TEST(test_delete_expired),
    EXPIRE_TEST(test_transaction_expiry),
    EXPIRE_TEST(test_format2_store_upgrades),
    EXPIRE_TEST(test_expiry_order_model),
    EXPIRE_TEST(test_expire_step_keys),
    EXPIRE_TEST(test_clock_pin),
    cmocka_unit_test(test_record_layout),
  };
  return run_core_tests(tests);
}
