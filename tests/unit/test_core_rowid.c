/*
** Tests of the id rule of core/txn.c: a key deleted and written again in
** one transaction is a new row with a new id, so that an id handed out
** before the delete (a rowid SQLite has queued) never names the new row.
** Other handles keep the committed id until commit; rollback restores it.
*/
#include "engine_check.h"

static uint64_t id_of(tkv_db *db, const char *key){
  uint64_t id = 0;
  assert_ok(tkv_lookup(db, key, strlen(key), &id, NULL));
  return id;
}

/* Is id a live key for db (seen through a cursor, as SQLite does)? */
static int id_finds(tkv_db *db, uint64_t id, const char *key){
  tkv_cursor *c;
  const void *k;
  size_t klen;
  int found;
  assert_ok(tkv_cursor_open(db, &c));
  found = tkv_cursor_seek_id(c, id)==TKV_OK;
  if( found ){
    tkv_cursor_key(c, &k, &klen);
    assert_int_equal(klen, strlen(key));
    assert_memory_equal(k, key, klen);
    assert_int_equal(tkv_cursor_id(c), id);
  }
  tkv_cursor_close(c);
  return found;
}

static void test_rewrite_after_delete_new_id(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  tkv_db *other = open_store(f->dir);
  uint64_t id0, id1, id2, id3, idw;
  assert_ok(tkv_put(db, "k", 1, "v0", 2));
  id0 = id_of(db, "k");

  assert_ok(tkv_begin(db));
  assert_ok(tkv_delete(db, "k", 1));
  assert_ok(tkv_write(db, "k", 1, "v1", 2, 0, &idw));
  id1 = id_of(db, "k");
  assert_int_equal(idw, id1);
  assert_int_not_equal(id1, id0);
  assert_false(id_finds(db, id0, "k"));
  assert_true(id_finds(db, id1, "k"));
  /* The other handle still sees the committed row and its id. */
  assert_int_equal(id_of(other, "k"), id0);
  assert_true(id_finds(other, id0, "k"));
  assert_false(id_finds(other, id1, "k"));
  /* Overwriting keeps the new id; delete + write again makes a third. */
  assert_ok(tkv_put(db, "k", 1, "v2", 2));
  assert_int_equal(id_of(db, "k"), id1);
  assert_ok(tkv_savepoint(db, 0));
  assert_ok(tkv_delete(db, "k", 1));
  assert_ok(tkv_put(db, "k", 1, "v3", 2));
  id2 = id_of(db, "k");
  assert_int_not_equal(id2, id1);
  assert_int_not_equal(id2, id0);
  assert_false(id_finds(db, id1, "k"));
  /* Rolling back to the savepoint brings id1 back, then a full rollback
  ** the committed id0. */
  assert_ok(tkv_rollback_to(db, 0));
  assert_int_equal(id_of(db, "k"), id1);
  expect_val(db, "k", 1, "v2", 2);
  assert_ok(tkv_rollback(db));
  assert_int_equal(id_of(db, "k"), id0);
  expect_val(db, "k", 1, "v0", 2);

  /* Committed: everyone sees the new id, the old one is dead. */
  assert_ok(tkv_begin(db));
  assert_ok(tkv_delete(db, "k", 1));
  assert_ok(tkv_put(db, "k", 1, "v4", 2));
  assert_ok(tkv_delete(db, "k", 1));
  assert_ok(tkv_put(db, "k", 1, "v5", 2));
  id3 = id_of(db, "k");
  assert_ok(tkv_commit(db));
  assert_int_equal(id_of(other, "k"), id3);
  assert_int_equal(id_of(db, "k"), id3);
  assert_false(id_finds(other, id0, "k"));
  assert_true(id_finds(other, id3, "k"));
  expect_val(other, "k", 1, "v5", 2);
  assert_int_equal(tkv_count(other), 1);

  /* A key the transaction created, deleted and wrote again: new id too. */
  assert_ok(tkv_begin(db));
  assert_ok(tkv_put(db, "n", 1, "a", 1));
  id0 = id_of(db, "n");
  assert_ok(tkv_delete(db, "n", 1));
  assert_ok(tkv_put(db, "n", 1, "b", 1));
  id1 = id_of(db, "n");
  assert_int_not_equal(id0, id1);
  assert_false(id_finds(db, id0, "n"));
  assert_ok(tkv_commit(db));
  assert_int_equal(id_of(other, "n"), id1);
  assert_int_equal(tkv_count(other), 2);
  close_ok(other);
  close_ok(db);

  /* Reopened: the data is what was committed. */
  db = open_store(f->dir);
  expect_val(db, "k", 1, "v5", 2);
  expect_val(db, "n", 1, "b", 1);
  assert_int_equal(tkv_count(db), 2);
  close_ok(db);
}

int main(void){
  const struct CMUnitTest tests[] = {
    CORE_TEST(test_rewrite_after_delete_new_id),
  };
  return run_core_tests(tests);
}
