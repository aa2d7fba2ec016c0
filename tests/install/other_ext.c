/*
** A stand-in for another loadable extension: like every extension built
** without SQLITE_CORE it defines the global "sqlite3_api".  Linked into one
** program beside tinkv's extension objects it must not clash with them.
*/
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

/* other_answer(): 42. */
static void answerFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  (void)argc; (void)argv;
  sqlite3_result_int(ctx, 42);
}

int sqlite3_other_init(sqlite3 *db, char **pzErr,
                       const sqlite3_api_routines *pApi){
  SQLITE_EXTENSION_INIT2(pApi);
  (void)pzErr;
  return sqlite3_create_function(db, "other_answer", 0, SQLITE_UTF8, 0,
                                 answerFunc, 0, 0);
}
