/*
** An application using tinkv through plain SQL from C.
**
**   cc -o example example.c -lsqlite3
**   ./example app.db build/tinkv
**
** It keeps user sessions in a tinkv table beside app.db: writes them in a
** transaction with a prepared statement, looks one up, lists a key range,
** updates, deletes, and prints what it sees.  tests/sql.sh runs it and
** compares the output with expected.txt (example.py prints the same).
*/
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

/* Print the error of db and stop. */
static void die(sqlite3 *db, const char *zWhat){
  fprintf(stderr, "%s: %s\n", zWhat, sqlite3_errmsg(db));
  sqlite3_close(db);
  exit(1);
}

static void exec(sqlite3 *db, const char *zSql){
  char *zErr = 0;
  if( sqlite3_exec(db, zSql, 0, 0, &zErr)!=SQLITE_OK ){
    fprintf(stderr, "%s: %s\n", zSql, zErr);
    sqlite3_free(zErr);
    sqlite3_close(db);
    exit(1);
  }
}

/* Print every row of a query as "col|col". */
static void show(sqlite3 *db, const char *zSql){
  sqlite3_stmt *pStmt;
  if( sqlite3_prepare_v2(db, zSql, -1, &pStmt, 0)!=SQLITE_OK ) die(db, zSql);
  while( sqlite3_step(pStmt)==SQLITE_ROW ){
    int i;
    for(i=0; i<sqlite3_column_count(pStmt); i++){
      const unsigned char *z = sqlite3_column_text(pStmt, i);
      printf("%s%s", i ? "|" : "", z ? (const char*)z : "NULL");
    }
    printf("\n");
  }
  if( sqlite3_finalize(pStmt)!=SQLITE_OK ) die(db, zSql);
}

int main(int argc, char **argv){
  static const char *const azUser[] = { "ada", "brian", "claude" };
  sqlite3 *db;
  sqlite3_stmt *pStmt;
  char *zErr = 0;
  int i;

  if( argc!=3 ){
    fprintf(stderr, "usage: %s DATABASE EXTENSION\n", argv[0]);
    return 2;
  }
  if( sqlite3_open(argv[1], &db)!=SQLITE_OK ) die(db, argv[1]);
  /* Enable extension loading for the C API only (not the SQL function). */
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, (int*)0);
  if( sqlite3_load_extension(db, argv[2], 0, &zErr)!=SQLITE_OK ){
    fprintf(stderr, "load %s: %s\n", argv[2], zErr);
    sqlite3_free(zErr);
    sqlite3_close(db);
    return 1;
  }

  exec(db, "CREATE VIRTUAL TABLE IF NOT EXISTS sessions USING tinkv");

  /* Write three sessions in one transaction. */
  exec(db, "BEGIN");
  if( sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO sessions VALUES(?, ?)",
                         -1, &pStmt, 0)!=SQLITE_OK ) die(db, "prepare");
  for(i=0; i<3; i++){
    char zKey[32];
    snprintf(zKey, sizeof zKey, "session:%d", 100+i);
    sqlite3_bind_text(pStmt, 1, zKey, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(pStmt, 2, azUser[i], -1, SQLITE_STATIC);
    if( sqlite3_step(pStmt)!=SQLITE_DONE ) die(db, "insert");
    sqlite3_reset(pStmt);
  }
  sqlite3_finalize(pStmt);
  exec(db, "INSERT OR REPLACE INTO sessions VALUES('hits', 0)");
  exec(db, "COMMIT");

  /* A point lookup with a bound key. */
  if( sqlite3_prepare_v2(db, "SELECT value FROM sessions WHERE key = ?",
                         -1, &pStmt, 0)!=SQLITE_OK ) die(db, "prepare");
  sqlite3_bind_text(pStmt, 1, "session:101", -1, SQLITE_STATIC);
  if( sqlite3_step(pStmt)==SQLITE_ROW ){
    printf("session:101 belongs to %s\n", sqlite3_column_text(pStmt, 0));
  }
  sqlite3_finalize(pStmt);

  exec(db, "UPDATE sessions SET value = value + 3 WHERE key = 'hits'");
  exec(db, "DELETE FROM sessions WHERE key = 'session:100'");
  show(db, "SELECT key, value FROM sessions "
           "WHERE key >= 'session:' AND key < 'session;' ORDER BY key");
  show(db, "SELECT 'hits', value, typeof(value) FROM sessions "
           "WHERE key = 'hits'");
  show(db, "SELECT 'keys', json_extract(tinkv_stats('sessions'), '$.keys')");
  sqlite3_close(db);
  return 0;
}
