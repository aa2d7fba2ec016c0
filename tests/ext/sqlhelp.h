/*
** Helpers for the cmocka tests of the extension: open a connection with the
** extension loaded (from $TINKV_SO), run SQL, and render query results as
** text ("a|1\nb|2") so that a test reads as the SQL it checks.
**
** Include after <cmocka.h>; the functions are static inline, so a test
** that uses only some of them compiles without warnings.
*/
#ifndef TINKV_SQLHELP_H
#define TINKV_SQLHELP_H

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Load the extension into db; fail the test if it cannot be loaded. */
static inline void sh_load(sqlite3 *db){
  const char *zSo = getenv("TINKV_SO");
  char *zErr = 0;
  sqlite3_enable_load_extension(db, 1);
  if( sqlite3_load_extension(db, zSo ? zSo : "build/tinkv", 0, &zErr) ){
    fprintf(stderr, "cannot load %s: %s\n", zSo ? zSo : "build/tinkv", zErr);
    sqlite3_free(zErr);
    fail();
  }
}

/* Open zFile (":memory:" or a path) with the extension loaded. */
static inline sqlite3 *sh_open(const char *zFile){
  sqlite3 *db = 0;
  if( sqlite3_open(zFile, &db)!=SQLITE_OK ){
    fprintf(stderr, "open %s: %s\n", zFile, sqlite3_errmsg(db));
    fail();
  }
  sh_load(db);
  return db;
}

/* Format into a buffer the caller frees with sqlite3_free. */
static inline char *sh_vfmt(const char *zFmt, va_list ap){
  char *z = sqlite3_vmprintf(zFmt, ap);
  assert_non_null(z);
  return z;
}

/* Run SQL (printf-style, with sqlite3_mprintf's %q/%w); fail on error. */
static inline void sh_exec(sqlite3 *db, const char *zFmt, ...){
  va_list ap;
  char *zSql, *zErr = 0;
  va_start(ap, zFmt);
  zSql = sh_vfmt(zFmt, ap);
  va_end(ap);
  if( sqlite3_exec(db, zSql, 0, 0, &zErr)!=SQLITE_OK ){
    fprintf(stderr, "SQL failed: %s\n  %s\n", zSql, zErr);
    sqlite3_free(zErr);
    sqlite3_free(zSql);
    fail();
  }
  sqlite3_free(zSql);
}

/*
** Run a query; return its rows as text, columns separated by '|', rows by
** '\n' (NULL as "NULL"), in a static buffer valid until the next call.
** On an error the result is "ERROR: <message>".
*/
static inline const char *sh_query(sqlite3 *db, const char *zFmt, ...){
  static char *zOut = 0;
  sqlite3_str *pStr = sqlite3_str_new(0);
  sqlite3_stmt *pStmt = 0;
  va_list ap;
  char *zSql;
  int rc, nRow = 0;
  va_start(ap, zFmt);
  zSql = sh_vfmt(zFmt, ap);
  va_end(ap);
  rc = sqlite3_prepare_v2(db, zSql, -1, &pStmt, 0);
  if( rc==SQLITE_OK ){
    int nCol = sqlite3_column_count(pStmt);
    while( (rc = sqlite3_step(pStmt))==SQLITE_ROW ){
      int i;
      if( nRow++ ) sqlite3_str_appendchar(pStr, 1, '\n');
      for(i=0; i<nCol; i++){
        const char *z = (const char*)sqlite3_column_text(pStmt, i);
        if( i ) sqlite3_str_appendchar(pStr, 1, '|');
        sqlite3_str_appendall(pStr, z ? z : "NULL");
      }
    }
  }
  if( rc!=SQLITE_DONE && rc!=SQLITE_OK ){
    sqlite3_str_reset(pStr);
    sqlite3_str_appendf(pStr, "ERROR: %s", sqlite3_errmsg(db));
  }
  sqlite3_finalize(pStmt);
  sqlite3_free(zSql);
  sqlite3_free(zOut);
  zOut = sqlite3_str_finish(pStr);
  if( zOut==0 ) zOut = sqlite3_mprintf("");
  return zOut;
}

/*
** Run SQL that must fail with result code rc (primary or extended) and a
** message containing zPart.
*/
static inline void sh_fails(sqlite3 *db, int rc, const char *zPart,
                     const char *zFmt, ...){
  va_list ap;
  char *zSql, *zErr = 0;
  int rcGot, rcExt;
  va_start(ap, zFmt);
  zSql = sh_vfmt(zFmt, ap);
  va_end(ap);
  rcGot = sqlite3_exec(db, zSql, 0, 0, &zErr);
  rcExt = sqlite3_extended_errcode(db);
  if( rcGot==SQLITE_OK || (rcGot!=rc && rcExt!=rc)
   || zErr==0 || strstr(zErr, zPart)==0 ){
    fprintf(stderr, "expected error %d containing \"%s\" from\n  %s\n"
            "got %d/%d: %s\n", rc, zPart, zSql, rcGot, rcExt,
            zErr ? zErr : "(no error)");
    sqlite3_free(zErr);
    sqlite3_free(zSql);
    fail();
  }
  sqlite3_free(zErr);
  sqlite3_free(zSql);
}

/* assert that a query's rendered rows equal zExpect. */
#define sh_assert_query(db, zExpect, ...) \
  assert_string_equal(sh_query(db, __VA_ARGS__), zExpect)

#endif
