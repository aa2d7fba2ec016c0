/*
** Tests of the tinkv virtual table, with the extension loaded into a
** connection: types, keys, rowids, writes and conflict modes,
** transactions, query plans and LIKE/GLOB ranges.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fixture.h"

/* Each test gets a scratch directory and a connection with table kv. */
static int setup(void **state){
  return fx_setup(state, "vtab", "CREATE VIRTUAL TABLE kv USING tinkv('%q/kv')");
}

static int teardown(void **state){
  return fx_teardown(state);
}

/* Values and keys of every type come back with their type. */
static void test_types_roundtrip(void **state){
  Fixture *f = *state;
  sh_exec(f->db, "INSERT INTO kv VALUES"
          "(1, 10), (2.5, 2.5), ('t', 'text'), (x'0001', x'ff00'), (-7, NULL),"
          "(9223372036854775807, -9223372036854775808), (1e300, ''),"
          "(-1e300, x''), ('', 0), (x'', -0.5)");
  sh_assert_query(f->db,
      "-1.0e+300|real|X''|blob\n"
      "-7|integer|NULL|null\n"
      "1|integer|10|integer\n"
      "2.5|real|2.5|real\n"
      "9223372036854775807|integer|-9223372036854775808|integer\n"
      "1.0e+300|real|''|text\n"
      "''|text|0|integer\n"
      "'t'|text|'text'|text\n"
      "X''|blob|-0.5|real\n"
      "X'0001'|blob|X'FF00'|blob",
      "SELECT quote(key), typeof(key), quote(value), typeof(value) FROM kv");
  sh_assert_query(f->db, "10", "SELECT count(*) FROM kv");
}

/* 1 and 1.0 are one key; '1' and x'31' are others. */
static void test_key_equality(void **state){
  Fixture *f = *state;
  sh_exec(f->db, "INSERT INTO kv VALUES(1, 'int'), ('1', 'text'), "
          "(x'31', 'blob')");
  sh_fails(f->db, SQLITE_CONSTRAINT_PRIMARYKEY,
           "UNIQUE constraint failed: kv.key", "INSERT INTO kv VALUES(1.0, 0)");
  sh_assert_query(f->db, "1|integer|int", "SELECT key, typeof(key), value "
                  "FROM kv WHERE key = 1.0");
  sh_assert_query(f->db, "1|text|text", "SELECT key, typeof(key), value "
                  "FROM kv WHERE key = '1'");
  sh_exec(f->db, "REPLACE INTO kv VALUES(1.0, 'real')");
  sh_assert_query(f->db, "1.0|real|real\n1|text|text\n1|blob|blob",
                  "SELECT key, typeof(key), value FROM kv");
  sh_assert_query(f->db, "1.0|real", "SELECT key, typeof(key) FROM kv "
                  "WHERE key IN (1, 2, 3)");
  sh_exec(f->db, "UPDATE kv SET key = 1 WHERE key = 1.0");
  sh_assert_query(f->db, "1|integer|real", "SELECT key, typeof(key), value "
                  "FROM kv WHERE key = 1");
  sh_exec(f->db, "INSERT INTO kv VALUES(2.0, 'two')");
  sh_fails(f->db, SQLITE_CONSTRAINT, "UNIQUE", "UPDATE kv SET key = 2 "
           "WHERE key = 1");
  sh_assert_query(f->db, "2", "SELECT count(*) FROM kv WHERE key >= 1 "
                  "AND key <= 2");
  sh_assert_query(f->db, "1\n2.0", "SELECT key FROM kv WHERE key >= 1 "
                  "AND key <= 2.0");
  sh_assert_query(f->db, "2.0", "SELECT key FROM kv WHERE key > 1 "
                  "AND key < 3");
  sh_assert_query(f->db, "", "SELECT key FROM kv WHERE key > 1 AND key < 2");
  sh_assert_query(f->db, "1", "SELECT key FROM kv WHERE key >= 1 "
                  "AND key < 2.0");
}

/* The rowid is the engine id: stable, a point lookup, never settable. */
static void test_rowid(void **state){
  Fixture *f = *state;
  sqlite3_int64 iId;
  char zId[32];
  sh_exec(f->db, "INSERT INTO kv VALUES('a', 1)");
  iId = sqlite3_last_insert_rowid(f->db);
  assert_true(iId>0);
  snprintf(zId, sizeof zId, "%lld", iId);
  sh_exec(f->db, "INSERT INTO kv VALUES('b', 2), ('c', 3)");
  sh_exec(f->db, "UPDATE kv SET value = 100 WHERE key = 'a'");
  sh_assert_query(f->db, zId, "SELECT rowid FROM kv WHERE key = 'a'");
  sh_assert_query(f->db, "a|100", "SELECT key, value FROM kv WHERE rowid = %lld",
                  iId);
  sh_assert_query(f->db, "a", "SELECT key FROM kv WHERE rowid = '%lld'", iId);
  sh_assert_query(f->db, "", "SELECT key FROM kv WHERE rowid = 0");
  sh_assert_query(f->db, "", "SELECT key FROM kv WHERE rowid = 1.5");
  assert_true(strstr(sh_query(f->db, "EXPLAIN QUERY PLAN SELECT * FROM kv "
                              "WHERE rowid = ?"), "INDEX 2") != 0);
  sh_fails(f->db, SQLITE_MISMATCH, "cannot set the rowid",
           "INSERT INTO kv(rowid, key, value) VALUES(99, 'x', 1)");
  sh_fails(f->db, SQLITE_MISMATCH, "cannot set the rowid",
           "UPDATE kv SET rowid = rowid + 1000 WHERE key = 'b'");
  sh_exec(f->db, "INSERT INTO kv(rowid, key, value) VALUES(NULL, 'd', 4)");
  sh_exec(f->db, "DELETE FROM kv WHERE rowid = %lld", iId);
  sh_assert_query(f->db, "b\nc\nd", "SELECT key FROM kv");
}

/* Each conflict mode behaves as on a native table. */
static void test_conflicts(void **state){
  Fixture *f = *state;
  sh_exec(f->db, "INSERT INTO kv VALUES('a', 1), ('b', 2)");
  sh_fails(f->db, SQLITE_CONSTRAINT_PRIMARYKEY,
           "UNIQUE constraint failed: kv.key", "INSERT INTO kv VALUES('a', 9)");
  sh_fails(f->db, SQLITE_CONSTRAINT_NOTNULL,
           "NOT NULL constraint failed: kv.key",
           "INSERT INTO kv VALUES(NULL, 9)");
  sh_fails(f->db, SQLITE_CONSTRAINT_NOTNULL,
           "NOT NULL constraint failed: kv.key",
           "INSERT OR REPLACE INTO kv(value) VALUES(9)");
  sh_exec(f->db, "INSERT OR IGNORE INTO kv VALUES('a', 9), ('c', 3), "
          "(NULL, 4)");
  sh_assert_query(f->db, "a|1\nb|2\nc|3", "SELECT * FROM kv");
  /* ABORT undoes the whole statement, FAIL keeps the rows before. */
  sh_fails(f->db, SQLITE_CONSTRAINT, "UNIQUE",
           "INSERT INTO kv VALUES('d', 4), ('a', 0), ('e', 5)");
  sh_fails(f->db, SQLITE_CONSTRAINT, "UNIQUE",
           "INSERT OR FAIL INTO kv VALUES('f', 6), ('a', 0), ('g', 7)");
  sh_assert_query(f->db, "a|1\nb|2\nc|3\nf|6", "SELECT * FROM kv");
  sh_exec(f->db, "INSERT OR REPLACE INTO kv VALUES('a', 'new'), ('h', 8)");
  sh_exec(f->db, "REPLACE INTO kv VALUES('b', 'newer')");
  sh_assert_query(f->db, "a|new\nb|newer\nc|3\nf|6\nh|8", "SELECT * FROM kv");
  /* ROLLBACK ends the transaction. */
  sh_exec(f->db, "BEGIN; INSERT INTO kv VALUES('x', 0)");
  sh_fails(f->db, SQLITE_CONSTRAINT, "UNIQUE",
           "INSERT OR ROLLBACK INTO kv VALUES('a', 0)");
  assert_true(sqlite3_get_autocommit(f->db));
  sh_assert_query(f->db, "0", "SELECT count(*) FROM kv WHERE key = 'x'");
  /* UPDATE onto an existing key follows the mode too. */
  sh_fails(f->db, SQLITE_CONSTRAINT, "UNIQUE",
           "UPDATE kv SET key = 'a' WHERE key = 'c'");
  sh_exec(f->db, "UPDATE OR IGNORE kv SET key = 'a' WHERE key = 'c'");
  sh_assert_query(f->db, "a|new\nc|3", "SELECT * FROM kv WHERE key IN ('a','c')");
  sh_exec(f->db, "UPDATE OR REPLACE kv SET key = 'a' WHERE key = 'c'");
  sh_assert_query(f->db, "a|3\nb|newer\nf|6\nh|8", "SELECT * FROM kv");
  sh_fails(f->db, SQLITE_CONSTRAINT_NOTNULL, "NOT NULL",
           "UPDATE kv SET key = NULL WHERE key = 'a'");
  sh_exec(f->db, "UPDATE OR IGNORE kv SET key = NULL");
  sh_assert_query(f->db, "4", "SELECT count(*) FROM kv");
}

/* Moving a row to a new key keeps its value, also when only the key is
** set (the value is then copied without being decoded). */
static void test_update_key(void **state){
  Fixture *f = *state;
  sh_exec(f->db, "INSERT INTO kv VALUES('a', x'0102'), ('b', 2.5)");
  sh_exec(f->db, "UPDATE kv SET key = 'z' WHERE key = 'a'");
  sh_exec(f->db, "UPDATE kv SET key = 7, value = 'seven' WHERE key = 'b'");
  sh_assert_query(f->db, "7|integer|'seven'\nz|text|X'0102'",
                  "SELECT key, typeof(key), quote(value) FROM kv");
  sh_exec(f->db, "UPDATE kv SET key = key || '!'");
  sh_assert_query(f->db, "7!|'seven'\nz!|X'0102'",
                  "SELECT key, quote(value) FROM kv");
}

/* Multi-row writes run while SQLite's scan cursor is open. */
static void test_multirow_writes(void **state){
  Fixture *f = *state;
  int i;
  for(i=0; i<200; i++){
    sh_exec(f->db, "INSERT INTO kv VALUES(%d, %d)", i, i%7);
  }
  sh_exec(f->db, "DELETE FROM kv WHERE value = 3");
  sh_assert_query(f->db, "171", "SELECT count(*) FROM kv");
  sh_exec(f->db, "UPDATE kv SET value = value * 10 WHERE key >= 100");
  sh_assert_query(f->db, "60", "SELECT value FROM kv WHERE key = 111");
  sh_exec(f->db, "INSERT INTO kv SELECT 'c' || key, value FROM kv "
          "WHERE typeof(key) = 'integer'");
  sh_assert_query(f->db, "342", "SELECT count(*) FROM kv");
  sh_exec(f->db, "INSERT OR REPLACE INTO kv SELECT key, -1 FROM kv");
  sh_assert_query(f->db, "342|-342", "SELECT count(*), sum(value) FROM kv");
  sh_exec(f->db, "DELETE FROM kv WHERE key LIKE 'c1%%'");
  sh_exec(f->db, "DELETE FROM kv WHERE key > 150 AND key < 'c'");
  sh_assert_query(f->db, "0|0", "SELECT (SELECT count(*) FROM kv WHERE "
                  "key > 150 AND key < 'c'), (SELECT count(*) FROM kv WHERE "
                  "key LIKE 'c1%%')");
  sh_exec(f->db, "DELETE FROM kv");
  sh_assert_query(f->db, "0", "SELECT count(*) FROM kv");
}

/* BEGIN/ROLLBACK, savepoints, and statement rollback inside BEGIN. */
static void test_transactions(void **state){
  Fixture *f = *state;
  sh_exec(f->db, "INSERT INTO kv VALUES('keep', 1)");
  sh_exec(f->db, "BEGIN; INSERT INTO kv VALUES('a', 1); "
          "UPDATE kv SET value = 2 WHERE key = 'keep'; DELETE FROM kv "
          "WHERE key = 'keep'; ROLLBACK");
  sh_assert_query(f->db, "keep|1", "SELECT * FROM kv");
  sh_exec(f->db, "BEGIN; INSERT INTO kv VALUES('a', 1); SAVEPOINT s1; "
          "INSERT INTO kv VALUES('b', 2); SAVEPOINT s2; DELETE FROM kv; "
          "ROLLBACK TO s2; INSERT INTO kv VALUES('c', 3); ROLLBACK TO s1; "
          "INSERT INTO kv VALUES('d', 4); RELEASE s1; COMMIT");
  sh_assert_query(f->db, "a|1\nd|4\nkeep|1", "SELECT * FROM kv");
  /* A failing statement inside BEGIN undoes only itself. */
  sh_exec(f->db, "BEGIN; INSERT INTO kv VALUES('e', 5)");
  sh_fails(f->db, SQLITE_CONSTRAINT, "UNIQUE",
           "INSERT INTO kv VALUES('x', 0), ('y', 0), ('a', 0)");
  sh_exec(f->db, "COMMIT");
  sh_assert_query(f->db, "a\nd\ne\nkeep", "SELECT key FROM kv");
  /* SAVEPOINT outside BEGIN opens the transaction; ROLLBACK TO it. */
  sh_exec(f->db, "SAVEPOINT t; INSERT INTO kv VALUES('f', 6); SAVEPOINT u; "
          "INSERT INTO kv VALUES('g', 7); ROLLBACK TO t; "
          "INSERT INTO kv VALUES('h', 8); RELEASE t");
  sh_assert_query(f->db, "a\nd\ne\nh\nkeep", "SELECT key FROM kv");
  /* Reads inside the transaction see its writes. */
  sh_exec(f->db, "BEGIN; DELETE FROM kv WHERE key < 'h'");
  sh_assert_query(f->db, "h\nkeep", "SELECT key FROM kv");
  sh_exec(f->db, "ROLLBACK");
  sh_assert_query(f->db, "5", "SELECT count(*) FROM kv");
}

/* CREATE and INSERT in one transaction: SQLite never calls xBegin. */
static void test_create_in_transaction(void **state){
  Fixture *f = *state;
  sh_exec(f->db, "BEGIN; CREATE VIRTUAL TABLE t2 USING tinkv('%q/t2'); "
          "INSERT INTO t2 VALUES(1, 1); COMMIT", f->zDir);
  sh_assert_query(f->db, "1|1", "SELECT * FROM t2");
  sh_exec(f->db, "BEGIN; CREATE VIRTUAL TABLE t3 USING tinkv('%q/t3'); "
          "INSERT INTO t3 VALUES(1, 1); ROLLBACK", f->zDir);
  sh_fails(f->db, SQLITE_ERROR, "no such table", "SELECT * FROM t3");
  sh_exec(f->db, "CREATE VIRTUAL TABLE t3 USING tinkv('%q/t3')", f->zDir);
  sh_assert_query(f->db, "0", "SELECT count(*) FROM t3");
}

/* Plans: point lookups, ranges and patterns; ORDER BY key consumed. */
static void test_query_plans(void **state){
  Fixture *f = *state;
  static const struct { const char *zSql; const char *zPlan; } a[] = {
    { "SELECT value FROM kv WHERE key = ?",          "INDEX 1:" },
    { "SELECT value FROM kv WHERE key IS ?",         "INDEX 1:" },
    { "SELECT value FROM kv WHERE key IN (1,2)",     "INDEX 257:" },
    { "SELECT value FROM kv WHERE rowid = ?",        "INDEX 2:" },
    { "SELECT value FROM kv WHERE key > ?",          "INDEX 4:" },
    { "SELECT value FROM kv WHERE key >= ?",         "INDEX 12:" },
    { "SELECT value FROM kv WHERE key < ?",          "INDEX 16:" },
    { "SELECT value FROM kv WHERE key BETWEEN ? AND ?", "INDEX 60:" },
    { "SELECT value FROM kv WHERE key GLOB ?",       "INDEX 64:" },
    { "SELECT value FROM kv WHERE key GLOB 'ab*'",   "INDEX 64:" },
    { "SELECT value FROM kv WHERE key GLOB '1*'",    "INDEX 64:" },
    { "SELECT value FROM kv WHERE key LIKE 'ab%'",   "INDEX 128:" },
    { "SELECT value FROM kv WHERE key LIKE '%ab'",   "INDEX 0:" },
    { "SELECT value FROM kv WHERE key = 'a' COLLATE NOCASE", "INDEX 0:" },
    { "SELECT value FROM kv WHERE value = 1",        "INDEX 0:" },
  };
  size_t i;
  for(i=0; i<sizeof(a)/sizeof(a[0]); i++){
    const char *z = sh_query(f->db, "EXPLAIN QUERY PLAN %s", a[i].zSql);
    if( strstr(z, a[i].zPlan)==0 ){
      fprintf(stderr, "%s\n  expected %s, got %s\n", a[i].zSql, a[i].zPlan, z);
      fail();
    }
  }
  assert_null(strstr(sh_query(f->db, "EXPLAIN QUERY PLAN SELECT * FROM kv "
                              "WHERE key > 3 ORDER BY key"), "B-TREE"));
  assert_null(strstr(sh_query(f->db, "EXPLAIN QUERY PLAN SELECT * FROM kv "
                              "ORDER BY key, value"), "B-TREE"));
  assert_non_null(strstr(sh_query(f->db, "EXPLAIN QUERY PLAN SELECT * FROM kv"
                                  " ORDER BY key DESC"), "B-TREE"));
  assert_non_null(strstr(sh_query(f->db, "EXPLAIN QUERY PLAN SELECT * FROM kv"
                                  " ORDER BY value"), "B-TREE"));
  /* A correlated subquery looks keys up instead of scanning. */
  sh_exec(f->db, "CREATE TABLE wanted(k)");
  assert_non_null(strstr(sh_query(f->db, "EXPLAIN QUERY PLAN SELECT (SELECT "
      "value FROM kv WHERE key = w.k) FROM wanted w"), "INDEX 1:"));
}

/*
** LIKE and GLOB prefixes find numbers (compared as their text) and text in
** any case.  Blobs are scanned too, though this SQLite build (Debian's,
** SQLITE_LIKE_DOESNT_MATCH_BLOBS) never lets them match.
*/
static void test_like_glob(void **state){
  Fixture *f = *state;
  sh_exec(f->db, "INSERT INTO kv VALUES(10, 0), (1.5, 0), (2, 0), (-1, 0), "
          "('1x', 0), ('user:1', 0), ('USER:2', 0), ('uSeR:3', 0), "
          "('usex', 0), ('b', 0), (x'75736572', 0), (x'31', 0), ('Inf', 0),"
          "(9e999, 0), ('a%%b', 0), ('a_b', 0)");
  sh_assert_query(f->db, "1.5\n10\n1x",
                  "SELECT key FROM kv WHERE key LIKE '1%%'");
  sh_assert_query(f->db, "1.5\n10\n1x",
                  "SELECT key FROM kv WHERE key GLOB '1*'");
  sh_assert_query(f->db, "USER:2\nuSeR:3\nuser:1",
                  "SELECT key FROM kv WHERE key LIKE 'user%%'");
  sh_assert_query(f->db, "user:1", "SELECT key FROM kv WHERE key GLOB 'user*'");
  sh_assert_query(f->db, "-1", "SELECT key FROM kv WHERE key LIKE '-%%'");
  sh_assert_query(f->db, "Inf\nInf", "SELECT key FROM kv WHERE key LIKE 'inf'");
  sh_assert_query(f->db, "a%b\na_b", "SELECT key FROM kv WHERE key LIKE 'a_b'");
  sh_assert_query(f->db, "", "SELECT key FROM kv WHERE key LIKE NULL");
  sh_exec(f->db, "PRAGMA case_sensitive_like = ON");
  sh_assert_query(f->db, "user:1",
                  "SELECT key FROM kv WHERE key LIKE 'user%%'");
}

/* 1 MiB blobs in keys' values, read back whole. */
static void test_big_values(void **state){
  Fixture *f = *state;
  sh_exec(f->db, "INSERT INTO kv VALUES('big', zeroblob(1048576)), "
          "('big2', randomblob(1048576))");
  sh_exec(f->db, "UPDATE kv SET value = zeroblob(1048577) WHERE key = 'big'");
  sh_assert_query(f->db, "big|1048577\nbig2|1048576",
                  "SELECT key, length(value) FROM kv");
  sh_exec(f->db, "UPDATE kv SET key = 'moved' WHERE key = 'big2'");
  sh_assert_query(f->db, "1048576", "SELECT length(value) FROM kv "
                  "WHERE key = 'moved'");
}

/*
** Two connections share a store: each sees only the other's committed
** writes.  On one database file SQLite's own lock serialises the writers;
** on two databases, the second writer gets the store's SQLITE_BUSY.
*/
static void test_two_connections(void **state){
  Fixture *f = *state;
  char zDb[4200];
  sqlite3 *db1, *db2;
  snprintf(zDb, sizeof zDb, "%s/two.db", f->zDir);
  db1 = sh_open(zDb);
  sh_exec(db1, "CREATE VIRTUAL TABLE t USING tinkv");
  db2 = sh_open(zDb);
  sh_exec(db1, "INSERT INTO t VALUES('a', 1)");
  sh_assert_query(db2, "a|1", "SELECT * FROM t");
  sh_exec(db1, "BEGIN; INSERT INTO t VALUES('b', 2)");
  sh_assert_query(db2, "a|1", "SELECT * FROM t");
  sh_fails(db2, SQLITE_BUSY, "locked", "INSERT INTO t VALUES('c', 3)");
  sh_exec(db1, "COMMIT");
  sh_exec(db2, "INSERT INTO t VALUES('c', 3)");
  sh_assert_query(db1, "a\nb\nc", "SELECT key FROM t");
  sqlite3_close(db2);
  sqlite3_close(db1);

  db1 = sh_open(":memory:");
  db2 = sh_open(":memory:");
  sh_exec(db1, "CREATE VIRTUAL TABLE t USING tinkv('%q/shared')", f->zDir);
  sh_exec(db2, "CREATE VIRTUAL TABLE t USING tinkv('%q/shared')", f->zDir);
  sh_exec(db1, "BEGIN; INSERT INTO t VALUES('x', 1)");
  sh_fails(db2, SQLITE_BUSY, "busy", "INSERT INTO t VALUES('y', 2)");
  sh_assert_query(db2, "0", "SELECT count(*) FROM t");
  sh_exec(db1, "COMMIT");
  sh_exec(db2, "INSERT INTO t VALUES('y', 2)");
  sh_assert_query(db1, "x\ny", "SELECT key FROM t");
  sqlite3_close(db2);
  sqlite3_close(db1);
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_types_roundtrip, setup, teardown),
    cmocka_unit_test_setup_teardown(test_key_equality, setup, teardown),
    cmocka_unit_test_setup_teardown(test_rowid, setup, teardown),
    cmocka_unit_test_setup_teardown(test_conflicts, setup, teardown),
    cmocka_unit_test_setup_teardown(test_update_key, setup, teardown),
    cmocka_unit_test_setup_teardown(test_multirow_writes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
    cmocka_unit_test_setup_teardown(test_create_in_transaction, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_query_plans, setup, teardown),
    cmocka_unit_test_setup_teardown(test_like_glob, setup, teardown),
    cmocka_unit_test_setup_teardown(test_big_values, setup, teardown),
    cmocka_unit_test_setup_teardown(test_two_connections, setup, teardown),
  };
  return cmocka_run_group_tests(tests, 0, 0);
}
