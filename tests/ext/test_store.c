/*
** Tests of the extension around its store: options and their errors,
** default and private paths, xConnect never creating anything, DROP TABLE,
** ALTER TABLE RENAME, the SQL functions, SQLITE_DIRECTONLY, another process
** sharing the store, and corruption.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"

static int setup(void **state){
  return fx_setup(state, "store", 0);
}

static int teardown(void **state){
  return fx_teardown(state);
}

static int isDir(const char *z){
  struct stat st;
  return stat(z, &st)==0 && S_ISDIR(st.st_mode);
}

/* Every option mistake is refused with a message naming it. */
static void test_option_errors(void **state){
  Fixture *f = *state;
  static const struct { const char *zArgs; const char *zMsg; } a[] = {
    { "path='%s/a', colour=blue",         "unknown option 'colour'" },
    { "path='%s/a', sync=sometimes",      "sync must be 'full', 'normal' or 'off'" },
    { "path='%s/a', max_file_size=0",     "max_file_size must be a positive" },
    { "path='%s/a', max_file_size=-5",    "max_file_size must be a positive" },
    { "path='%s/a', max_file_size='12abc'", "max_file_size must be a positive" },
    { "path='%s/a', max_file_size=12 MB x", "max_file_size must be a positive" },
    { "path='%s/a', max_file_size=100",   "max_file_size must be between" },
    { "path='%s/a', max_file_size='9GiB'",  "max_file_size must be between" },
    { "path='%s/a', compact_threshold=0", "compact_threshold must be a positive" },
    { "path='%s/a', compact_threshold=x", "compact_threshold must be a positive" },
    { "path='%s/a', sync=full, sync=off", "option 'sync' given more than once" },
    { "'%s/a', path='/tmp/x'",            "option 'path' given more than once" },
    { "sync=full, '%s/a'",                "is not of the form name=value" },
    { "path=''",                          "must not be empty" },
    { "path='%s/missing/a'",              "parent directory" },
    { "path='%s/file'",                   "is not a directory" },
  };
  size_t i;
  FILE *fp;
  char zFile[4200];
  snprintf(zFile, sizeof zFile, "%s/file", f->zDir);
  fp = fopen(zFile, "w");
  assert_non_null(fp);
  fclose(fp);
  for(i=0; i<sizeof(a)/sizeof(a[0]); i++){
    char zArgs[8400];
    snprintf(zArgs, sizeof zArgs, a[i].zArgs, f->zDir);
    sh_fails(f->db, SQLITE_ERROR, a[i].zMsg,
             "CREATE VIRTUAL TABLE t USING tinkv(%s)", zArgs);
  }
  assert_false(isDir(tu_path(f->zDir, "a")));
}

/* Quoted and unquoted values, size suffixes, every sync mode. */
static void test_options_accepted(void **state){
  Fixture *f = *state;
  sh_exec(f->db, "CREATE VIRTUAL TABLE t1 USING tinkv(path='%q/t1', "
          "sync=normal, max_file_size=64 KiB, compact_threshold='1MiB')",
          f->zDir);
  sh_exec(f->db, "CREATE VIRTUAL TABLE t2 USING tinkv(\"%q/t2\", sync='OFF',"
          " max_file_size=\"1048576\", compact_threshold='10K')", f->zDir);
  sh_exec(f->db, "CREATE VIRTUAL TABLE t3 USING tinkv( path = [%q/t3] , "
          "sync = full )", f->zDir);
  sh_exec(f->db, "INSERT INTO t1 VALUES(1, 1); INSERT INTO t2 VALUES(2, 2); "
          "INSERT INTO t3 VALUES(3, 3)");
  sh_assert_query(f->db, "1|2|3", "SELECT (SELECT key FROM t1), "
                  "(SELECT key FROM t2), (SELECT key FROM t3)");
  assert_true(isDir(tu_path(f->zDir, "t1")));
  assert_true(isDir(tu_path(f->zDir, "t2")));
}

/* Without a path the store sits beside the database file, and a new
** connection (xConnect) finds it again. */
static void test_default_path(void **state){
  Fixture *f = *state;
  char zDb[4200], zStore[4300];
  sqlite3 *db;
  snprintf(zDb, sizeof zDb, "%s/app.db", f->zDir);
  snprintf(zStore, sizeof zStore, "%s/app.db-kv.tinkv", f->zDir);
  db = sh_open(zDb);
  sh_exec(db, "CREATE VIRTUAL TABLE kv USING tinkv");
  sh_exec(db, "INSERT INTO kv VALUES('a', 1)");
  sqlite3_close(db);
  assert_true(isDir(zStore));
  db = sh_open(zDb);
  sh_assert_query(db, "a|1", "SELECT * FROM kv");
  sh_assert_query(db, "1", "SELECT json_extract(tinkv_stats('kv'), '$.keys')");
  sqlite3_close(db);
  /* Attached databases get their own default store. */
  db = sh_open(":memory:");
  sh_exec(db, "ATTACH '%q/other.db' AS other", f->zDir);
  sh_exec(db, "CREATE VIRTUAL TABLE other.kv USING tinkv");
  sh_exec(db, "INSERT INTO other.kv VALUES('b', 2)");
  sh_assert_query(db, "b|2", "SELECT * FROM other.kv");
  sqlite3_close(db);
  assert_true(isDir(tu_path(f->zDir, "other.db-kv.tinkv")));
}

/* Count the entries of directory zDir whose name starts with zPrefix. */
static int countEntries(const char *zDir, const char *zPrefix){
  DIR *d = opendir(zDir);
  struct dirent *de;
  int n = 0;
  if( d==0 ) return -1;
  while( (de = readdir(d))!=0 ){
    if( strncmp(de->d_name, zPrefix, strlen(zPrefix))==0 ) n++;
  }
  closedir(d);
  return n;
}

/* An in-memory database keeps its stores in private temporary directories,
** removed when the connection closes. */
static void test_memory_private_store(void **state){
  Fixture *f = *state;
  char zOld[4096];
  const char *zTmp = getenv("TMPDIR");
  sqlite3 *db;
  snprintf(zOld, sizeof zOld, "%s", zTmp ? zTmp : "");
  setenv("TMPDIR", f->zDir, 1);
  db = sh_open(":memory:");
  sh_exec(db, "CREATE VIRTUAL TABLE kv USING tinkv; "
          "CREATE VIRTUAL TABLE temp.t2 USING tinkv");
  sh_exec(db, "INSERT INTO kv VALUES(1, 1); INSERT INTO t2 VALUES(2, 2)");
  assert_int_equal(countEntries(f->zDir, "tinkv-"), 2);
  /* A schema reset disconnects and reconnects the tables. */
  sh_exec(db, "ATTACH ':memory:' AS aux; DETACH aux");
  sh_assert_query(db, "1|2", "SELECT (SELECT key FROM kv), (SELECT key FROM t2)");
  sh_exec(db, "DROP TABLE t2");
  assert_int_equal(countEntries(f->zDir, "tinkv-"), 1);
  sqlite3_close(db);
  assert_int_equal(countEntries(f->zDir, "tinkv-"), 0);
  if( zTmp ) setenv("TMPDIR", zOld, 1); else unsetenv("TMPDIR");
}

/* xConnect never creates a store: a missing or foreign directory is an
** error, and nothing is written. */
static void test_connect_never_creates(void **state){
  Fixture *f = *state;
  char zDb[4200], zStore[4300], zCmd[9000];
  sqlite3 *db;
  snprintf(zDb, sizeof zDb, "%s/c.db", f->zDir);
  snprintf(zStore, sizeof zStore, "%s/store", f->zDir);
  db = sh_open(zDb);
  sh_exec(db, "CREATE VIRTUAL TABLE kv USING tinkv('%q')", zStore);
  sh_exec(db, "INSERT INTO kv VALUES(1, 1)");
  sqlite3_close(db);
  tu_rmrf(zStore);
  db = sh_open(zDb);
  sh_fails(db, SQLITE_CANTOPEN, "no store at", "SELECT * FROM kv");
  assert_false(isDir(zStore));
  /* A directory that is not a store is refused, not written into. */
  assert_int_equal(mkdir(zStore, 0777), 0);
  snprintf(zCmd, sizeof zCmd, "%s/notes.txt", zStore);
  fclose(fopen(zCmd, "w"));
  sh_fails(db, SQLITE_CANTOPEN, "holds no tinkv store", "SELECT * FROM kv");
  assert_int_equal(countEntries(zStore, ""), 3);      /* ".", "..", notes */
  sqlite3_close(db);
  /* CREATE refuses a non-empty directory that is not a store, too. */
  sh_fails(f->db, SQLITE_ERROR, "holds no tinkv store",
           "CREATE VIRTUAL TABLE kv USING tinkv('%q')", zStore);
}

/* DROP TABLE removes the store; inside a transaction it is refused. */
static void test_drop(void **state){
  Fixture *f = *state;
  const char *zStore = tu_path(f->zDir, "d");
  char zKeep[4200];
  snprintf(zKeep, sizeof zKeep, "%s", zStore);
  sh_exec(f->db, "CREATE VIRTUAL TABLE d USING tinkv('%q')", zKeep);
  sh_exec(f->db, "INSERT INTO d VALUES(1, 1)");
  sh_fails(f->db, SQLITE_LOCKED, "locked", "BEGIN; DROP TABLE d");
  sh_exec(f->db, "ROLLBACK");
  sh_fails(f->db, SQLITE_LOCKED, "locked", "SAVEPOINT a; DROP TABLE d");
  sh_exec(f->db, "ROLLBACK TO a; RELEASE a");
  sh_assert_query(f->db, "1|1", "SELECT * FROM d");
  assert_true(isDir(zKeep));
  sh_exec(f->db, "DROP TABLE d");
  assert_false(isDir(zKeep));
  sh_fails(f->db, SQLITE_ERROR, "no such table", "SELECT * FROM d");
}

/* DROP TABLE is refused while another connection has the store open; the
** table keeps working. */
static void test_drop_while_open_elsewhere(void **state){
  Fixture *f = *state;
  sqlite3 *db2 = sh_open(":memory:");
  sh_exec(f->db, "CREATE VIRTUAL TABLE d USING tinkv('%q/d')", f->zDir);
  sh_exec(db2, "CREATE VIRTUAL TABLE d USING tinkv('%q/d')", f->zDir);
  sh_exec(f->db, "INSERT INTO d VALUES(1, 1)");
  sh_fails(f->db, SQLITE_LOCKED, "locked", "DROP TABLE d");
  sh_exec(f->db, "INSERT INTO d VALUES(2, 2)");
  sh_assert_query(db2, "1|1\n2|2", "SELECT * FROM d");
  sqlite3_close(db2);
  sh_exec(f->db, "DROP TABLE d");
  assert_false(isDir(tu_path(f->zDir, "d")));
}

/* Tables on the default path cannot be renamed; others can. */
static void test_rename(void **state){
  Fixture *f = *state;
  char zDb[4200];
  sqlite3 *db;
  snprintf(zDb, sizeof zDb, "%s/r.db", f->zDir);
  db = sh_open(zDb);
  sh_exec(db, "CREATE VIRTUAL TABLE a USING tinkv; "
          "CREATE VIRTUAL TABLE b USING tinkv('%q/b')", f->zDir);
  sh_fails(db, SQLITE_ERROR, "cannot rename", "ALTER TABLE a RENAME TO a2");
  sh_exec(db, "INSERT INTO b VALUES(1, 1); ALTER TABLE b RENAME TO b2");
  sh_fails(db, SQLITE_CONSTRAINT, "UNIQUE constraint failed: b2.key",
           "INSERT INTO b2 VALUES(1, 1)");
  sh_assert_query(db, "1", "SELECT json_extract(tinkv_stats('b2'), '$.keys')");
  sqlite3_close(db);
}

/* tinkv_compact, tinkv_stats and tinkv_version. */
static void test_functions(void **state){
  Fixture *f = *state;
  const char *z;
  int i;
  sh_exec(f->db, "CREATE VIRTUAL TABLE kv USING tinkv('%q/kv')", f->zDir);
  sh_exec(f->db, "CREATE TABLE plain(x); CREATE VIEW v AS SELECT 1");
  for(i=0; i<50; i++) sh_exec(f->db, "REPLACE INTO kv VALUES(1, %d)", i);
  z = sh_query(f->db, "SELECT tinkv_stats('kv')");
  assert_non_null(strstr(z, "\"keys\":1"));
  assert_non_null(strstr(z, "\"live_bytes\":"));
  assert_non_null(strstr(z, "\"stale_bytes\":"));
  assert_non_null(strstr(z, "\"files\":"));
  assert_non_null(strstr(z, "\"disk_bytes\":"));
  assert_non_null(strstr(z, "\"compactions\":0"));
  sh_assert_query(f->db, "1", "SELECT json_valid(tinkv_stats('kv'))");
  sh_assert_query(f->db, "1", "SELECT tinkv_compact('kv') > 0");
  sh_assert_query(f->db, "1", "SELECT json_extract(tinkv_stats('main.kv'), "
                  "'$.compactions')");
  sh_assert_query(f->db, "1|49", "SELECT * FROM kv");
  sh_fails(f->db, SQLITE_ERROR, "no such table: nope",
           "SELECT tinkv_compact('nope')");
  sh_fails(f->db, SQLITE_ERROR, "'plain' is not a tinkv table",
           "SELECT tinkv_stats('plain')");
  sh_fails(f->db, SQLITE_ERROR, "'v' is not a tinkv table",
           "SELECT tinkv_stats('v')");
  sh_fails(f->db, SQLITE_ERROR, "no such table: aux.kv",
           "SELECT tinkv_stats('aux.kv')");
  sh_fails(f->db, SQLITE_LOCKED, "cursor",
           "SELECT tinkv_compact('kv') FROM kv");
  sh_exec(f->db, "BEGIN; INSERT INTO kv VALUES(2, 2)");
  sh_fails(f->db, SQLITE_LOCKED, "write transaction",
           "SELECT tinkv_compact('kv')");
  sh_exec(f->db, "COMMIT");
  /* temp and attached schemas; an unqualified name finds temp first. */
  sh_exec(f->db, "ATTACH ':memory:' AS aux");
  sh_exec(f->db, "CREATE VIRTUAL TABLE aux.kv USING tinkv('%q/aux')", f->zDir);
  sh_exec(f->db, "CREATE VIRTUAL TABLE temp.kv USING tinkv('%q/tmp')", f->zDir);
  sh_exec(f->db, "INSERT INTO aux.kv VALUES(1,1),(2,2),(3,3)");
  sh_assert_query(f->db, "0|2|3", "SELECT json_extract(tinkv_stats('kv'), "
                  "'$.keys'), json_extract(tinkv_stats('main.kv'), '$.keys'), "
                  "json_extract(tinkv_stats('AUX.KV'), '$.keys')");
  sh_assert_query(f->db, "0", "SELECT tinkv_compact('temp.kv')");
  z = sh_query(f->db, "SELECT tinkv_version()");
  assert_non_null(strstr(z, "0."));
}

/* A fresh connection finds a table by name before it ever used it. */
static void test_functions_fresh_connection(void **state){
  Fixture *f = *state;
  char zDb[4200];
  sqlite3 *db;
  snprintf(zDb, sizeof zDb, "%s/fresh.db", f->zDir);
  db = sh_open(zDb);
  sh_exec(db, "CREATE VIRTUAL TABLE kv USING tinkv; INSERT INTO kv "
          "VALUES(1, 1), (2, 2)");
  sqlite3_close(db);
  db = sh_open(zDb);
  sh_assert_query(db, "2", "SELECT json_extract(tinkv_stats('kv'), '$.keys')");
  sqlite3_close(db);
}

/* A schema from someone else cannot use the table or compact it. */
static void test_directonly(void **state){
  Fixture *f = *state;
  sh_exec(f->db, "CREATE VIRTUAL TABLE kv USING tinkv('%q/kv')", f->zDir);
  sh_exec(f->db, "CREATE VIEW v AS SELECT * FROM kv; "
          "CREATE VIEW vc AS SELECT tinkv_compact('kv'); "
          "CREATE TABLE log(x); CREATE TRIGGER tr AFTER INSERT ON log BEGIN "
          "SELECT tinkv_compact('kv'); END;");
  sh_fails(f->db, SQLITE_ERROR, "unsafe use of virtual table", "SELECT * FROM v");
  sh_fails(f->db, SQLITE_ERROR, "unsafe use of tinkv_compact",
           "SELECT * FROM vc");
  sh_fails(f->db, SQLITE_ERROR, "unsafe use of tinkv_compact",
           "INSERT INTO log VALUES(1)");
}

/* Another process that has the store open does not keep this one out:
** both open it, and this one reads what was committed. */
static void test_shared_with_other_process(void **state){
  Fixture *f = *state;
  int up[2], down[2];                /* child -> parent, parent -> child */
  pid_t pid;
  char c = 0;
  sh_exec(f->db, "CREATE VIRTUAL TABLE kv USING tinkv('%q/kv')", f->zDir);
  sh_exec(f->db, "INSERT INTO kv VALUES(1, 1)");
  sqlite3_close(f->db);
  f->db = 0;
  assert_int_equal(pipe(up), 0);
  assert_int_equal(pipe(down), 0);
  pid = fork();
  assert_true(pid>=0);
  if( pid==0 ){
    sqlite3 *db = 0;
    char zSql[4300];
    alarm(30);                                 /* never outlive the test */
    close(up[0]);
    close(down[1]);
    sqlite3_open(":memory:", &db);
    sqlite3_enable_load_extension(db, 1);
    sqlite3_load_extension(db, getenv("TINKV_SO"), 0, 0);
    snprintf(zSql, sizeof zSql, "CREATE VIRTUAL TABLE kv USING tinkv('%s/kv')",
             f->zDir);
    c = sqlite3_exec(db, zSql, 0, 0, 0)==SQLITE_OK ? 'y' : 'n';
    if( write(up[1], &c, 1)!=1 ) _exit(2);
    if( read(down[0], &c, 1)!=1 ) _exit(2);   /* the parent says when */
    sqlite3_close(db);
    _exit(0);
  }
  close(up[1]);
  close(down[0]);
  if( read(up[0], &c, 1)!=1 ) c = 0;
  if( c=='y' ){
    sqlite3 *db = sh_open(":memory:");
    char *zErr = 0;
    char *zSql = sqlite3_mprintf("CREATE VIRTUAL TABLE kv USING "
                                 "tinkv('%q/kv')", f->zDir);
    int rc = sqlite3_exec(db, zSql, 0, 0, &zErr);
    if( rc!=SQLITE_OK ){
      fprintf(stderr, "expected the store shared, got %d: %s\n", rc,
              zErr ? zErr : "(none)");
      c = 'n';
    }else{
      sh_assert_query(db, "1|1", "SELECT * FROM kv");
    }
    sqlite3_free(zErr);
    sqlite3_free(zSql);
    sqlite3_close(db);
  }
  if( write(down[1], "x", 1)!=1 ) c = 0;
  waitpid(pid, 0, 0);
  close(up[0]);
  close(down[1]);
  assert_int_equal(c, 'y');
  if( f->db==0 ) f->db = sh_open(":memory:");
  sh_exec(f->db, "CREATE VIRTUAL TABLE kv USING tinkv('%q/kv')", f->zDir);
  sh_assert_query(f->db, "1|1", "SELECT * FROM kv");
}

/* Find the first occurrence of n bytes of c in a file; -1 if none. */
static long long findRun(const char *zFile, char c, int n){
  FILE *fp = fopen(zFile, "rb");
  long long off = 0, runStart = -1;
  int run = 0, ch;
  if( fp==0 ) return -1;
  while( (ch = fgetc(fp))!=EOF ){
    if( ch==c ){
      if( run++==0 ) runStart = off;
      if( run==n ){ fclose(fp); return runStart; }
    }else{
      run = 0;
    }
    off++;
  }
  fclose(fp);
  return -1;
}

/* Flip a byte in the middle of the first run of 500 'Z' in the files of
** store zStore. */
static void damageValue(const char *zStore){
  char zFile[8400];
  DIR *d = opendir(zStore);
  struct dirent *de;
  long long off = -1;
  assert_non_null(d);
  while( off<0 && (de = readdir(d))!=0 ){
    snprintf(zFile, sizeof zFile, "%s/%s", zStore, de->d_name);
    off = findRun(zFile, 'Z', 500);
  }
  closedir(d);
  assert_true(off>=0);
  assert_int_equal(tu_flip_byte(zFile, off+250, 0x01), 0);
}

/*
** A damaged value is SQLITE_CORRUPT_VTAB naming the file and offset: when
** it is read, or when the store is opened if opening reads it.  Counting
** and reading keys never read values, so they still work.
*/
static void test_corrupt_value(void **state){
  Fixture *f = *state;
  char zStore[4200];
  snprintf(zStore, sizeof zStore, "%s/kv", f->zDir);
  sh_exec(f->db, "CREATE VIRTUAL TABLE kv USING tinkv('%q')", zStore);
  sh_exec(f->db, "INSERT INTO kv VALUES('a', 'fine'), "
          "('b', printf('%%.500c', 'Z')), ('c', 'fine')");
  /* After a compaction the store opens from hint files, without reading
  ** the values. */
  sh_exec(f->db, "REPLACE INTO kv VALUES('a', 'fine')");
  sh_exec(f->db, "SELECT tinkv_compact('kv')");
  sqlite3_close(f->db);
  f->db = 0;
  damageValue(zStore);
  f->db = sh_open(":memory:");
  sh_exec(f->db, "CREATE VIRTUAL TABLE kv USING tinkv('%q')", zStore);
  sh_assert_query(f->db, "3", "SELECT count(*) FROM kv");
  sh_assert_query(f->db, "a\nb\nc", "SELECT key FROM kv");
  sh_assert_query(f->db, "fine", "SELECT value FROM kv WHERE key = 'c'");
  sh_fails(f->db, SQLITE_CORRUPT_VTAB, ".seg at offset",
           "SELECT value FROM kv WHERE key = 'b'");
  sh_fails(f->db, SQLITE_CORRUPT_VTAB, "checksum",
           "SELECT length(value) FROM kv");
  sh_exec(f->db, "DROP TABLE kv");       /* adopted: the files stay */
  tu_rmrf(zStore);

  /* Without hint files, opening the store reads and checks every record. */
  sh_exec(f->db, "CREATE VIRTUAL TABLE kv USING tinkv('%q')", zStore);
  sh_exec(f->db, "INSERT INTO kv VALUES('b', printf('%%.500c', 'Z'))");
  sqlite3_close(f->db);
  f->db = 0;
  damageValue(zStore);
  f->db = sh_open(":memory:");
  sh_fails(f->db, SQLITE_CORRUPT_VTAB, ".seg at offset",
           "CREATE VIRTUAL TABLE kv USING tinkv('%q')", zStore);
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_option_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_options_accepted, setup, teardown),
    cmocka_unit_test_setup_teardown(test_default_path, setup, teardown),
    cmocka_unit_test_setup_teardown(test_memory_private_store, setup, teardown),
    cmocka_unit_test_setup_teardown(test_connect_never_creates, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_drop, setup, teardown),
    cmocka_unit_test_setup_teardown(test_drop_while_open_elsewhere, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_rename, setup, teardown),
    cmocka_unit_test_setup_teardown(test_functions, setup, teardown),
    cmocka_unit_test_setup_teardown(test_functions_fresh_connection, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_directonly, setup, teardown),
    cmocka_unit_test_setup_teardown(test_shared_with_other_process, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_corrupt_value, setup, teardown),
  };
  return cmocka_run_group_tests(tests, 0, 0);
}
