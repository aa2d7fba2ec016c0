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

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct TinkvPrivate TinkvPrivate;
struct TinkvPrivate {
  char *zSchema;              /* schema of the table */
  char *zName;                /* table name */
  char *zDir;                 /* private directory of its store */
  TinkvPrivate *pNext;
};

/* What a table of a file-less schema made or adopted (see below). */
struct TinkvSession {
  char *zSchema;              /* schema of the table */
  char *zName;                /* table name */
  char *zPath;                /* its store */
  int eKind;                  /* TINKV_OWNER_CREATED or _ADOPTED */
  TinkvSession *pNext;
};

/* A store removal waiting for its DROP TABLE (see below). */
struct TinkvPending {
  char *zDb;                  /* database file of the dropped table */
  char *zName;                /* the table's name */
  char *zPath;                /* its store */
  tkv_db *pKv;                /* the table's engine handle, still open */
  TinkvPending *pNext;
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
  tinkvPendingResolve(pConn, 1);
  while( pConn->pSession ){
    TinkvSession *pS = pConn->pSession;
    tinkvSessionForget(pConn, pS->zSchema, pS->zName);
  }
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
  tinkvPendingResolve(pConn, 0);
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

/* ------------------------------------------------------------------------
** What tables of file-less schemas made or adopted (see owner.c), for the
** life of their connection.
*/

int tinkvSessionAdd(TinkvConn *pConn, const char *zSchema, const char *zName,
                    const char *zPath, int eKind){
  TinkvSession *p = sqlite3_malloc(sizeof(*p));
  if( p==0 ) return SQLITE_NOMEM;
  p->zSchema = sqlite3_mprintf("%s", zSchema);
  p->zName = sqlite3_mprintf("%s", zName);
  p->zPath = sqlite3_mprintf("%s", zPath);
  p->eKind = eKind;
  if( p->zSchema==0 || p->zName==0 || p->zPath==0 ){
    sqlite3_free(p->zSchema);
    sqlite3_free(p->zName);
    sqlite3_free(p->zPath);
    sqlite3_free(p);
    return SQLITE_NOMEM;
  }
  p->pNext = pConn->pSession;
  pConn->pSession = p;
  return SQLITE_OK;
}

/* How table zSchema.zName of this connection came to store zPath. */
int tinkvSessionLookup(TinkvConn *pConn, const char *zSchema,
                       const char *zName, const char *zPath){
  TinkvSession *p;
  for(p=pConn->pSession; p; p=p->pNext){
    if( sqlite3_stricmp(p->zSchema, zSchema)==0
     && sqlite3_stricmp(p->zName, zName)==0 && strcmp(p->zPath, zPath)==0 ){
      return p->eKind;
    }
  }
  return TINKV_OWNER_NONE;
}

/* Forget what the connection knew about zSchema.zName (DROP TABLE). */
void tinkvSessionForget(TinkvConn *pConn, const char *zSchema,
                        const char *zName){
  TinkvSession **pp = &pConn->pSession;
  while( *pp ){
    TinkvSession *p = *pp;
    if( sqlite3_stricmp(p->zSchema, zSchema)==0
     && sqlite3_stricmp(p->zName, zName)==0 ){
      *pp = p->pNext;
      sqlite3_free(p->zSchema);
      sqlite3_free(p->zName);
      sqlite3_free(p->zPath);
      sqlite3_free(p);
    }else{
      pp = &p->pNext;
    }
  }
}

/* ------------------------------------------------------------------------
** Store removals waiting for their DROP TABLE to commit.
**
** SQLite calls xDestroy while the DROP statement runs; the commit that
** follows can still fail (a reader's lock on a rollback journal, an I/O
** error), and SQLite then puts the table back.  So xDestroy of a table that
** created its store only records the removal here, keeping its engine
** handle open so that no other process can take the store meanwhile.  The
** removal is decided later, at the connection's next use of the extension
** (a table connected or created, a tinkv function) and when it closes, by
** looking at the database file through a separate read-only connection:
** the table gone means the DROP committed and the store is removed; the
** table there means it was rolled back and the store stays.  If that
** cannot be told (the file is locked or unreadable), the removal waits;
** at close it is given up and the store is left in place (and logged).
*/

int tinkvPendingAdd(TinkvConn *pConn, const char *zDb, const char *zName,
                    const char *zPath, tkv_db *pKv){
  TinkvPending *p = sqlite3_malloc(sizeof(*p));
  if( p==0 ) return SQLITE_NOMEM;
  p->zDb = sqlite3_mprintf("%s", zDb);
  p->zName = sqlite3_mprintf("%s", zName);
  p->zPath = sqlite3_mprintf("%s", zPath);
  p->pKv = pKv;
  if( p->zDb==0 || p->zName==0 || p->zPath==0 ){
    sqlite3_free(p->zDb);
    sqlite3_free(p->zName);
    sqlite3_free(p->zPath);
    sqlite3_free(p);
    return SQLITE_NOMEM;
  }
  p->pNext = pConn->pPending;
  pConn->pPending = p;
  return SQLITE_OK;
}

/* Does database file zDb have table zName?  1 yes, 0 no, -1 cannot tell. */
static int fileHasTable(const char *zDb, const char *zName){
  sqlite3 *pDb = 0;
  sqlite3_stmt *pStmt = 0;
  int r = -1;
  if( sqlite3_open_v2(zDb, &pDb, SQLITE_OPEN_READONLY, 0)==SQLITE_OK
   && sqlite3_prepare_v2(pDb, "SELECT 1 FROM sqlite_master WHERE type='table'"
                         " AND name=?1 COLLATE NOCASE", -1, &pStmt, 0)
        ==SQLITE_OK ){
    int rc;
    sqlite3_bind_text(pStmt, 1, zName, -1, SQLITE_STATIC);
    rc = sqlite3_step(pStmt);
    if( rc==SQLITE_ROW ) r = 1;
    else if( rc==SQLITE_DONE ) r = 0;
  }
  sqlite3_finalize(pStmt);
  sqlite3_close(pDb);
  return r;
}

/*
** Decide the pending removals whose outcome can be told now (see above).
** bClosing: the connection is closing; undecided removals are given up.
*/
void tinkvPendingResolve(TinkvConn *pConn, int bClosing){
  TinkvPending **pp = &pConn->pPending;
  while( *pp ){
    TinkvPending *p = *pp;
    int bHas = fileHasTable(p->zDb, p->zName);
    if( bHas<0 && !bClosing ){
      pp = &p->pNext;
      continue;
    }
    *pp = p->pNext;
    tinkvStoreClose(p->zPath, p->pKv);
    if( bHas==0 ){
      char *zErr = 0;
      if( tinkvOwnerRemoveStore(p->zPath, &zErr)!=SQLITE_OK ){
        sqlite3_log(SQLITE_WARNING, "tinkv: DROP TABLE %s committed but its "
                    "store '%s' could not be removed: %s", p->zName,
                    p->zPath, zErr);
      }
      sqlite3_free(zErr);
    }else if( bHas<0 ){
      sqlite3_log(SQLITE_WARNING, "tinkv: cannot tell whether DROP TABLE %s"
                  " of '%s' committed; its store '%s' is left in place",
                  p->zName, p->zDb, p->zPath);
    }
    sqlite3_free(p->zDb);
    sqlite3_free(p->zName);
    sqlite3_free(p->zPath);
    sqlite3_free(p);
  }
}

/* ------------------------------------------------------------------------
** Engine handles the extension has open in this process, per store path,
** with the options of the handle that opened the engine.  A store open
** once in a process is one engine, whose options are those of its first
** opener: a later table that asks for something that cannot then take
** effect (a stronger sync, another segment size or compaction threshold)
** is refused rather than silently given less.  DROP TABLE uses the count
** to refuse removing a store another connection uses.
*/
typedef struct TinkvOpenPath TinkvOpenPath;
struct TinkvOpenPath {
  char *zPath;                /* the store directory */
  int nOpen;                  /* handles the extension has open on it */
  tkv_options opts;           /* options of the engine */
  TinkvOpenPath *pNext;
};
static pthread_mutex_t openMutex = PTHREAD_MUTEX_INITIALIZER;
static TinkvOpenPath *pOpenPaths = 0;

static TinkvOpenPath **findOpenPath(const char *zPath){
  TinkvOpenPath **pp;
  for(pp=&pOpenPaths; *pp && strcmp((*pp)->zPath, zPath); pp=&(*pp)->pNext){}
  return pp;
}

static const char *syncName(tkv_sync_mode e){
  return e==TKV_SYNC_FULL ? "full" : e==TKV_SYNC_NORMAL ? "normal" : "off";
}

/*
** Count a handle about to be opened on zPath with options *pOpts (mGiven:
** which were given explicitly).  Refuses, with *pzErr set, options that
** the engine already open in this process cannot honour.  A successful
** call is matched by tinkvOpenRelease.
*/
int tinkvOpenAcquire(const char *zPath, const tkv_options *pOpts,
                     unsigned mGiven, char **pzErr){
  TinkvOpenPath *p;
  int rc = SQLITE_OK;
  pthread_mutex_lock(&openMutex);
  p = *findOpenPath(zPath);
  if( p ){
    const tkv_options *pHave = &p->opts;
    if( pOpts->sync<pHave->sync ){   /* FULL=0 < NORMAL < OFF */
      *pzErr = sqlite3_mprintf("tinkv: store '%s' is already open in this "
          "process with sync=%s; this table asks for sync=%s, which cannot "
          "take effect until every table using the store is closed (give "
          "the tables of one store the same sync option)", zPath,
          syncName(pHave->sync), syncName(pOpts->sync));
      rc = SQLITE_ERROR;
    }else if( (mGiven & TINKV_OPT_FILESIZE)
           && pOpts->max_file_size!=pHave->max_file_size ){
      *pzErr = sqlite3_mprintf("tinkv: store '%s' is already open in this "
          "process with max_file_size=%llu; this table's max_file_size=%llu "
          "cannot take effect", zPath,
          (unsigned long long)pHave->max_file_size,
          (unsigned long long)pOpts->max_file_size);
      rc = SQLITE_ERROR;
    }else if( (mGiven & TINKV_OPT_THRESHOLD)
           && pOpts->compact_threshold!=pHave->compact_threshold ){
      *pzErr = sqlite3_mprintf("tinkv: store '%s' is already open in this "
          "process with compact_threshold=%llu; this table's "
          "compact_threshold=%llu cannot take effect", zPath,
          (unsigned long long)pHave->compact_threshold,
          (unsigned long long)pOpts->compact_threshold);
      rc = SQLITE_ERROR;
    }else{
      p->nOpen++;
    }
  }else{
    p = malloc(sizeof(*p));
    if( p ) p->zPath = strdup(zPath);
    if( p && p->zPath ){
      p->nOpen = 1;
      p->opts = *pOpts;
      if( p->opts.max_file_size==0 ){
        p->opts.max_file_size = TKV_DEFAULT_MAX_FILE_SIZE;
      }
      if( p->opts.compact_threshold==0 ){
        p->opts.compact_threshold = TKV_DEFAULT_COMPACT_THRESHOLD;
      }
      p->pNext = pOpenPaths;
      pOpenPaths = p;
    }else{
      free(p);
      rc = SQLITE_NOMEM;
    }
  }
  pthread_mutex_unlock(&openMutex);
  return rc;
}

/* A handle counted by tinkvOpenAcquire was closed (or not opened). */
void tinkvOpenRelease(const char *zPath){
  TinkvOpenPath **pp, *p;
  pthread_mutex_lock(&openMutex);
  pp = findOpenPath(zPath);
  p = *pp;
  if( p && --p->nOpen<=0 ){
    *pp = p->pNext;
    free(p->zPath);
    free(p);
  }
  pthread_mutex_unlock(&openMutex);
}

/* Handles the extension has open on zPath in this process. */
int tinkvOpenOthers(const char *zPath){
  TinkvOpenPath *p;
  int n;
  pthread_mutex_lock(&openMutex);
  p = *findOpenPath(zPath);
  n = p ? p->nOpen : 0;
  pthread_mutex_unlock(&openMutex);
  return n;
}
