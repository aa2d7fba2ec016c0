/*
** Tests of the engine's public API on healthy stores (core/tinkv.h):
** reads and writes, the key and value limits, key ids, cursors, counts,
** option checks, what tkv_open does with directories that are not stores,
** tkv_is_store and tkv_destroy.
*/
#include "engine_check.h"

#include <errno.h>
#include <unistd.h>

/* ------------------------------------------------------------ Reads and
** writes: a value written is read back exactly, until overwritten or
** deleted, in this open and the next. */

static void test_put_get_delete_overwrite(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  uint64_t id1 = 0, id2 = 0;

  expect_absent_str(db, "apple");
  put_str(db, NULL, "apple", "red");
  put_str(db, NULL, "banana", "yellow");
  expect_str(db, "apple", "red");
  expect_str(db, "banana", "yellow");

  /* An overwrite replaces the value; the newest one wins. */
  put_str(db, NULL, "apple", "green");
  put_str(db, NULL, "apple", "golden delicious, quite a bit longer");
  expect_str(db, "apple", "golden delicious, quite a bit longer");

  /* TKV_NOOVERWRITE refuses a present key and leaves it alone. */
  assert_tkv(TKV_EXISTS, tkv_write(db, "banana", 6, "x", 1, TKV_NOOVERWRITE,
                                   &id1));
  expect_str(db, "banana", "yellow");
  assert_ok(tkv_write(db, "cherry", 6, "dark", 4, TKV_NOOVERWRITE, &id2));
  assert_true(id2!=0);
  expect_str(db, "cherry", "dark");

  /* Delete: gone, and a second delete finds nothing. */
  del_str(db, NULL, "banana");
  expect_absent_str(db, "banana");
  assert_tkv(TKV_NOTFOUND, tkv_delete(db, "banana", 6));
  assert_tkv(TKV_NOTFOUND, tkv_delete(db, "never-was", 9));
  assert_int_equal(tkv_count(db), 2);

  /* All of it holds after a reopen. */
  close_ok(db);
  db = open_store(f->dir);
  expect_str(db, "apple", "golden delicious, quite a bit longer");
  expect_str(db, "cherry", "dark");
  expect_absent_str(db, "banana");
  assert_int_equal(tkv_count(db), 2);

  /* A deleted key can come back. */
  put_str(db, NULL, "banana", "green");
  close_ok(db);
  db = open_store(f->dir);
  expect_str(db, "banana", "green");
  close_ok(db);
}

/* tkv_prefetch is only a hint: whatever keys it is given (present, absent,
** empty, a NULL key of length 0, a NULL key with a length, which is not a
** key and is skipped, none at all), reads before and after it answer the
** same, inside a transaction with uncommitted writes too. */
static void test_prefetch_is_only_a_hint(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  char names[300][16];
  const void *keys[300];
  size_t klens[300];
  for(int i=0; i<300; i++){
    snprintf(names[i], sizeof names[i], "key:%06d", i*7);
    if( i%3 ) put_str(db, NULL, names[i], names[i]);
    keys[i] = names[i];
    klens[i] = strlen(names[i]);
  }
  put_str(db, NULL, "", "empty");
  keys[10] = NULL; klens[10] = 0;       /* the empty key */
  keys[11] = NULL; klens[11] = 5;       /* not a key: skipped */
  tkv_prefetch(db, 300, keys, klens);
  tkv_prefetch(db, 0, keys, klens);
  tkv_prefetch(db, 3, NULL, klens);
  tkv_prefetch(NULL, 3, keys, klens);
  for(int i=0; i<300; i++){
    if( i==10 || i==11 ) continue;
    if( i%3 ) expect_str(db, names[i], names[i]);
    else expect_absent_str(db, names[i]);
  }
  expect_str(db, "", "empty");
  assert_ok(tkv_begin(db));
  put_str(db, NULL, names[0], "uncommitted");
  del_str(db, NULL, names[1]);
  tkv_prefetch(db, 300, keys, klens);
  expect_str(db, names[0], "uncommitted");
  expect_absent_str(db, names[1]);
  expect_str(db, names[2], names[2]);
  assert_ok(tkv_rollback(db));
  expect_absent_str(db, names[0]);
  expect_str(db, names[1], names[1]);
  close_ok(db);
}

/* An empty key and an empty value are ordinary; an empty value reads back
** as a non-NULL buffer of length 0. */
static void test_empty_key_and_empty_value(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  model m = {0};
  tkv_cursor *cur;
  const void *k;
  size_t klen;

  assert_ok(tkv_put(db, "", 0, "value of the empty key", 22));
  model_put(&m, "", 0, "value of the empty key", 22);
  assert_ok(tkv_put(db, "e", 1, "", 0));
  model_put(&m, "e", 1, "", 0);
  assert_ok(tkv_put(db, "n", 1, NULL, 0));
  model_put(&m, "n", 1, "", 0);
  expect_val(db, "", 0, "value of the empty key", 22);
  expect_val(db, "e", 1, "", 0);
  assert_store_is(db, &m);

  /* The empty key comes first in a cursor walk. */
  assert_ok(tkv_cursor_open(db, &cur));
  assert_ok(tkv_cursor_seek(cur, NULL, 0));
  assert_true(tkv_cursor_valid(cur));
  tkv_cursor_key(cur, &k, &klen);
  assert_int_equal(klen, 0);
  tkv_cursor_close(cur);

  close_ok(db);
  db = open_store(f->dir);
  assert_store_is(db, &m);
  expect_val(db, "e", 1, "", 0);

  assert_ok(tkv_delete(db, "", 0));
  model_del(&m, "", 0);
  close_ok(db);
  db = open_store(f->dir);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* Keys are bytes: NULs, high bytes and prefixes of each other are all
** distinct keys. */
static void test_binary_keys(void **state){
  fixture *f = *state;
  static const struct { const char *k; size_t n; } keys[] = {
    {"\0", 1}, {"\0\0", 2}, {"\0\x01", 2}, {"a", 1}, {"a\0", 2},
    {"a\0b", 3}, {"ab", 2}, {"\x7f", 1}, {"\x80", 1}, {"\xff", 1},
    {"\xff\xff", 2}, {"\xff\0", 2},
  };
  tkv_db *db = open_store(f->dir);
  model m = {0};
  size_t i;
  for(i=0; i<sizeof keys/sizeof keys[0]; i++){
    char val[32];
    int n = snprintf(val, sizeof val, "value %zu", i);
    assert_ok(tkv_put(db, keys[i].k, keys[i].n, val, (size_t)n));
    model_put(&m, keys[i].k, keys[i].n, val, (size_t)n);
  }
  assert_store_is(db, &m);
  expect_val(db, "a\0", 2, "value 4", 7);
  expect_absent(db, "a\0\0", 3);
  close_ok(db);
  db = open_store(f->dir);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* A key of exactly TKV_KEY_MAX bytes works; one byte more is TKV_TOOBIG
** for every call that takes a key, and writes nothing. */
static void test_key_size_limit(void **state){
  fixture *f = *state;
  size_t n = TKV_KEY_MAX;
  uint8_t *key = malloc(n + 1);
  tkv_db *db = open_store(f->dir);
  tkv_cursor *cur;
  tkv_stats before, after;
  void *val = NULL;
  uint64_t id;

  assert_non_null(key);
  fill_value(key, n + 1, 7);
  assert_ok(tkv_put(db, key, n, "max", 3));
  expect_val(db, key, n, "max", 3);

  before = stats_of(db);
  assert_tkv(TKV_TOOBIG, tkv_put(db, key, n + 1, "over", 4));
  assert_true(msg_has(tkv_errmsg(), "key"));
  assert_tkv(TKV_TOOBIG, tkv_write(db, key, n + 1, "o", 1, 0, &id));
  assert_tkv(TKV_TOOBIG, tkv_get(db, key, n + 1, &val, NULL));
  assert_tkv(TKV_TOOBIG, tkv_lookup(db, key, n + 1, &id, NULL));
  assert_tkv(TKV_TOOBIG, tkv_delete(db, key, n + 1));
  assert_ok(tkv_cursor_open(db, &cur));
  assert_tkv(TKV_TOOBIG, tkv_cursor_seek(cur, key, n + 1));
  tkv_cursor_close(cur);
  after = stats_of(db);
  assert_int_equal(after.live_bytes + after.stale_bytes,
                   before.live_bytes + before.stale_bytes);
  assert_int_equal(tkv_count(db), 1);

  /* A value over TKV_VALUE_MAX is refused before it is read. */
  assert_tkv(TKV_TOOBIG, tkv_put(db, "k", 1, "tiny", (size_t)TKV_VALUE_MAX + 1));
  expect_absent_str(db, "k");

  close_ok(db);
  db = open_store(f->dir);
  expect_val(db, key, n, "max", 3);
  assert_int_equal(tkv_count(db), 1);
  close_ok(db);
  free(key);
}

/* A value of several MiB (larger than the write buffer) reads back
** exactly, before and after reopening, and can be overwritten. */
static void test_large_value(void **state){
  fixture *f = *state;
  size_t n = 8u << 20;
  uint8_t *big = malloc(n);
  tkv_db *db = open_store(f->dir);
  tkv_cursor *cur;
  assert_non_null(big);
  fill_value(big, n, 99);
  put_str(db, NULL, "before", "small");
  assert_ok(tkv_put(db, "big", 3, big, n));
  put_str(db, NULL, "after", "small too");
  expect_val(db, "big", 3, big, n);
  close_ok(db);

  db = open_store(f->dir);
  expect_val(db, "big", 3, big, n);
  expect_str(db, "before", "small");
  expect_str(db, "after", "small too");
  assert_ok(tkv_cursor_open(db, &cur));
  assert_ok(tkv_cursor_seek(cur, "big", 3));
  assert_int_equal(tkv_cursor_value_size(cur), n);
  tkv_cursor_close(cur);

  put_str(db, NULL, "big", "now small");
  close_ok(db);
  db = open_store(f->dir);
  expect_str(db, "big", "now small");
  close_ok(db);
  free(big);
}

/* ------------------------------------------------------------------ Ids:
** a key's id stays while the key exists and the store is open; an id is
** never given to another key (or the same key after a delete) in that
** open. */

static uint64_t id_of(tkv_db *db, const char *key){
  uint64_t id = 0;
  assert_ok(tkv_lookup(db, key, strlen(key), &id, NULL));
  assert_true(id!=0);
  return id;
}

static void test_ids_stable_and_never_reused(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  uint64_t seen[300], ida, idb, idc, id, old_b;
  size_t nseen = 0, vlen = 0;
  tkv_cursor *cur;

  assert_ok(tkv_write(db, "a", 1, "1", 1, 0, &ida));
  assert_ok(tkv_write(db, "b", 1, "22", 2, 0, &idb));
  assert_ok(tkv_write(db, "c", 1, "333", 3, 0, &idc));
  assert_true(ida!=idb && idb!=idc && ida!=idc);
  assert_int_equal(id_of(db, "a"), ida);
  assert_ok(tkv_lookup(db, "c", 1, &id, &vlen));
  assert_int_equal(id, idc);
  assert_int_equal(vlen, 3);

  /* Overwrites keep the id. */
  assert_ok(tkv_write(db, "a", 1, "one", 3, 0, &id));
  assert_int_equal(id, ida);
  put_str(db, NULL, "a", "uno");
  assert_int_equal(id_of(db, "a"), ida);

  /* The cursor reports the same ids, and finds keys by them. */
  assert_ok(tkv_cursor_open(db, &cur));
  assert_ok(tkv_cursor_seek(cur, "b", 1));
  assert_int_equal(tkv_cursor_id(cur), idb);
  tkv_cursor_close(cur);

  /* Delete and insert again: a new id, each time different. */
  seen[nseen++] = ida;
  seen[nseen++] = idb;
  seen[nseen++] = idc;
  old_b = idb;
  for(int i=0; i<200; i++){
    del_str(db, NULL, "b");
    assert_ok(tkv_write(db, "b", 1, "again", 5, 0, &id));
    for(size_t j=0; j<nseen; j++){
      if( seen[j]==id ) fail_msg("id %llu given twice", (unsigned long long)id);
    }
    seen[nseen++] = id;
  }
  assert_ok(tkv_cursor_open(db, &cur));
  assert_tkv(TKV_NOTFOUND, tkv_cursor_seek_id(cur, old_b));
  assert_false(tkv_cursor_valid(cur));
  tkv_cursor_close(cur);

  /* A key inserted by a transaction that rolls back used up its id. */
  assert_ok(tkv_begin(db));
  assert_ok(tkv_write(db, "t", 1, "x", 1, 0, &id));
  assert_ok(tkv_rollback(db));
  assert_ok(tkv_write(db, "t", 1, "y", 1, 0, &ida));
  assert_true(ida!=id);
  for(size_t j=0; j<nseen; j++) assert_true(seen[j]!=ida);

  /* Compaction moves records, not ids. */
  idc = id_of(db, "c");
  assert_ok(tkv_compact(db, NULL));
  assert_int_equal(id_of(db, "c"), idc);
  assert_int_equal(id_of(db, "t"), ida);
  close_ok(db);
}

/* -------------------------------------------------------------- Cursors:
** ascending bytewise order, seek to the first key >= the target, and a
** cursor that keeps going after writes, continuing after its key. */

static void expect_cursor_at(tkv_cursor *cur, const void *key, size_t klen){
  const void *k;
  size_t n;
  if( !tkv_cursor_valid(cur) ){
    fail_msg("cursor at the end, expected %s", key_text(key, klen));
  }
  tkv_cursor_key(cur, &k, &n);
  if( key_cmp(k, n, key, klen) ){
    fail_msg("cursor at %s, expected %s", key_text(k, n), key_text(key, klen));
  }
}

#define expect_cursor_str(cur, s) expect_cursor_at((cur), (s), strlen(s))

static void test_cursor_order_and_seek(void **state){
  fixture *f = *state;
  static const struct { const char *k; size_t n; } keys[] = {
    {"abc", 3}, {"\xff", 1}, {"a", 1}, {"", 0}, {"b", 1}, {"a\0", 2},
    {"\0", 1}, {"ab", 2}, {"\x80", 1}, {"\xff\xff", 2}, {"\0\0", 2},
  };
  /* The same keys in the expected order. */
  static const struct { const char *k; size_t n; } order[] = {
    {"", 0}, {"\0", 1}, {"\0\0", 2}, {"a", 1}, {"a\0", 2}, {"ab", 2},
    {"abc", 3}, {"b", 1}, {"\x80", 1}, {"\xff", 1}, {"\xff\xff", 2},
  };
  tkv_db *db = open_store(f->dir);
  tkv_cursor *cur;
  void *val;
  size_t vlen, i;

  for(i=0; i<sizeof keys/sizeof keys[0]; i++){
    assert_ok(tkv_put(db, keys[i].k, keys[i].n, "v", 1));
  }
  assert_ok(tkv_cursor_open(db, &cur));
  assert_false(tkv_cursor_valid(cur));
  assert_ok(tkv_cursor_seek(cur, NULL, 0));
  for(i=0; i<sizeof order/sizeof order[0]; i++){
    expect_cursor_at(cur, order[i].k, order[i].n);
    assert_ok(tkv_cursor_value(cur, &val, &vlen));
    assert_int_equal(vlen, 1);
    tkv_free(val);
    assert_ok(tkv_cursor_next(cur));
  }
  assert_false(tkv_cursor_valid(cur));
  assert_ok(tkv_cursor_next(cur));           /* stays at the end */
  assert_false(tkv_cursor_valid(cur));
  assert_int_equal(tkv_cursor_id(cur), 0);
  assert_tkv(TKV_MISUSE, tkv_cursor_value(cur, &val, &vlen));

  /* Seek: an exact key, a key between two, past the end. */
  assert_ok(tkv_cursor_seek(cur, "ab", 2));
  expect_cursor_str(cur, "ab");
  assert_ok(tkv_cursor_seek(cur, "a\0\0", 3));
  expect_cursor_str(cur, "ab");
  assert_ok(tkv_cursor_seek(cur, "abd", 3));
  expect_cursor_str(cur, "b");
  assert_ok(tkv_cursor_seek(cur, "\x01", 1));
  expect_cursor_str(cur, "a");
  assert_ok(tkv_cursor_seek(cur, "\xff\xff\0", 3));
  assert_false(tkv_cursor_valid(cur));
  tkv_cursor_close(cur);

  /* The same order after a reopen (rebuilt keydir). */
  close_ok(db);
  db = open_store(f->dir);
  assert_ok(tkv_cursor_open(db, &cur));
  assert_ok(tkv_cursor_seek(cur, NULL, 0));
  for(i=0; i<sizeof order/sizeof order[0]; i++){
    expect_cursor_at(cur, order[i].k, order[i].n);
    assert_ok(tkv_cursor_next(cur));
  }
  assert_false(tkv_cursor_valid(cur));
  tkv_cursor_close(cur);
  close_ok(db);
}

static void test_cursor_survives_writes(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir), *db2;
  tkv_cursor *cur;
  void *val;
  size_t vlen;
  char key[16];
  for(int i=1; i<=9; i++){
    snprintf(key, sizeof key, "k%d", i);
    put_str(db, NULL, key, "old");
  }
  assert_ok(tkv_open(f->dir, NULL, &db2));

  assert_ok(tkv_cursor_open(db, &cur));
  assert_ok(tkv_cursor_seek(cur, "k3", 2));
  expect_cursor_str(cur, "k3");

  /* Writes before and after the cursor, and the cursor's own key goes. */
  put_str(db, NULL, "k0", "before the cursor");
  put_str(db, NULL, "k35", "new, after the cursor");
  del_str(db, NULL, "k4");
  put_str(db, NULL, "k5", "new value");
  del_str(db, NULL, "k3");
  assert_tkv(TKV_NOTFOUND, tkv_cursor_value(cur, &val, &vlen));
  assert_ok(tkv_cursor_next(cur));
  expect_cursor_str(cur, "k35");
  assert_ok(tkv_cursor_next(cur));
  expect_cursor_str(cur, "k5");
  assert_ok(tkv_cursor_value(cur, &val, &vlen));
  assert_int_equal(vlen, 9);
  assert_memory_equal(val, "new value", 9);
  tkv_free(val);

  /* Another handle's writes too. */
  put_str(db2, NULL, "k55", "from the other handle");
  del_str(db2, NULL, "k6");
  assert_ok(tkv_cursor_next(cur));
  expect_cursor_str(cur, "k55");
  assert_ok(tkv_cursor_next(cur));
  expect_cursor_str(cur, "k7");

  /* Overwrites of keys not yet reached: the walk still sees each once. */
  put_str(db, NULL, "k8", "newer");
  put_str(db, NULL, "k9", "newer");
  assert_ok(tkv_cursor_next(cur));
  expect_cursor_str(cur, "k8");
  assert_ok(tkv_cursor_next(cur));
  expect_cursor_str(cur, "k9");
  assert_ok(tkv_cursor_next(cur));
  assert_false(tkv_cursor_valid(cur));
  tkv_cursor_close(cur);
  close_ok(db2);
  close_ok(db);
}

static void test_cursor_seek_id(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  tkv_cursor *cur;
  uint64_t idb, idc;
  put_str(db, NULL, "a", "1");
  assert_ok(tkv_write(db, "b", 1, "22", 2, 0, &idb));
  assert_ok(tkv_write(db, "c", 1, "333", 3, 0, &idc));
  assert_ok(tkv_cursor_open(db, &cur));
  assert_ok(tkv_cursor_seek_id(cur, idb));
  expect_cursor_str(cur, "b");
  assert_int_equal(tkv_cursor_id(cur), idb);
  assert_int_equal(tkv_cursor_value_size(cur), 2);
  assert_ok(tkv_cursor_next(cur));
  expect_cursor_str(cur, "c");
  assert_int_equal(tkv_cursor_id(cur), idc);

  del_str(db, NULL, "b");
  assert_tkv(TKV_NOTFOUND, tkv_cursor_seek_id(cur, idb));
  assert_false(tkv_cursor_valid(cur));
  assert_tkv(TKV_NOTFOUND, tkv_cursor_seek_id(cur, 0));
  assert_tkv(TKV_NOTFOUND, tkv_cursor_seek_id(cur, idc + 1000000));
  assert_ok(tkv_cursor_seek_id(cur, idc));
  expect_cursor_str(cur, "c");
  tkv_cursor_close(cur);
  close_ok(db);
}

/* tkv_count follows inserts, overwrites and deletes, and reopening. */
static void test_count(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  char key[16];
  assert_int_equal(tkv_count(db), 0);
  for(int i=0; i<100; i++){
    snprintf(key, sizeof key, "key%03d", i);
    put_str(db, NULL, key, "v");
  }
  assert_int_equal(tkv_count(db), 100);
  for(int i=0; i<100; i+=2){
    snprintf(key, sizeof key, "key%03d", i);
    put_str(db, NULL, key, "overwritten");
  }
  assert_int_equal(tkv_count(db), 100);
  for(int i=0; i<100; i+=3){
    snprintf(key, sizeof key, "key%03d", i);
    del_str(db, NULL, key);
  }
  assert_int_equal(tkv_count(db), 66);
  assert_int_equal(stats_of(db).keys, 66);
  close_ok(db);
  db = open_store(f->dir);
  assert_int_equal(tkv_count(db), 66);
  close_ok(db);
}

/* Two opens of one directory in a process share one engine: each sees the
** other's committed writes, and the second open's options are ignored. */
static void test_two_handles_share_engine(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 8192, 100000);
  tkv_db *a = open_with(f->dir, &o), *b;
  assert_ok(tkv_open(f->dir, NULL, &b));
  put_str(a, NULL, "from-a", "1");
  put_str(b, NULL, "from-b", "2");
  expect_str(b, "from-a", "1");
  expect_str(a, "from-b", "2");
  assert_int_equal(stats_of(b).compact_threshold, 100000);
  close_ok(a);
  expect_str(b, "from-a", "1");
  put_str(b, NULL, "later", "3");
  close_ok(b);
  a = open_store(f->dir);
  expect_str(a, "later", "3");
  close_ok(a);
}

/* ------------------------------------------------------------- Options:
** bad values are TKV_INVALID with a message, before anything is made. */

static void test_options_validation(void **state){
  fixture *f = *state;
  tkv_options o;
  tkv_db *db = NULL;

  o = store_options(TKV_SYNC_FULL, 0, 0);
  o.sync = (tkv_sync_mode)7;
  assert_tkv(TKV_INVALID, tkv_open(f->dir, &o, &db));
  assert_null(db);
  assert_true(msg_has(tkv_errmsg(), "sync"));
  assert_false(tu_exists(f->dir));

  o = store_options(TKV_SYNC_FULL, TKV_FILE_SIZE_MIN - 1, 0);
  assert_tkv(TKV_INVALID, tkv_open(f->dir, &o, &db));
  assert_true(msg_has(tkv_errmsg(), "max_file_size"));
  assert_false(tu_exists(f->dir));

  o = store_options(TKV_SYNC_FULL, TKV_FILE_SIZE_MAX + 1, 0);
  assert_tkv(TKV_INVALID, tkv_open(f->dir, &o, &db));
  assert_false(tu_exists(f->dir));

  assert_tkv(TKV_INVALID, tkv_open("", &o, &db));
  assert_tkv(TKV_INVALID, tkv_open(NULL, &o, &db));
  assert_tkv(TKV_MISUSE, tkv_open(f->dir, &o, NULL));

  /* The limits themselves are accepted; 0 means the default. */
  o = store_options(TKV_SYNC_OFF, TKV_FILE_SIZE_MIN, 0);
  db = open_with(f->dir, &o);
  assert_int_equal(stats_of(db).compact_threshold,
                   TKV_DEFAULT_COMPACT_THRESHOLD);
  put_str(db, NULL, "k", "v");
  close_ok(db);
  o = store_options(TKV_SYNC_NORMAL, TKV_FILE_SIZE_MAX, 12345);
  db = open_with(f->dir, &o);
  assert_int_equal(stats_of(db).compact_threshold, 12345);
  expect_str(db, "k", "v");
  close_ok(db);
}

/* ----------------------------------------------------------- Directories:
** only a store, or (with create) a missing or empty directory, is opened;
** anything else fails with nothing written. */

static void test_open_missing_dir(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 0, 0);
  tkv_db *db = NULL;
  o.create = 0;
  assert_tkv(TKV_NOTSTORE, tkv_open(f->dir, &o, &db));
  assert_null(db);
  assert_true(msg_has(tkv_errmsg(), f->dir));
  assert_false(tu_exists(f->dir));
  assert_tkv(TKV_NOTSTORE, tkv_open(f->dir, NULL, &db));
  assert_false(tu_exists(f->dir));

  /* With create it is made; afterwards it opens without create. */
  db = open_store(f->dir);
  close_ok(db);
  assert_ok(tkv_open(f->dir, &o, &db));
  close_ok(db);

  /* An empty directory is not a store either, until created. */
  assert_int_equal(mkdir(f->copy, 0755), 0);
  assert_tkv(TKV_NOTSTORE, tkv_open(f->copy, &o, &db));
  assert_int_equal(tu_count_files(f->copy, ""), 0);
  db = open_store(f->copy);
  close_ok(db);
}

static void test_open_foreign_dir(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 0, 0);
  tkv_db *db = NULL;
  assert_int_equal(mkdir(f->dir, 0755), 0);
  assert_int_equal(tu_write_file(tu_path(f->dir, "notes.txt"), "mine", 4), 0);

  o.create = 0;
  assert_tkv(TKV_NOTSTORE, tkv_open(f->dir, &o, &db));
  assert_null(db);
  o.create = 1;
  assert_tkv(TKV_NOTSTORE, tkv_open(f->dir, &o, &db));
  assert_null(db);
  assert_true(msg_has(tkv_errmsg(), "not empty"));
  /* Nothing was added to the directory. */
  assert_int_equal(tu_count_files(f->dir, ""), 1);
  assert_int_equal(tu_file_size(tu_path(f->dir, "notes.txt")), 4);
  assert_false(tkv_is_store(f->dir));
}

/* A process killed while it created a store leaves LOCK (and perhaps
** TINKV.tmp) without TINKV: not a store, but one can be created there. */
static void test_create_after_killed_creation(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 0, UINT64_MAX);
  tkv_db *db = NULL;
  assert_int_equal(mkdir(f->dir, 0755), 0);
  assert_int_equal(tu_write_file(tu_path(f->dir, "LOCK"), "123\n", 4), 0);
  assert_int_equal(tu_write_file(tu_path(f->dir, "TINKV.tmp"), "TKV", 3), 0);
  o.create = 0;
  assert_tkv(TKV_NOTSTORE, tkv_open(f->dir, &o, &db));
  assert_false(tkv_is_store(f->dir));
  o.create = 1;
  db = open_with(f->dir, &o);
  put_str(db, NULL, "k", "v");
  close_ok(db);
  o.create = 0;
  db = open_with(f->dir, &o);
  expect_str(db, "k", "v");
  close_ok(db);
}

static void test_open_path_is_file(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 0, 0);
  tkv_db *db = NULL;
  assert_int_equal(tu_write_file(f->dir, "a file", 6), 0);
  assert_tkv(TKV_INVALID, tkv_open(f->dir, &o, &db));
  assert_null(db);
  assert_true(msg_has(tkv_errmsg(), f->dir));
  o.create = 0;
  assert_tkv(TKV_INVALID, tkv_open(f->dir, &o, &db));
  assert_int_equal(tu_file_size(f->dir), 6);
}

static void test_open_missing_parent(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 0, 0);
  tkv_db *db = NULL;
  char parent[4300], path[4400];
  int rc;
  snprintf(parent, sizeof parent, "%s/no-such-parent", f->root);
  snprintf(path, sizeof path, "%s/db", parent);
  rc = tkv_open(path, &o, &db);
  assert_true(rc!=TKV_OK);
  assert_null(db);
  assert_true(msg_has(tkv_errmsg(), "no-such-parent"));
  assert_false(tu_exists(parent));
}

/* Permission checks do not apply to root, so this test needs another
** user. */
static void test_open_no_permission(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 0, 0);
  tkv_db *db = NULL;
  char locked[4300], inside[4400];
  int rc;
  if( geteuid()==0 ) skip();
  /* An existing store in a directory we may not write. */
  db = open_store(f->dir);
  put_str(db, NULL, "k", "v");
  close_ok(db);
  assert_int_equal(chmod(f->dir, 0500), 0);
  rc = tkv_open(f->dir, &o, &db);
  chmod(f->dir, 0755);
  assert_true(rc!=TKV_OK);
  assert_null(db);
  assert_true(msg_has(tkv_errmsg(), "db"));

  /* A new store under a parent we may not write. */
  snprintf(locked, sizeof locked, "%s/locked", f->root);
  snprintf(inside, sizeof inside, "%s/db", locked);
  assert_int_equal(mkdir(locked, 0500), 0);
  rc = tkv_open(inside, &o, &db);
  chmod(locked, 0755);
  assert_true(rc!=TKV_OK);
  assert_null(db);
  assert_false(tu_exists(inside));
}

static void test_is_store(void **state){
  fixture *f = *state;
  tkv_db *db;
  assert_false(tkv_is_store(NULL));
  assert_false(tkv_is_store(f->dir));             /* missing */
  assert_int_equal(mkdir(f->dir, 0755), 0);
  assert_false(tkv_is_store(f->dir));             /* empty */
  assert_int_equal(tu_write_file(tu_path(f->root, "file"), "x", 1), 0);
  assert_false(tkv_is_store(tu_path(f->root, "file")));
  db = open_store(f->dir);
  assert_true(tkv_is_store(f->dir));              /* open */
  close_ok(db);
  assert_true(tkv_is_store(f->dir));              /* closed */
  assert_int_equal(tu_write_file(tu_path(f->dir, "TINKV"), "junk", 4), 0);
  assert_false(tkv_is_store(f->dir));             /* bad identity */
}

/* The recorded key/value encoding: none in a new store, kept across a
** reopen once set, changed only by tkv_set_encoding, and an unknown value
** refused without touching the identity file. */
static void test_encoding_record(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  int enc = -1;
  assert_ok(tkv_encoding(db, &enc));
  assert_int_equal(enc, TKV_ENCODING_UNKNOWN);
  put_str(db, NULL, "k", "v");
  assert_ok(tkv_set_encoding(db, TKV_ENCODING_RAW));
  assert_ok(tkv_encoding(db, &enc));
  assert_int_equal(enc, TKV_ENCODING_RAW);
  assert_tkv(TKV_MISUSE, tkv_set_encoding(db, 3));
  assert_tkv(TKV_MISUSE, tkv_set_encoding(db, -1));
  close_ok(db);
  assert_true(tkv_is_store(f->dir));
  db = open_store(f->dir);
  assert_ok(tkv_encoding(db, &enc));
  assert_int_equal(enc, TKV_ENCODING_RAW);
  expect_str(db, "k", "v");
  assert_ok(tkv_set_encoding(db, TKV_ENCODING_SQL));
  close_ok(db);
  db = open_store(f->dir);
  assert_ok(tkv_encoding(db, &enc));
  assert_int_equal(enc, TKV_ENCODING_SQL);
  close_ok(db);
}

/* Draw n random keys through cursor cur with seeds in arithmetic steps of
** splitmix64's own increment (the steps a caller's counter makes, which
** must not make successive draws alike); count each of
** the keys[] (one byte each: its index) in hits[]; return the draws that
** found no key of keys[]. */
static int draw_random(tkv_cursor *cur, int n, int *hits, int nkeys){
  int i, other = 0;
  memset(hits, 0, sizeof(int)*(size_t)nkeys);
  for(i=1; i<=n; i++){
    const void *k;
    size_t klen;
    assert_ok(tkv_cursor_seek_random(cur, (uint64_t)i*0x9e3779b97f4a7c15ull));
    assert_true(tkv_cursor_valid(cur));
    tkv_cursor_key(cur, &k, &klen);
    if( klen>=1 && ((const unsigned char*)k)[0]<nkeys ){
      hits[((const unsigned char*)k)[0]]++;
    }else{
      other++;
    }
  }
  return other;
}

/* tkv_cursor_seek_random picks every key alike, however the keys are
** spread over the key space (a seek to random bytes would pick the key
** after the widest gap almost always), skips deleted keys, and inside a
** transaction sees its own writes and deletes.  Counts of 8000 draws over
** 8 keys are checked at +-25%: about 9 standard deviations. */
static void test_random_key_uniform(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  tkv_cursor *cur;
  int hits[8], i;
  char big[3000];
  memset(big, 'b', sizeof big);
  /* Keys 0..5 are single bytes bunched at the bottom of the key space, key
  ** 6 is a long one (a big keydir entry), key 7 sits alone at the top. */
  for(i=0; i<6; i++){
    char k = (char)i;
    assert_ok(tkv_put(db, &k, 1, "v", 1));
  }
  big[0] = 6;
  assert_ok(tkv_put(db, big, sizeof big, "v", 1));
  assert_ok(tkv_put(db, "\x07\xff\xff", 3, "v", 1));
  /* Deleted keys leave free places behind. */
  for(i=0; i<200; i++){
    char k[16];
    snprintf(k, sizeof k, "z%03d", i);
    assert_ok(tkv_put(db, k, strlen(k), "v", 1));
    assert_ok(tkv_delete(db, k, strlen(k)));
  }
  assert_ok(tkv_cursor_open(db, &cur));
  assert_int_equal(draw_random(cur, 8000, hits, 8), 0);
  for(i=0; i<8; i++){
    assert_in_range(hits[i], 750, 1250);
  }
  /* In a transaction: key 2 deleted, key 3 rewritten, a new key 8. */
  assert_ok(tkv_begin(db));
  assert_ok(tkv_delete(db, "\x02", 1));
  assert_ok(tkv_put(db, "\x03", 1, "new", 3));
  assert_ok(tkv_put(db, "\x08", 1, "v", 1));
  {
    int h9[9];
    assert_int_equal(draw_random(cur, 8000, h9, 9), 0);
    assert_int_equal(h9[2], 0);
    for(i=0; i<9; i++){
      if( i!=2 ) assert_in_range(h9[i], 750, 1250);
    }
  }
  assert_ok(tkv_rollback(db));
  tkv_cursor_close(cur);
  /* An empty store has no random key. */
  for(i=0; i<8; i++){
    if( i==6 ) assert_ok(tkv_delete(db, big, sizeof big));
    else if( i==7 ) assert_ok(tkv_delete(db, "\x07\xff\xff", 3));
    else { char k = (char)i; assert_ok(tkv_delete(db, &k, 1)); }
  }
  assert_ok(tkv_cursor_open(db, &cur));
  assert_tkv(TKV_NOTFOUND, tkv_cursor_seek_random(cur, 42));
  assert_false(tkv_cursor_valid(cur));
  tkv_cursor_close(cur);
  close_ok(db);
}

/* tkv_destroy removes the files tinkv made and nothing else; the
** directory goes only when it is then empty. */
static void test_destroy(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 4096, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  char key[16], val[200];
  int i;
  memset(val, 'v', sizeof val);
  for(i=0; i<100; i++){
    snprintf(key, sizeof key, "key%03d", i);
    assert_ok(tkv_put(db, key, strlen(key), val, sizeof val));
  }
  assert_true(tu_count_files(f->dir, ".seg")>2);
  assert_true(tu_count_files(f->dir, ".hint")>1);
  assert_int_equal(tu_write_file(tu_path(f->dir, "notes.txt"), "mine", 4), 0);
  assert_int_equal(tu_write_file(tu_path(f->dir, "1.seg"), "mine", 4), 0);

  /* Not while it is open. */
  assert_tkv(TKV_LOCKED, tkv_destroy(f->dir));
  assert_true(tkv_is_store(f->dir));
  close_ok(db);

  assert_ok(tkv_destroy(f->dir));
  assert_true(tu_exists(f->dir));
  assert_false(tkv_is_store(f->dir));
  assert_int_equal(tu_count_files(f->dir, ""), 2);
  assert_true(tu_exists(tu_path(f->dir, "notes.txt")));
  assert_true(tu_exists(tu_path(f->dir, "1.seg")));

  /* Not a store (any more): refused, nothing removed. */
  assert_tkv(TKV_NOTSTORE, tkv_destroy(f->dir));
  assert_int_equal(tu_count_files(f->dir, ""), 2);
  assert_tkv(TKV_NOTSTORE, tkv_destroy(f->copy));

  /* A store alone in its directory: the directory goes too. */
  db = open_store(f->copy);
  put_str(db, NULL, "k", "v");
  close_ok(db);
  assert_ok(tkv_destroy(f->copy));
  assert_false(tu_exists(f->copy));
}

/* Status names and the version string. */
static void test_strerror_and_version(void **state){
  (void)state;
  for(int a=TKV_OK; a<=TKV_BROKEN; a++){
    assert_non_null(tkv_strerror(a));
    for(int b=TKV_OK; b<a; b++){
      assert_string_not_equal(tkv_strerror(a), tkv_strerror(b));
    }
  }
  assert_non_null(tkv_errmsg());
  assert_true(msg_has(tkv_version(), TINKV_VERSION));
}

int main(void){
  const struct CMUnitTest tests[] = {
    CORE_TEST(test_put_get_delete_overwrite),
    CORE_TEST(test_prefetch_is_only_a_hint),
    CORE_TEST(test_empty_key_and_empty_value),
    CORE_TEST(test_binary_keys),
    CORE_TEST(test_key_size_limit),
    CORE_TEST(test_large_value),
    CORE_TEST(test_ids_stable_and_never_reused),
    CORE_TEST(test_cursor_order_and_seek),
    CORE_TEST(test_cursor_survives_writes),
    CORE_TEST(test_cursor_seek_id),
    CORE_TEST(test_count),
    CORE_TEST(test_two_handles_share_engine),
    CORE_TEST(test_options_validation),
    CORE_TEST(test_open_missing_dir),
    CORE_TEST(test_open_foreign_dir),
    CORE_TEST(test_create_after_killed_creation),
    CORE_TEST(test_open_path_is_file),
    CORE_TEST(test_open_missing_parent),
    CORE_TEST(test_open_no_permission),
    CORE_TEST(test_is_store),
    CORE_TEST(test_encoding_record),
    CORE_TEST(test_random_key_uniform),
    CORE_TEST(test_destroy),
    CORE_TEST(test_strerror_and_version),
  };
  return run_core_tests(tests);
}
