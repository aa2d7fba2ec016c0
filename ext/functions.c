/*
** SQL functions of the extension:
**
**   tinkv_compact(name)   compact the store of tinkv table `name` now and
**                         return the bytes of disk space reclaimed
**   tinkv_stats(name)     a JSON object describing the store
**   tinkv_version()       the extension's and store format's version
**   tinkv_check(name)     check every record and hint file of the store:
**                         'ok', or one line per problem (file, offset, what)
**   tinkv_backup(name, dir [, 'incremental'])
**                         an online copy of the store as of its last commit
**                         into dir; a JSON object saying what was copied
**
** `name` is a table of the calling connection: "kv" (resolved like SQLite
** resolves an unqualified name: temp, main, then attached databases) or
** "schema.kv".  tinkv_compact and tinkv_stats are SQLITE_DIRECTONLY: they
** act on files outside the database, so a schema from someone else (a view
** or trigger) must not be able to call them.  SQLite 3.40 does not enforce
** the flag for CHECK constraints, which run inside the INSERT or UPDATE that
** writes their table, so a function with side effects also refuses to run
** while any statement of the connection that writes is running
** (tinkvSideEffectsAllowed): it runs from a statement of its own, such as
** SELECT tinkv_compact('kv').
*/
#include "tinkvInt.h"

#include <string.h>

/*
** True if a function with side effects (on files outside the database) may
** run now: no statement of the connection that writes is running.  Else
** sets the error on ctx.  See the header comment.
*/
int tinkvSideEffectsAllowed(sqlite3_context *ctx, const char *zFunc){
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  sqlite3_stmt *pStmt;
  for(pStmt=sqlite3_next_stmt(db, 0); pStmt; pStmt=sqlite3_next_stmt(db, pStmt)){
    if( sqlite3_stmt_busy(pStmt) && !sqlite3_stmt_readonly(pStmt) ){
      char *zErr = sqlite3_mprintf("tinkv: %s() runs only from a statement "
          "that writes nothing, such as SELECT %s(...); it is refused inside "
          "INSERT, UPDATE, DELETE and the CHECK constraints they run", zFunc,
          zFunc);
      sqlite3_result_error(ctx, zErr ? zErr : "tinkv: refused", -1);
      sqlite3_result_error_code(ctx, SQLITE_AUTH);
      sqlite3_free(zErr);
      return 0;
    }
  }
  return 1;
}

/* Find the table named by argv[0], or set an error on ctx. */
static TinkvTable *tableArgument(sqlite3_context *ctx, sqlite3_value *pArg){
  TinkvConn *pConn = (TinkvConn*)sqlite3_user_data(ctx);
  TinkvTable *pTab = 0;
  char *zErr = 0;
  int rc;
  if( sqlite3_value_type(pArg)!=SQLITE_TEXT
   && sqlite3_value_type(pArg)!=SQLITE_NULL ){
    sqlite3_result_error(ctx, "tinkv: the argument must be a table name "
                         "(TEXT), such as 'kv' or 'main.kv'", -1);
    return 0;
  }
  rc = tinkvFindTable(pConn, (const char*)sqlite3_value_text(pArg),
                      &pTab, &zErr);
  if( rc!=SQLITE_OK ){
    if( rc==SQLITE_NOMEM ){
      sqlite3_result_error_nomem(ctx);
    }else{
      sqlite3_result_error(ctx, zErr ? zErr : "tinkv: table lookup failed", -1);
      sqlite3_result_error_code(ctx, rc);
    }
    sqlite3_free(zErr);
    return 0;
  }
  rc = tinkvTableReady(pTab);
  if( rc!=SQLITE_OK ){
    sqlite3_result_error(ctx, pTab->base.zErrMsg, -1);
    sqlite3_result_error_code(ctx, rc);
    sqlite3_free(pTab->base.zErrMsg);    /* no method returns it to SQLite */
    pTab->base.zErrMsg = 0;
    return 0;
  }
  return pTab;
}

/*
** tinkv_compact(name).  Refused (SQLITE_READONLY) on a read-only
** connection or under PRAGMA query_only, and while this connection has a write
** transaction open on the table (compaction is not undone by ROLLBACK and
** the engine only compacts committed data) or a cursor open on it (as in
** SELECT tinkv_compact('kv') FROM kv).
*/
static void compactFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  TinkvTable *pTab;
  u64 nReclaimed = 0;
  char *zErr = 0;
  int rc;
  (void)argc;
  if( !tinkvSideEffectsAllowed(ctx, "tinkv_compact") ) return;
  pTab = tableArgument(ctx, argv[0]);
  if( pTab==0 ) return;
  if( pTab->nCursor>0 ){
    sqlite3_result_error(ctx, "tinkv: cannot compact a table while a cursor "
                         "on it is open in this statement", -1);
    sqlite3_result_error_code(ctx, SQLITE_LOCKED);
    return;
  }
  if( tkv_in_transaction(pTab->pKv) ){
    sqlite3_result_error(ctx, "tinkv: cannot compact a table inside a write "
                         "transaction on it; COMMIT first", -1);
    sqlite3_result_error_code(ctx, SQLITE_LOCKED);
    return;
  }
  rc = tinkvTableWritable(pTab, 1);
  if( rc!=SQLITE_OK ){
    if( rc==SQLITE_READONLY ){
      zErr = sqlite3_mprintf("tinkv: cannot compact table '%s' from a "
          "read-only connection (%s): compaction rewrites the store's files",
          pTab->zName, pTab->bReadonly ? "the database was opened read-only"
                                       : "PRAGMA query_only is on");
    }
    sqlite3_result_error(ctx, zErr ? zErr : pTab->base.zErrMsg, -1);
    sqlite3_result_error_code(ctx, rc);
    sqlite3_free(zErr);
    sqlite3_free(pTab->base.zErrMsg);    /* no method returns it to SQLite */
    pTab->base.zErrMsg = 0;
    return;
  }
  rc = tkv_compact(pTab->pKv, &nReclaimed);
  if( rc!=TKV_OK ){
    rc = tinkvStatus(rc, pTab->zPath, &zErr);
    sqlite3_result_error(ctx, zErr ? zErr : "tinkv: compaction failed", -1);
    sqlite3_result_error_code(ctx, rc);
    sqlite3_free(zErr);
    return;
  }
  sqlite3_result_int64(ctx, (sqlite3_int64)nReclaimed);
}

/* SQLite's JSON functions take a value with this subtype as JSON (an
** object to nest), not as a string to quote. */
#define TINKV_JSON_SUBTYPE 74

/* tinkv_stats(name): the engine's statistics as a JSON object, the same
** one the server's /v1/stats returns (tkv_stats_json). */
static void statsFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  TinkvTable *pTab = tableArgument(ctx, argv[0]);
  char *zErr = 0;
  char *zJson = 0;
  int rc;
  (void)argc;
  if( pTab==0 ) return;
  rc = tkv_stats_json(pTab->pKv, pTab->zPath, &zJson);
  if( rc!=TKV_OK ){
    rc = tinkvStatus(rc, pTab->zPath, &zErr);
    sqlite3_result_error(ctx, zErr ? zErr : "tinkv: stats failed", -1);
    sqlite3_result_error_code(ctx, rc);
    sqlite3_free(zErr);
    return;
  }
  sqlite3_result_text(ctx, zJson, -1, SQLITE_TRANSIENT);
  sqlite3_result_subtype(ctx, TINKV_JSON_SUBTYPE);
  tkv_free(zJson);
}

/* Report an engine failure on ctx. */
static void engineError(sqlite3_context *ctx, TinkvTable *pTab, int rc,
                        const char *zWhat){
  char *zErr = 0;
  rc = tinkvStatus(rc, pTab->zPath, &zErr);
  sqlite3_result_error(ctx, zErr ? zErr : zWhat, -1);
  sqlite3_result_error_code(ctx, rc);
  sqlite3_free(zErr);
}

/* tinkv_check's problem callback: one line per problem. */
static void checkProblem(void *pCtx, const char *zFile, uint64_t iOff,
                         const char *zWhat){
  sqlite3_str *pStr = (sqlite3_str*)pCtx;
  if( sqlite3_str_length(pStr)>0 ) sqlite3_str_appendchar(pStr, 1, '\n');
  sqlite3_str_appendf(pStr, "%s: offset %llu: %s", zFile,
                      (unsigned long long)iOff, zWhat);
}

/*
** tinkv_check(name): 'ok', or the problems, one per line, as PRAGMA
** integrity_check reports them.  Reads the store while it is in use: the
** files as of the last commit.
*/
static void checkFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  TinkvTable *pTab = tableArgument(ctx, argv[0]);
  sqlite3_str *pStr;
  tkv_check_report rep;
  char *z;
  int rc;
  (void)argc;
  if( pTab==0 ) return;
  pStr = sqlite3_str_new(0);
  rc = tkv_check_db(pTab->pKv, checkProblem, 0, pStr, &rep);
  if( rc!=TKV_OK && rc!=TKV_CORRUPT ){
    sqlite3_free(sqlite3_str_finish(pStr));
    engineError(ctx, pTab, rc, "tinkv: check failed");
    return;
  }
  if( rep.problems==0 ) sqlite3_str_appendall(pStr, "ok");
  if( sqlite3_str_errcode(pStr) ){
    sqlite3_free(sqlite3_str_finish(pStr));
    sqlite3_result_error_nomem(ctx);
    return;
  }
  z = sqlite3_str_finish(pStr);
  sqlite3_result_text(ctx, z, -1, sqlite3_free);
}

/*
** tinkv_backup(name, dir [, 'incremental']): back the store up into dir
** (see tkv_backup) and return what was done as a JSON object.
*/
static void backupFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  TinkvTable *pTab;
  const char *zDir, *zMode = 0;
  tkv_backup_report rep;
  unsigned flags = 0;
  char *z;
  int rc;
  if( !tinkvSideEffectsAllowed(ctx, "tinkv_backup") ) return;
  pTab = tableArgument(ctx, argv[0]);
  if( pTab==0 ) return;
  zDir = (const char*)sqlite3_value_text(argv[1]);
  if( sqlite3_value_type(argv[1])!=SQLITE_TEXT || zDir==0 || zDir[0]==0 ){
    sqlite3_result_error(ctx, "tinkv_backup: the second argument must be the "
                         "backup directory (TEXT)", -1);
    return;
  }
  if( argc==3 ) zMode = (const char*)sqlite3_value_text(argv[2]);
  if( zMode && sqlite3_stricmp(zMode, "incremental")==0 ){
    flags |= TKV_BACKUP_INCREMENTAL;
  }else if( argc==3 && (zMode==0 || sqlite3_stricmp(zMode, "full")!=0) ){
    sqlite3_result_error(ctx, "tinkv_backup: the third argument must be "
                         "'incremental' or 'full'", -1);
    return;
  }
  rc = tkv_backup(pTab->pKv, zDir, flags, 0, 0, &rep);
  if( rc!=TKV_OK ){
    engineError(ctx, pTab, rc, "tinkv: backup failed");
    return;
  }
  if( tkv_backup_json(&rep, &z)!=TKV_OK ){
    sqlite3_result_error_nomem(ctx);
    return;
  }
  sqlite3_result_text(ctx, z, -1, tkv_free);
  sqlite3_result_subtype(ctx, TINKV_JSON_SUBTYPE);
}

/* tinkv_version(): e.g. "0.1.0 (format 1)". */
static void versionFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  (void)argc; (void)argv;
  sqlite3_result_text(ctx, tkv_version(), -1, SQLITE_TRANSIENT);
}

/* Register the functions on db, with pConn as their user data. */
int tinkvRegisterFunctions(sqlite3 *db, TinkvConn *pConn){
  const int eDirect = SQLITE_UTF8 | SQLITE_DIRECTONLY;
  int eInnocuous = SQLITE_UTF8 | SQLITE_DETERMINISTIC;
  int rc;
#ifdef SQLITE_INNOCUOUS
  eInnocuous |= SQLITE_INNOCUOUS;
#endif
  rc = sqlite3_create_function(db, "tinkv_compact", 1, eDirect, pConn,
                               compactFunc, 0, 0);
  if( rc==SQLITE_OK ){
    rc = sqlite3_create_function(db, "tinkv_stats", 1, eDirect, pConn,
                                 statsFunc, 0, 0);
  }
  if( rc==SQLITE_OK ){
    rc = sqlite3_create_function(db, "tinkv_check", 1, eDirect, pConn,
                                 checkFunc, 0, 0);
  }
  if( rc==SQLITE_OK ){
    rc = sqlite3_create_function(db, "tinkv_backup", 2, eDirect, pConn,
                                 backupFunc, 0, 0);
  }
  if( rc==SQLITE_OK ){
    rc = sqlite3_create_function(db, "tinkv_backup", 3, eDirect, pConn,
                                 backupFunc, 0, 0);
  }
  if( rc==SQLITE_OK ){
    rc = sqlite3_create_function(db, "tinkv_version", 0, eInnocuous, 0,
                                 versionFunc, 0, 0);
  }
  return rc;
}
