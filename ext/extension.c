/*
** The entry point of the tinkv SQLite extension.
**
**   .load ./build/tinkv                      -- sqlite3 shell
**   sqlite3_load_extension(db, "build/tinkv", 0, &zErr);   -- C
**   conn.load_extension("build/tinkv")       # Python
**
** registers the "tinkv" virtual table module and the SQL functions
** tinkv_compact(), tinkv_stats() and tinkv_version() on the connection.
** SQLite finds sqlite3_tinkv_init() from the file name tinkv.so.
*/
#define TINKV_EXTENSION_MAIN
#include "tinkvInt.h"
SQLITE_EXTENSION_INIT1

#ifdef _WIN32
__declspec(dllexport)
#endif
int sqlite3_tinkv_init(sqlite3 *db, char **pzErrMsg,
                       const sqlite3_api_routines *pApi){
  TinkvConn *pConn;
  int rc;
  SQLITE_EXTENSION_INIT2(pApi);

  /* The extension may be loaded into an older SQLite than the headers it
  ** was built with; refuse one that lacks what it relies on. */
  if( sqlite3_libversion_number()<TINKV_MIN_SQLITE ){
    if( pzErrMsg ){
      *pzErrMsg = sqlite3_mprintf("tinkv needs SQLite 3.31.0 or later; this "
                                  "is SQLite %s", sqlite3_libversion());
    }
    return SQLITE_ERROR;
  }
  pConn = tinkvConnNew(db);
  if( pConn==0 ) return SQLITE_NOMEM;
  /* On failure create_module_v2 calls the destructor itself. */
  rc = sqlite3_create_module_v2(db, "tinkv", &tinkvModule, pConn,
                                tinkvConnFree);
  if( rc==SQLITE_OK ) rc = tinkvRegisterFunctions(db, pConn);
  if( rc!=SQLITE_OK && pzErrMsg ){
    *pzErrMsg = sqlite3_mprintf("tinkv: cannot register on this connection: "
                                "%s", sqlite3_errmsg(db));
  }
  return rc;
}
