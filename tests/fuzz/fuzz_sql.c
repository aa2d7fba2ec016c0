/*
** libFuzzer target: SQL statement sequences run against a tinkv table and
** a native table of the same shape, results compared.
**
** Each input byte pair is one statement (op, argument) applied to both
** tables t (tinkv) and n (CREATE TABLE n(key PRIMARY KEY NOT NULL, value)):
** inserts in every conflict mode, updates of values and keys, point and
** range deletes, transactions and savepoints (which cover both), range
** queries, counts, and tinkv_compact.  Keys are integers, reals (1.0 is
** the key 1), texts and blobs; values are of every type.  Each statement
** must succeed or fail on both tables alike and return the same rows.  At
** the end the connection is closed and a new one must see the same rows.
*/
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static char dir[256], dbfile[300];

/* SQL text of a key chosen by b. */
static void key_sql(uint8_t b, char *out, size_t n){
  int v = (b >> 2) % 8;
  switch( b % 4 ){
    case 0: snprintf(out, n, "%d", v - 2); break;
    case 1: snprintf(out, n, "'k%d'", v); break;
    case 2: snprintf(out, n, "x'0%d'", v); break;
    default: snprintf(out, n, "%d.%d", v / 2 - 1, (v % 2) * 5); break;
  }
}

/* SQL text of a value chosen by b. */
static void val_sql(uint8_t b, char *out, size_t n){
  switch( b % 5 ){
    case 0: snprintf(out, n, "%d", b); break;
    case 1: snprintf(out, n, "'v%d'", b); break;
    case 2: snprintf(out, n, "NULL"); break;
    case 3: snprintf(out, n, "%d.25", b); break;
    default: snprintf(out, n, "zeroblob(%d)", b % 7); break;
  }
}

/* Run sql on db; the rows as text in *out (sqlite3_free'd by the caller).
** Returns the SQLite result code. */
static int run(sqlite3 *db, const char *sql, char **out){
  sqlite3_stmt *st = NULL;
  sqlite3_str *s = sqlite3_str_new(db);
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  while( rc==SQLITE_OK && sqlite3_step(st)==SQLITE_ROW ){
    for(int i=0; i<sqlite3_column_count(st); i++){
      sqlite3_str_appendf(s, "%s%s:%Q", i ? "|" : "",
                          sqlite3_column_type(st, i)==SQLITE_BLOB ? "b" : "",
                          (const char*)sqlite3_column_text(st, i));
    }
    sqlite3_str_appendchar(s, 1, '\n');
  }
  if( rc==SQLITE_OK ) rc = sqlite3_finalize(st);
  else sqlite3_finalize(st);
  if( rc!=SQLITE_OK ) sqlite3_str_appendf(s, "error: %s", sqlite3_errmsg(db));
  *out = sqlite3_str_finish(s);
  return rc;
}

/* Run a statement template (%s = table) on both tables and compare. */
static void both(sqlite3 *db, const char *tmpl, const char *a,
                 const char *b){
  char sql[512], *r1 = NULL, *r2 = NULL;
  int rc1, rc2;
  snprintf(sql, sizeof sql, tmpl, "t", a, b);
  rc1 = run(db, sql, &r1);
  snprintf(sql, sizeof sql, tmpl, "n", a, b);
  rc2 = run(db, sql, &r2);
  if( (rc1==SQLITE_OK)!=(rc2==SQLITE_OK)
   || (rc1==SQLITE_OK && strcmp(r1 ? r1 : "", r2 ? r2 : "")) ){
    fprintf(stderr, "differ: %s\n tinkv (%d): %s\n native (%d): %s\n", sql,
            rc1, r1 ? r1 : "", rc2, r2 ? r2 : "");
    abort();
  }
  sqlite3_free(r1);
  sqlite3_free(r2);
}

/* The extension is linked in (a dlclose'd instrumented library would
** confuse the fuzzer) and registered for every connection. */
int sqlite3_tinkv_init(sqlite3 *db, char **pzErr,
                       const void *pApi);

/* Open the database with the extension registered. */
static sqlite3 *open_db(void){
  sqlite3 *db = NULL;
  if( sqlite3_open(dbfile, &db) ) abort();
  return db;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size){
  static const char *tx[] = { "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT s",
                              "ROLLBACK TO s", "RELEASE s" };
  sqlite3 *db;
  char sql[600];
  if( !dir[0] ){
    const char *base = access("/dev/shm", W_OK)==0 ? "/dev/shm" : "/tmp";
    sqlite3_auto_extension((void (*)(void))sqlite3_tinkv_init);
    snprintf(dir, sizeof dir, "%s/tinkv-fuzz-sql-%d", base, (int)getpid());
    snprintf(dbfile, sizeof dbfile, "%s.db", dir);
  }
  if( size>400 ) size = 400;
  tu_rmrf(dir);
  unlink(dbfile);
  db = open_db();
  snprintf(sql, sizeof sql, "CREATE VIRTUAL TABLE t USING tinkv(path='%s', "
           "sync=off, max_file_size=4096, compact_threshold=2000);"
           "CREATE TABLE n(key PRIMARY KEY NOT NULL, value);", dir);
  if( sqlite3_exec(db, sql, NULL, NULL, NULL) ) abort();
  for(size_t i=0; i+1<size; i+=2){
    char k[32], k2[32], v[32];
    uint8_t op = data[i], arg = data[i+1];
    key_sql(arg, k, sizeof k);
    key_sql((uint8_t)(arg * 7 + 3), k2, sizeof k2);
    val_sql((uint8_t)(arg ^ op), v, sizeof v);
    switch( op % 16 ){
      case 0: both(db, "INSERT OR REPLACE INTO %s VALUES(%s, %s)", k, v); break;
      case 1: both(db, "INSERT INTO %s VALUES(%s, %s)", k, v); break;
      case 2: both(db, "INSERT OR IGNORE INTO %s VALUES(%s, %s)", k, v); break;
      case 3: both(db, "DELETE FROM %s WHERE key=%s%s", k, ""); break;
      case 4: both(db, "UPDATE %s SET value=%s WHERE key=%s", v, k); break;
      case 5: both(db, "UPDATE OR REPLACE %s SET key=%s WHERE key=%s", k2, k); break;
      case 6: both(db, "DELETE FROM %s WHERE key>%s AND key<=%s", k, k2); break;
      case 7: both(db, "SELECT key, value FROM %s WHERE key>=%s ORDER BY key "
                   "LIMIT 4%s", k, ""); break;
      case 8: both(db, "SELECT key, value FROM %s WHERE key<%s ORDER BY key "
                   "DESC%s", k, ""); break;
      case 9: both(db, "SELECT count(*), sum(length(value)) FROM %s%s%s", "", ""); break;
      case 10: both(db, "SELECT value FROM %s WHERE key IN (%s, %s)", k, k2); break;
      case 11: both(db, "UPDATE %s SET value=value||%s WHERE key>=%s", v, k); break;
      case 12: sqlite3_exec(db, "SELECT tinkv_compact('t')", NULL, NULL, NULL); break;
      default: sqlite3_exec(db, tx[arg % 6], NULL, NULL, NULL); break;
    }
  }
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  both(db, "SELECT key, value FROM %s ORDER BY key%s%s", "", "");
  if( sqlite3_close(db) ) abort();
  db = open_db();
  both(db, "SELECT key, value FROM %s ORDER BY key%s%s", "", "");
  sqlite3_close(db);
  return 0;
}
