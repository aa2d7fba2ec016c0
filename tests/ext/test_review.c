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

#include "fixture.h"

static int setup(void **state){
  return fx_setup(state, "review", "CREATE VIRTUAL TABLE kv USING tinkv('%q/kv');"
                         "CREATE TABLE ref(key PRIMARY KEY NOT NULL, value)");
}

static int teardown(void **state){
  return fx_teardown(state);
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

/* Names of the data files of a store (not its owner record). */
static int storeFiles(const char *zDir){
  return tu_count_files(zDir, ".seg");
}

/* 2, 12. A DROP TABLE whose commit fails (a reader holds the rollback
** journal's SHARED lock) keeps the store, the table and its data; a DROP
** that commits removes it. */
static void test_drop_commit_fails(void **state){
  Fixture *f = *state;
  char zDb[4200], zStore[4200];
  sqlite3 *db, *pReader;
  sqlite3_stmt *pStmt;
  snprintf(zDb, sizeof zDb, "%s/app.db", f->zDir);
  snprintf(zStore, sizeof zStore, "%s/store", f->zDir);
  db = sh_open(zDb);
  sh_exec(db, "CREATE VIRTUAL TABLE kv USING tinkv('%q');"
              "INSERT INTO kv VALUES('important', 'data');"
              "CREATE TABLE plain(x); INSERT INTO plain VALUES(1),(2)", zStore);
  pReader = sh_open(zDb);
  assert_int_equal(sqlite3_prepare_v2(pReader, "SELECT x FROM plain", -1,
                                      &pStmt, 0), SQLITE_OK);
  assert_int_equal(sqlite3_step(pStmt), SQLITE_ROW);     /* SHARED lock */
  sh_fails(db, SQLITE_BUSY, "locked", "DROP TABLE kv");
  sh_assert_query(db, "1", "SELECT count(*) FROM sqlite_master "
                           "WHERE name='kv'");
  assert_true(tu_exists(zStore));
  assert_int_equal(storeFiles(zStore), 1);
  sh_assert_query(db, "important|data", "SELECT * FROM kv");
  /* In another connection too, and after reopening. */
  sh_assert_query(pReader, "important|data", "SELECT * FROM kv");
  sqlite3_finalize(pStmt);
  sqlite3_close(pReader);
  sqlite3_close(db);
  db = sh_open(zDb);
  sh_assert_query(db, "important|data", "SELECT * FROM kv");
  /* Now the DROP commits: the store goes (at the latest when the
  ** connection closes). */
  sh_exec(db, "DROP TABLE kv");
  sh_assert_query(db, "0", "SELECT count(*) FROM sqlite_master "
                           "WHERE name='kv'");
  sqlite3_close(db);
  assert_false(tu_exists(zStore));
}

/* 2. DROP then CREATE of the same default-path table in one connection:
** the new table gets a new, empty store. */
static void test_drop_then_create_same_name(void **state){
  Fixture *f = *state;
  char zDb[4200], zStore[4300];
  sqlite3 *db;
  snprintf(zDb, sizeof zDb, "%s/app.db", f->zDir);
  snprintf(zStore, sizeof zStore, "%s-d.tinkv", zDb);
  db = sh_open(zDb);
  sh_exec(db, "CREATE VIRTUAL TABLE d USING tinkv; INSERT INTO d VALUES(1,1)");
  sh_exec(db, "DROP TABLE d");
  sh_exec(db, "CREATE VIRTUAL TABLE d USING tinkv");
  sh_assert_query(db, "0", "SELECT count(*) FROM d");
  sh_exec(db, "INSERT INTO d VALUES(2,2)");
  sqlite3_close(db);
  db = sh_open(zDb);
  sh_assert_query(db, "2|2", "SELECT * FROM d");
  sh_exec(db, "DROP TABLE d");
  sqlite3_close(db);
  assert_false(tu_exists(zStore));
}

/* 12. A table whose store is gone can be dropped. */
static void test_drop_missing_store(void **state){
  Fixture *f = *state;
  char zDb[4200], zStore[4200];
  sqlite3 *db;
  snprintf(zDb, sizeof zDb, "%s/app.db", f->zDir);
  snprintf(zStore, sizeof zStore, "%s/store", f->zDir);
  db = sh_open(zDb);
  sh_exec(db, "CREATE VIRTUAL TABLE kv USING tinkv('%q')", zStore);
  sqlite3_close(db);
  tu_rmrf(zStore);
  db = sh_open(zDb);
  sh_fails(db, SQLITE_CANTOPEN, "no store at", "SELECT * FROM kv");
  sh_exec(db, "DROP TABLE kv");
  sh_assert_query(db, "0", "SELECT count(*) FROM sqlite_master");
  sqlite3_close(db);
  assert_false(tu_exists(zStore));
}

/* Make the user's store <dir>/precious (from the database mine.db) and a
** crafted database <dir>/downloaded.db whose table names it. */
static void makeVictim(Fixture *f, char *zStore, size_t nStore, char *zEvil,
                       size_t nEvil){
  char zMine[4200];
  sqlite3 *db;
  snprintf(zMine, sizeof zMine, "%s/mine.db", f->zDir);
  snprintf(zStore, nStore, "%s/precious", f->zDir);
  snprintf(zEvil, nEvil, "%s/downloaded.db", f->zDir);
  db = sh_open(zMine);
  sh_exec(db, "CREATE VIRTUAL TABLE mine USING tinkv('%q');"
              "INSERT INTO mine VALUES('my', 'data')", zStore);
  sqlite3_close(db);
  /* The crafted file: a plain SQLite database, written without the
  ** extension (as an attacker would). */
  assert_int_equal(sqlite3_open(zEvil, &db), SQLITE_OK);
  sh_exec(db, "PRAGMA writable_schema=ON;"
      "INSERT INTO sqlite_master VALUES('table','cache','cache',0,"
      "'CREATE VIRTUAL TABLE cache USING tinkv(''%q'')');"
      "PRAGMA writable_schema=OFF", zStore);
  sqlite3_close(db);
}

/* Listing of a directory: names, sizes and modification times. */
static char *listing(const char *zDir){
  sqlite3_str *pStr = sqlite3_str_new(0);
  char **az;
  int n, i;
  az = tu_list_files(zDir, "", &n);
  for(i=0; az && i<n; i++){
    struct stat st;
    char *zPath = sqlite3_mprintf("%s/%s", zDir, az[i]);
    if( zPath && stat(zPath, &st)==0 ){
      sqlite3_str_appendf(pStr, "%s %lld %lld.%09ld\n", az[i],
                          (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                          st.st_mtim.tv_nsec);
    }
    sqlite3_free(zPath);
  }
  tu_free_names(az);
  return sqlite3_str_finish(pStr);
}

/* 6. A database from elsewhere cannot destroy a store it did not make:
** DROP TABLE IF EXISTS leaves the store, which its owner still opens. */
static void test_crafted_drop(void **state){
  Fixture *f = *state;
  char zStore[4200], zEvil[4200], zMine[4200];
  sqlite3 *db;
  makeVictim(f, zStore, sizeof zStore, zEvil, sizeof zEvil);
  db = sh_open(zEvil);
  sh_exec(db, "DROP TABLE IF EXISTS cache");
  sqlite3_close(db);
  assert_true(tu_exists(zStore));
  snprintf(zMine, sizeof zMine, "%s/mine.db", f->zDir);
  db = sh_open(zMine);
  sh_assert_query(db, "my|data", "SELECT * FROM mine");
  sqlite3_close(db);
  /* An in-memory database that adopts the store and drops it: detached. */
  sh_exec(f->db, "CREATE VIRTUAL TABLE peek USING tinkv('%q');"
                 "DROP TABLE peek", zStore);
  assert_true(tu_exists(zStore));
  db = sh_open(zMine);
  sh_assert_query(db, "my|data", "SELECT * FROM mine");
  sqlite3_close(db);
}

/* 10. Reading a table of a database from elsewhere neither writes into
** nor opens the store it names (no LOCK, no hints, no cut tail); the table
** says why and how to adopt the store. */
static void test_crafted_select_writes_nothing(void **state){
  Fixture *f = *state;
  char zStore[4200], zEvil[4200], zSeg[4300];
  char *zBefore, *zAfter;
  sqlite3 *db;
  makeVictim(f, zStore, sizeof zStore, zEvil, sizeof zEvil);
  /* Leave the store as a crash would: a torn tail. */
  snprintf(zSeg, sizeof zSeg, "%s/0000000001.seg", zStore);
  assert_int_equal(tu_append(zSeg, "torn", 4), 0);
  zBefore = listing(zStore);
  db = sh_open(zEvil);
  sh_fails(db, SQLITE_AUTH, "did not create or adopt",
           "SELECT count(*) FROM cache");
  sh_fails(db, SQLITE_AUTH, "did not create or adopt",
           "INSERT INTO cache VALUES(1, 2)");
  sh_fails(db, SQLITE_AUTH, "did not create or adopt",
           "SELECT tinkv_stats('cache')");
  zAfter = listing(zStore);
  assert_string_equal(zBefore, zAfter);
  sqlite3_close(db);
  zAfter = (sqlite3_free(zAfter), listing(zStore));
  assert_string_equal(zBefore, zAfter);
  sqlite3_free(zBefore);
  sqlite3_free(zAfter);
}

/* 5. Options that cannot take effect because the store is already open
** in the process are an error, not silently dropped. */
static void test_options_of_open_store(void **state){
  Fixture *f = *state;
  char zStore[4200];
  sqlite3 *db2;
  snprintf(zStore, sizeof zStore, "%s/shared", f->zDir);
  sh_exec(f->db, "CREATE VIRTUAL TABLE a USING tinkv(path='%q', sync=off, "
                 "compact_threshold=1024)", zStore);
  db2 = sh_open(":memory:");
  sh_fails(db2, SQLITE_ERROR, "already open in this process with sync=off",
           "CREATE VIRTUAL TABLE b USING tinkv(path='%q', sync=full)",
           zStore);
  sh_fails(db2, SQLITE_ERROR, "already open in this process with sync=off",
           "CREATE VIRTUAL TABLE b USING tinkv(path='%q')", zStore);
  sh_fails(db2, SQLITE_ERROR, "compact_threshold=1024",
           "CREATE VIRTUAL TABLE b USING tinkv(path='%q', sync=off, "
           "compact_threshold=2048)", zStore);
  /* The same or weaker settings are fine (the stronger one applies). */
  sh_exec(db2, "CREATE VIRTUAL TABLE b USING tinkv(path='%q', sync=off)",
          zStore);
  sh_exec(db2, "INSERT INTO b VALUES(1, 1)");
  sh_assert_query(f->db, "1", "SELECT count(*) FROM a");
  sqlite3_close(db2);
  /* Once the store is closed everywhere, other options take effect. */
  sqlite3_close(f->db);
  f->db = 0;
  db2 = sh_open(":memory:");
  sh_exec(db2, "CREATE VIRTUAL TABLE b USING tinkv(path='%q', sync=full)",
          zStore);
  sh_assert_query(db2, "1", "SELECT count(*) FROM b");
  sqlite3_close(db2);
}

/* 14. A database of the memdb VFS has a name that is not a file: its
** default-path table gets a private store, not one in the file system. */
static void test_memdb_default_path(void **state){
  Fixture *f = *state;
  sqlite3 *db = 0;
  char zUri[4300], zWould[4400];
  snprintf(zUri, sizeof zUri, "file:%s/mem.db?vfs=memdb", f->zDir);
  snprintf(zWould, sizeof zWould, "%s/mem.db-kv.tinkv", f->zDir);
  assert_int_equal(sqlite3_open_v2(zUri, &db, SQLITE_OPEN_READWRITE|
                   SQLITE_OPEN_CREATE|SQLITE_OPEN_URI, 0), SQLITE_OK);
  sh_load(db);
  sh_exec(db, "CREATE VIRTUAL TABLE kv USING tinkv; INSERT INTO kv "
              "VALUES(1, 1)");
  assert_false(tu_exists(zWould));
  sh_assert_query(db, "1|1", "SELECT * FROM kv");
  sqlite3_close(db);
  assert_false(tu_exists(zWould));
}

/* 11. A CHECK constraint cannot call tinkv_compact (SQLite 3.40 does not
** apply SQLITE_DIRECTONLY to CHECK constraints), in a later session with an
** untrusted schema or not. */
static void test_check_constraint_compact(void **state){
  Fixture *f = *state;
  char zDb[4200], zStore[4200];
  sqlite3 *db;
  snprintf(zDb, sizeof zDb, "%s/app.db", f->zDir);
  snprintf(zStore, sizeof zStore, "%s/kvdir", f->zDir);
  db = sh_open(zDb);
  sh_exec(db, "CREATE VIRTUAL TABLE kv USING tinkv('%q');"
              "CREATE TABLE c(a CHECK (tinkv_compact('kv') >= 0));"
              "INSERT INTO kv VALUES(1, 1); UPDATE kv SET value = 2", zStore);
  sqlite3_close(db);
  db = sh_open(zDb);
  sh_exec(db, "PRAGMA trusted_schema=OFF");
  sh_assert_query(db, "0", "SELECT json_extract(tinkv_stats('kv'), "
                           "'$.compactions')");
  sh_fails(db, SQLITE_AUTH, "runs only from a statement that writes nothing",
           "INSERT INTO c VALUES(1)");
  sh_exec(db, "PRAGMA trusted_schema=ON");
  sh_fails(db, SQLITE_AUTH, "runs only from a statement that writes nothing",
           "INSERT INTO c VALUES(1)");
  sh_assert_query(db, "0", "SELECT json_extract(tinkv_stats('kv'), "
                           "'$.compactions')");
  sh_assert_query(db, "0", "SELECT count(*) FROM c");
  /* The same for tinkv_backup, which writes files where it is told. */
  sh_exec(db, "CREATE TABLE c2(a CHECK (tinkv_backup('kv', '%q/bk') "
              "IS NOT NULL))", f->zDir);
  sh_fails(db, SQLITE_AUTH, "runs only from a statement that writes nothing",
           "INSERT INTO c2 VALUES(1)");
  assert_false(tu_exists(tu_path(f->zDir, "bk")));
  /* Called directly, it runs. */
  sh_exec(db, "SELECT tinkv_compact('kv')");
  sh_assert_query(db, "1", "SELECT json_extract(tinkv_stats('kv'), "
                           "'$.compactions')");
  sqlite3_close(db);
}

/* Run query zSelect (with %s for the table) on kv and on ref; the rows
** must be equal. */
static void sameRows(sqlite3 *db, const char *zSelect){
  assertSameAsRef(db, zSelect);
}

/* 3, 4. Range and equality plans whose argument is TEXT compared under
** numeric affinity (a column with INTEGER/REAL/NUMERIC affinity holding
** text, a compound SELECT's column) find what a native table finds. */
static void test_affinity_text_arguments(void **state){
  Fixture *f = *state;
  static const char *azAff[] = { "INTEGER", "REAL", "NUMERIC", "TEXT", "" };
  static const char *azQuery[] = {
    "SELECT key FROM lim CROSS JOIN %s AS t WHERE t.key < lim.x ORDER BY 1",
    "SELECT key FROM lim CROSS JOIN %s AS t WHERE t.key <= lim.x ORDER BY 1",
    "SELECT key FROM lim CROSS JOIN %s AS t WHERE t.key > lim.x ORDER BY 1",
    "SELECT key FROM lim CROSS JOIN %s AS t WHERE t.key >= lim.x ORDER BY 1",
    "SELECT key FROM lim CROSS JOIN %s AS t WHERE t.key = lim.x ORDER BY 1",
    "SELECT key FROM lim LEFT JOIN %s AS t ON t.key < lim.x ORDER BY 1",
    "SELECT key FROM %s WHERE key <= (SELECT x FROM lim LIMIT 1) ORDER BY 1",
    "SELECT key FROM %s WHERE key = (SELECT x FROM lim LIMIT 1) ORDER BY 1",
    "SELECT key FROM %s WHERE key BETWEEN (SELECT min(x) FROM lim) "
        "AND (SELECT max(x) FROM lim) ORDER BY 1",
    "WITH c(y) AS (SELECT x FROM lim UNION ALL SELECT '5') "
        "SELECT key FROM c CROSS JOIN %s AS t WHERE t.key = c.y ORDER BY 1",
    "SELECT key FROM %s WHERE key = (SELECT '5' UNION ALL SELECT x FROM lim)"
        " ORDER BY 1",
    "SELECT key FROM %s WHERE key >= (SELECT '5.5' UNION ALL SELECT x FROM "
        "lim) ORDER BY 1",
    "SELECT key FROM %s WHERE key < (SELECT ' 6' UNION ALL SELECT x FROM "
        "lim) ORDER BY 1",
  };
  static const char *azLim[] = { "'!'", "'5'", "6", "'x'", "' 5 '", "5.5",
                                  "-2", "'5.5'" };
  size_t a, q, l;
  sh_exec(f->db, "INSERT INTO kv VALUES ('5','t5'),('!','bang'),(7,'i7'),"
      "(5,'i5'),('05','t05'),(' 6','ts6'),(6,'i6'),('x','x'),(x'35','b5'),"
      "(5.5,'r55'),('5.5','t55'),('-1','tm1'),(-2,'im2'),"
      "('5e0','a'),('.5e1','b'),('0.5e1','c'),('50e-1','d'),('+5','e'),"
      "('5.','f'),('0005','g'),(' 5.0 ','h'),('55e-1','i'),('.55e1','j'),"
      "('5.50','k'),('-2e0','l'),(' -2','m'),('-.2e1','n');"
      "INSERT INTO ref SELECT key, value FROM kv");
  for(a=0; a<sizeof(azAff)/sizeof(azAff[0]); a++){
    for(l=0; l<sizeof(azLim)/sizeof(azLim[0]); l++){
      sh_exec(f->db, "DROP TABLE IF EXISTS lim; CREATE TABLE lim(x %s);"
                     "INSERT INTO lim VALUES(%s)", azAff[a], azLim[l]);
      for(q=0; q<sizeof(azQuery)/sizeof(azQuery[0]); q++){
        sameRows(f->db, azQuery[q]);
      }
    }
  }
}

/* 8. key IN (...) with keys at the 1 MiB limit and a longer value that
** starts with one of them returns each row once. */
static void test_in_near_key_limit(void **state){
  Fixture *f = *state;
  const int M = 1<<20;
  sqlite3_stmt *pStmt;
  char *zBig = malloc((size_t)M + 2);
  int n = 0;
  memset(zBig, 'a', (size_t)M + 1);
  zBig[M-1] = 0;                       /* M-1 bytes: encodes to 1 MiB */
  assert_int_equal(sqlite3_prepare_v2(f->db, "INSERT INTO kv VALUES(?1, 1),"
                   "('a', 2), ('b', 3)", -1, &pStmt, 0), SQLITE_OK);
  sqlite3_bind_text(pStmt, 1, zBig, -1, SQLITE_STATIC);
  assert_int_equal(sqlite3_step(pStmt), SQLITE_DONE);
  sqlite3_finalize(pStmt);
  assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT value FROM kv WHERE key "
                   "IN (?1, ?2, 'b') ORDER BY key", -1, &pStmt, 0), SQLITE_OK);
  sqlite3_bind_text(pStmt, 1, zBig, -1, SQLITE_STATIC);
  zBig[M-1] = 'x';
  zBig[M] = 0;                         /* the same plus one byte */
  sqlite3_bind_text(pStmt, 2, zBig, -1, SQLITE_TRANSIENT);
  while( sqlite3_step(pStmt)==SQLITE_ROW ){
    n++;
    assert_int_equal(sqlite3_column_int(pStmt, 0), n==1 ? 1 : 3);
  }
  sqlite3_finalize(pStmt);
  assert_int_equal(n, 2);
  free(zBig);
}

/* A Unicode-folding stand-in for ICU: lower-case ASCII, and map the Kelvin
** sign (U+212A) to 'k' and the long s (U+017F) to 's'.  Returns a new
** string (sqlite3_free). */
static char *foldText(const unsigned char *z){
  sqlite3_str *pStr = sqlite3_str_new(0);
  while( z && *z ){
    if( z[0]==0xE2 && z[1]==0x84 && z[2]==0xAA ){
      sqlite3_str_appendchar(pStr, 1, 'k'); z += 3;
    }else if( z[0]==0xC5 && z[1]==0xBF ){
      sqlite3_str_appendchar(pStr, 1, 's'); z += 2;
    }else{
      char c = (char)*z++;
      if( c>='A' && c<='Z' ) c = (char)(c - 'A' + 'a');
      sqlite3_str_appendchar(pStr, 1, c);
    }
  }
  return sqlite3_str_finish(pStr);
}

/* Match folded text against a folded pattern with wildcards zAny/zOne
** (single bytes), like a simple LIKE or GLOB. */
static int matchFolded(const char *zPat, const char *z, char cAny, char cOne){
  if( *zPat==0 ) return *z==0;
  if( *zPat==cAny ){
    for(;; z++){
      if( matchFolded(zPat+1, z, cAny, cOne) ) return 1;
      if( *z==0 ) return 0;
    }
  }
  if( *z==0 ) return 0;
  if( *zPat!=cOne && *zPat!=*z ) return 0;
  return matchFolded(zPat+1, z+1, cAny, cOne);
}

static void foldingMatch(sqlite3_context *ctx, int argc, sqlite3_value **argv,
                         char cAny, char cOne){
  char *zPat, *z;
  (void)argc;
  if( sqlite3_value_type(argv[0])==SQLITE_NULL
   || sqlite3_value_type(argv[1])==SQLITE_NULL ) return;
  zPat = foldText(sqlite3_value_text(argv[0]));
  z = foldText(sqlite3_value_text(argv[1]));
  sqlite3_result_int(ctx, matchFolded(zPat ? zPat : "", z ? z : "", cAny,
                                      cOne));
  sqlite3_free(zPat);
  sqlite3_free(z);
}
static void appLike(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  foldingMatch(ctx, argc, argv, '%', '_');
}
static void appGlob(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  foldingMatch(ctx, argc, argv, '*', '?');
}

/* 7. With an application-defined like() and glob() (as ICU installs),
** LIKE and GLOB on the key find what a native table finds. */
static void test_application_like_glob(void **state){
  Fixture *f = *state;
  static const char *azQuery[] = {
    "SELECT key FROM %s WHERE key LIKE 'kel%%' ORDER BY key",
    "SELECT key FROM %s WHERE key LIKE 'sun' ORDER BY key",
    "SELECT key FROM %s WHERE key GLOB 'SUN*' ORDER BY key",
    "SELECT key FROM %s WHERE key GLOB 'k*' ORDER BY key",
    "SELECT key FROM %s WHERE key LIKE 'O%%' ORDER BY key",
  };
  size_t q;
  sh_exec(f->db, "INSERT INTO kv VALUES ('\xe2\x84\xaa" "elvin',1),"
      "('kelvin',2),('Kelvin',3),('\xc5\xbf" "un',4),('sun',5),('SUN',6),"
      "('other',7); INSERT INTO ref SELECT key, value FROM kv");
  /* The built-in functions first: the pattern plans are used. */
  for(q=0; q<sizeof(azQuery)/sizeof(azQuery[0]); q++){
    assertSameAsRef(f->db, azQuery[q]);
  }
  assert_int_equal(sqlite3_create_function(f->db, "like", 2, SQLITE_UTF8, 0,
                                           appLike, 0, 0), SQLITE_OK);
  assert_int_equal(sqlite3_create_function(f->db, "glob", 2, SQLITE_UTF8, 0,
                                           appGlob, 0, 0), SQLITE_OK);
  for(q=0; q<sizeof(azQuery)/sizeof(azQuery[0]); q++){
    assertSameAsRef(f->db, azQuery[q]);
  }
  sh_assert_query(f->db, "Kelvin\nkelvin\n\xe2\x84\xaa" "elvin",
                  "SELECT key FROM kv WHERE key LIKE 'kel%%' ORDER BY key");
}

/* 9. In a UTF-16 database, TEXT with an unpaired surrogate (which SQLite
** would turn into the UTF-8 of another, valid string) is refused as a key
** or value, never stored as a different key; valid text round-trips. */
static void test_utf16_keys(void **state){
  Fixture *f = *state;
  sqlite3 *db;
  char zDb[4200];
  (void)f;
  snprintf(zDb, sizeof zDb, "%s/u16.db", f->zDir);
  db = sh_open(zDb);
  sh_exec(db, "PRAGMA encoding='UTF-16le';"
              "CREATE VIRTUAL TABLE kv USING tinkv('%q/u16kv')", f->zDir);
  sh_exec(db, "INSERT INTO kv VALUES (CAST(x'00d841dc' AS TEXT), 'pair'),"
              "('\xc3\xa4', 'a-umlaut')");
  sh_fails(db, SQLITE_MISMATCH, "unpaired UTF-16 surrogate",
           "INSERT INTO kv VALUES (CAST(x'00d84100' AS TEXT), 'lone')");
  sh_fails(db, SQLITE_MISMATCH, "unpaired UTF-16 surrogate",
           "INSERT INTO kv VALUES ('v', CAST(x'41dc' AS TEXT))");
  sh_assert_query(db, "00D841DC|pair\nE400|a-umlaut",
                  "SELECT hex(key), value FROM kv ORDER BY value DESC");
  sh_assert_query(db, "", "SELECT value FROM kv "
                  "WHERE key = CAST(x'00d84100' AS TEXT)");
  sh_assert_query(db, "", "SELECT value FROM kv "
                  "WHERE key IN (CAST(x'00d84100' AS TEXT), 'zz')");
  sh_assert_query(db, "pair", "SELECT value FROM kv "
                  "WHERE key = CAST(x'00d841dc' AS TEXT)");
  /* UTF-16le orders text by code units: U+0100 sorts before 'b' there.
  ** Ranges and ORDER BY agree with a native table. */
  sh_exec(db, "DELETE FROM kv; INSERT INTO kv VALUES ('b',1),('\xc4\x80',2),"
              "('a',3),('\xc3\xa9',4),(5,5);"
              "CREATE TABLE ref(key PRIMARY KEY NOT NULL, value);"
              "INSERT INTO ref SELECT key, value FROM kv");
  assertSameAsRef(db, "SELECT key FROM %s ORDER BY key");
  assertSameAsRef(db, "SELECT key FROM %s WHERE key < 'b' ORDER BY key");
  assertSameAsRef(db, "SELECT key FROM %s WHERE key > 'a' ORDER BY key");
  assertSameAsRef(db, "SELECT key FROM %s WHERE key BETWEEN 'a' AND 'c' "
                      "ORDER BY key DESC");
  sqlite3_close(db);
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_update_or_replace_chain, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_delete_insert_new_rowid, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_drop_commit_fails, setup, teardown),
    cmocka_unit_test_setup_teardown(test_drop_then_create_same_name, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_drop_missing_store, setup, teardown),
    cmocka_unit_test_setup_teardown(test_crafted_drop, setup, teardown),
    cmocka_unit_test_setup_teardown(test_crafted_select_writes_nothing, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_options_of_open_store, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_memdb_default_path, setup, teardown),
    cmocka_unit_test_setup_teardown(test_check_constraint_compact, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_affinity_text_arguments, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_in_near_key_limit, setup, teardown),
    cmocka_unit_test_setup_teardown(test_application_like_glob, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_utf16_keys, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
