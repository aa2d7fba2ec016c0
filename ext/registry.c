/*
** Per-connection state of the extension.
**
** A TinkvConn is made when the extension is loaded into a connection.  It
** is the module's client data (released by SQLite after the last table of
** the connection is gone) and the user data of the SQL functions, which use
** it to find a table by name:
**
**   - pTables lists the tables connected in this connection;
**   - pPrivate lists the private store directories of tables in in-memory
**     or temporary schemas.  Such a table may be disconnected and connected
**     again while the connection lives (a schema reset), so the directory
**     is kept until DROP TABLE or the connection closes.
**
** A connection is used by one thread at a time, so nothing here locks.
*/
#include "tinkvInt.h"

#include <string.h>

typedef struct TinkvPrivate TinkvPrivate;
struct TinkvPrivate {
  char *zSchema;              /* schema of the table */
  char *zName;                /* table name */
  char *zDir;                 /* private directory of its store */
  TinkvPrivate *pNext;
};

TinkvConn *tinkvConnNew(sqlite3 *db){
  TinkvConn *pConn = sqlite3_malloc(sizeof(*pConn));
  if( pConn ){
    memset(pConn, 0, sizeof(*pConn));
    pConn->db = db;
  }
  return pConn;
}

/* Destructor of the module's client data: the connection is closing, so
** the private stores (already closed by their tables) are removed. */
void tinkvConnFree(void *p){
  TinkvConn *pConn = (TinkvConn*)p;
  while( pConn->pPrivate ){
    TinkvPrivate *pPriv = pConn->pPrivate;
    pConn->pPrivate = pPriv->pNext;
    tkv_destroy(pPriv->zDir);
    sqlite3_free(pPriv);
  }
  sqlite3_free(pConn);
}

void tinkvConnAdd(TinkvConn *pConn, TinkvTable *pTab){
  pTab->pNext = pConn->pTables;
  pConn->pTables = pTab;
}

void tinkvConnRemove(TinkvConn *pConn, TinkvTable *pTab){
  TinkvTable **pp;
  for(pp=&pConn->pTables; *pp; pp=&(*pp)->pNext){
    if( *pp==pTab ){ *pp = pTab->pNext; break; }
  }
  pTab->pNext = 0;
}

/* The connected table zSchema.zName (names compare without case). */
TinkvTable *tinkvConnFind(TinkvConn *pConn, const char *zSchema,
                          const char *zName){
  TinkvTable *p;
  for(p=pConn->pTables; p; p=p->pNext){
    if( sqlite3_stricmp(p->zSchema, zSchema)==0
     && sqlite3_stricmp(p->zName, zName)==0 ){
      return p;
    }
  }
  return 0;
}

static TinkvPrivate **findPrivate(TinkvConn *pConn, const char *zSchema,
                                  const char *zName){
  TinkvPrivate **pp;
  for(pp=&pConn->pPrivate; *pp; pp=&(*pp)->pNext){
    if( sqlite3_stricmp((*pp)->zSchema, zSchema)==0
     && sqlite3_stricmp((*pp)->zName, zName)==0 ){
      break;
    }
  }
  return pp;
}

/* The private directory recorded for zSchema.zName, or NULL. */
const char *tinkvPrivateDir(TinkvConn *pConn, const char *zSchema,
                            const char *zName){
  TinkvPrivate *p = *findPrivate(pConn, zSchema, zName);
  return p ? p->zDir : 0;
}

/* Record zDir as the private directory of zSchema.zName. */
int tinkvPrivateAdd(TinkvConn *pConn, const char *zSchema, const char *zName,
                    const char *zDir){
  size_t nSchema = strlen(zSchema)+1;
  size_t nName = strlen(zName)+1;
  size_t nDir = strlen(zDir)+1;
  TinkvPrivate *p = sqlite3_malloc64(sizeof(*p) + nSchema + nName + nDir);
  if( p==0 ) return SQLITE_NOMEM;
  p->zSchema = (char*)&p[1];
  p->zName = p->zSchema + nSchema;
  p->zDir = p->zName + nName;
  memcpy(p->zSchema, zSchema, nSchema);
  memcpy(p->zName, zName, nName);
  memcpy(p->zDir, zDir, nDir);
  p->pNext = pConn->pPrivate;
  pConn->pPrivate = p;
  return SQLITE_OK;
}

/* Forget the private directory of zSchema.zName (its files are gone). */
void tinkvPrivateForget(TinkvConn *pConn, const char *zSchema,
                        const char *zName){
  TinkvPrivate **pp = findPrivate(pConn, zSchema, zName);
  if( *pp ){
    TinkvPrivate *p = *pp;
    *pp = p->pNext;
    sqlite3_free(p);
  }
}

/*
** Set *pbFound if schema zSchema has a table or view named zName.
*/
static int schemaHasTable(sqlite3 *db, const char *zSchema, const char *zName,
                          int *pbFound){
  sqlite3_stmt *pStmt = 0;
  char *zSql = sqlite3_mprintf("SELECT 1 FROM \"%w\".sqlite_master "
      "WHERE type IN ('table','view') AND name=?1 COLLATE NOCASE", zSchema);
  int rc;
  *pbFound = 0;
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(db, zSql, -1, &pStmt, 0);
  sqlite3_free(zSql);
  if( rc==SQLITE_OK ){
    sqlite3_bind_text(pStmt, 1, zName, -1, SQLITE_STATIC);
    rc = sqlite3_step(pStmt);
    *pbFound = rc==SQLITE_ROW;
    rc = (rc==SQLITE_ROW || rc==SQLITE_DONE) ? SQLITE_OK : rc;
  }
  sqlite3_finalize(pStmt);
  return rc;
}

/*
** Find the schema that holds table zName, the way SQLite resolves a name:
** zWant if given (matched without case), else temp, main, then attached
** databases in order.  *pzSchema is the canonical schema name (a new
** string) or NULL if no schema has the table.
*/
static int resolveSchema(sqlite3 *db, const char *zWant, const char *zName,
                         char **pzSchema){
  sqlite3_stmt *pList = 0;
  int rc;
  *pzSchema = 0;
  rc = sqlite3_prepare_v2(db, "SELECT name FROM pragma_database_list "
                              "ORDER BY name<>'temp', seq", -1, &pList, 0);
  while( rc==SQLITE_OK && sqlite3_step(pList)==SQLITE_ROW ){
    const char *zSchema = (const char*)sqlite3_column_text(pList, 0);
    int bFound = 0;
    if( zSchema==0 ){ rc = SQLITE_NOMEM; break; }
    if( zWant && sqlite3_stricmp(zWant, zSchema)!=0 ) continue;
    rc = schemaHasTable(db, zSchema, zName, &bFound);
    if( rc==SQLITE_OK && bFound ){
      *pzSchema = sqlite3_mprintf("%s", zSchema);
      if( *pzSchema==0 ) rc = SQLITE_NOMEM;
      break;
    }
  }
  sqlite3_finalize(pList);
  return rc;
}

/*
** Make sure table zSchema.zName is connected in this connection, by
** preparing a statement that reads it.  A tinkv table then appears in the
** registry.  Errors of the table's constructor are returned in *pzErr.
*/
static int connectTable(sqlite3 *db, const char *zSchema, const char *zName,
                        char **pzErr){
  sqlite3_stmt *pStmt = 0;
  char *zSql = sqlite3_mprintf("SELECT 0 FROM \"%w\".\"%w\" WHERE 0",
                               zSchema, zName);
  int rc;
  if( zSql==0 ) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(db, zSql, -1, &pStmt, 0);
  sqlite3_free(zSql);
  if( rc!=SQLITE_OK ){
    *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(db));
  }
  sqlite3_finalize(pStmt);
  return rc;
}

/*
** Find the tinkv table named by zArg ("name" or "schema.name") in the
** connection of pConn.  On error, *pzErr says why: no such table, not a
** tinkv table, or the table could not be opened.
*/
int tinkvFindTable(TinkvConn *pConn, const char *zArg, TinkvTable **ppTab,
                   char **pzErr){
  char *zSchema = 0;
  char *zWant = 0;
  const char *zName = zArg;
  const char *zDot;
  int rc;
  *ppTab = 0;
  if( zArg==0 ){
    *pzErr = sqlite3_mprintf("tinkv: the table name must not be NULL");
    return SQLITE_ERROR;
  }
  rc = resolveSchema(pConn->db, 0, zArg, &zSchema);
  zDot = strchr(zArg, '.');
  if( rc==SQLITE_OK && zSchema==0 && zDot ){
    zWant = sqlite3_mprintf("%.*s", (int)(zDot-zArg), zArg);
    if( zWant==0 ) rc = SQLITE_NOMEM;
    zName = zDot+1;
    if( rc==SQLITE_OK ) rc = resolveSchema(pConn->db, zWant, zName, &zSchema);
  }
  if( rc==SQLITE_OK && zSchema==0 ){
    *pzErr = sqlite3_mprintf("tinkv: no such table: %s", zArg);
    rc = SQLITE_ERROR;
  }
  if( rc==SQLITE_OK ){
    *ppTab = tinkvConnFind(pConn, zSchema, zName);
    if( *ppTab==0 ){
      rc = connectTable(pConn->db, zSchema, zName, pzErr);
      if( rc==SQLITE_OK ) *ppTab = tinkvConnFind(pConn, zSchema, zName);
    }
    if( rc==SQLITE_OK && *ppTab==0 ){
      *pzErr = sqlite3_mprintf("tinkv: '%s' is not a tinkv table", zArg);
      rc = SQLITE_ERROR;
    }
  }
  sqlite3_free(zWant);
  sqlite3_free(zSchema);
  return rc;
}
