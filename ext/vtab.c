/*
** The tinkv virtual table module: constructors, destructors and
** transactions.  Query planning and cursors are in scan.c, writes in
** update.c.
**
**   CREATE VIRTUAL TABLE kv USING tinkv('data/kv');
**
** declares a rowid table (key PRIMARY KEY NOT NULL, value) whose rows are
** the keys of the engine store in the directory data/kv.  The rowid of a
** row is the engine's id of its key.  With encoding=raw the key and the
** value are the store's bytes as BLOBs (a tinkv-server store); otherwise
** they are typed SQL values (keycodec.c, valuecodec.c).  Which one a store
** holds is recorded in it and checked at open (tinkvStoreCheckEncoding).
**
** Each connection opens its own engine handle; handles of one process on
** one store share the engine.  SQLite's transaction callbacks map onto the
** handle's engine transaction:
**
**   xBegin                tkv_begin (also started lazily by xUpdate and
**                         xSavepoint: after CREATE VIRTUAL TABLE inside a
**                         transaction, SQLite writes without calling xBegin)
**   xSavepoint(n)         tkv_savepoint(n)
**   xRollbackTo(n)        tkv_rollback_to(n)
**   xRelease(n)           tkv_release(n)
**   xSync                 tkv_prepare: every fallible write and the sync
**   xCommit               tkv_commit, which cannot fail after tkv_prepare
**   xRollback             tkv_rollback
**
** The engine allows one open transaction per store: a connection that
** writes while another one of the same process has a transaction open gets
** SQLITE_BUSY.
*/
#include "tinkvInt.h"

#include <stdarg.h>
#include <string.h>

/* Replace the table's error message; return rc. */
int tinkvTableError(TinkvTable *pTab, int rc, const char *zFmt, ...){
  va_list ap;
  va_start(ap, zFmt);
  sqlite3_free(pTab->base.zErrMsg);
  pTab->base.zErrMsg = sqlite3_vmprintf(zFmt, ap);
  va_end(ap);
  return rc;
}

/* Turn engine status rc into an SQLite code and the table's error message. */
int tinkvTableStatus(TinkvTable *pTab, int rc){
  char *zErr = 0;
  rc = tinkvStatus(rc, pTab->zPath, &zErr);
  if( rc!=SQLITE_OK ){
    sqlite3_free(pTab->base.zErrMsg);
    pTab->base.zErrMsg = zErr;
  }
  return rc;
}

static int connectStore(TinkvTable *pTab, char **pzErr);
static int closeTable(TinkvTable *pTab, int rc, char *zMsg);

/*
** SQLITE_OK if the table has an engine handle.  A table is closed when its
** store is missing or is not one it may open (owner.c), and when a refused
** DROP TABLE could not reopen it; every use then fails with the reason.
*/
int tinkvTableReady(TinkvTable *pTab){
  if( pTab->pKv ) return SQLITE_OK;
  if( pTab->zClosed ){
    /* The store may have come back (or be fixed) since: try again. */
    char *zErr = 0;
    int rc;
    sqlite3_free(pTab->zClosed);
    pTab->zClosed = 0;
    rc = connectStore(pTab, &zErr);
    if( rc==SQLITE_OK && pTab->pKv
     && tkv_cursor_open(pTab->pKv, &pTab->pIdCsr)!=TKV_OK ){
      rc = tinkvStatus(TKV_NOMEM, pTab->zPath, &zErr);
      tinkvStoreClose(pTab->zPath, pTab->pKv);
      pTab->pKv = 0;
    }
    if( rc!=SQLITE_OK ) closeTable(pTab, rc, zErr);
    if( pTab->pKv ) return SQLITE_OK;
    if( pTab->zClosed==0 ) return SQLITE_NOMEM;
    return tinkvTableError(pTab, pTab->rcClosed, "%s", pTab->zClosed);
  }
  return tinkvTableError(pTab, SQLITE_IOERR, "tinkv: the store '%s' of table "
                         "'%s' is closed; reopen the database", pTab->zPath,
                         pTab->zName);
}

/*
** True if pVal is TEXT of a UTF-16 database that cannot be stored as it is
** (tinkvText16IsWellFormed).
*/
int tinkvTableBadText(TinkvTable *pTab, sqlite3_value *pVal){
  if( sqlite3_value_type(pVal)!=SQLITE_TEXT ) return 0;
  return tinkvTableIsUtf16(pTab) && !tinkvText16IsWellFormed(pVal);
}

/*
** True if the table's database is UTF-16.  Its BINARY collation then
** orders text by UTF-16 code units, while keys are stored (and the keydir
** ordered) as UTF-8: the planner widens TEXT ranges and leaves ORDER BY to
** SQLite.  The encoding is asked once.
*/
int tinkvTableIsUtf16(TinkvTable *pTab){
  if( pTab->eEnc==0 ){
    sqlite3_stmt *pStmt = 0;
    pTab->eEnc = 1;
    if( sqlite3_prepare_v2(pTab->db, "PRAGMA encoding", -1, &pStmt, 0)
          ==SQLITE_OK
     && sqlite3_step(pStmt)==SQLITE_ROW ){
      const char *z = (const char*)sqlite3_column_text(pStmt, 0);
      if( z && sqlite3_strnicmp(z, "UTF-16", 6)==0 ) pTab->eEnc = 2;
    }
    sqlite3_finalize(pStmt);
  }
  return pTab->eEnc==2;
}

/*
** The value of a PRAGMA that returns one integer (busy_timeout,
** query_only) on connection db, or -1 if it cannot be read.  SQLite has no
** getter for either, and running a statement from a method is allowed.
*/
static int connPragmaInt(sqlite3 *db, const char *zSql){
  sqlite3_stmt *pStmt = 0;
  int v = -1;
  if( sqlite3_prepare_v2(db, zSql, -1, &pStmt, 0)==SQLITE_OK
   && sqlite3_step(pStmt)==SQLITE_ROW ){
    v = sqlite3_column_int(pStmt, 0);
  }
  sqlite3_finalize(pStmt);
  return v;
}

/* True if PRAGMA query_only is on for connection db. */
int tinkvConnQueryOnly(sqlite3 *db){
  return connPragmaInt(db, "PRAGMA query_only")==1;
}

/* ------------------------------------------------------------------------
** Reads and writes of one SQL transaction (README, "Several processes").
**
** A read takes no lock: each statement sees what was committed when it
** started.  A write transaction takes the store's write lock at its first
** write (xBegin), catching up first, so a statement that reads and writes
** (UPDATE kv SET value=value+1) is atomic.  But in BEGIN; SELECT; UPDATE;
** COMMIT the SELECT ran before the lock: if another connection or process
** committed in between, the UPDATE could write a value computed from a
** stale read (a lost update).  So the first read of a table inside an
** explicit transaction records the store's data version (readMark), and
** xBegin refuses, with SQLITE_BUSY_SNAPSHOT as SQLite gives in WAL mode,
** a write transaction when any table of the connection read earlier in
** the transaction has changed since.  SQLite tells a virtual table when a
** write transaction ends, but not when a transaction that only read does:
** the marks are dropped at every commit or rollback of a write, at every
** statement run outside BEGIN...COMMIT, and when a write is refused, so a
** read of an earlier read-only transaction can at worst make a write
** refused once.
**
** The same first read begins a read transaction of the table's handle
** (tkv_read_begin): until the marks are dropped, every statement of the
** transaction reads the store as it was then, as a native table's reader
** does in WAL mode, whatever other connections and processes commit.  A
** write transaction ends it (it may begin only if nothing changed since,
** which the marks check), as do the points above where the marks drop.
** What SQLite does not say (a COMMIT of a transaction that only read)
** leaves the view open until the connection's next statement on a tinkv
** table outside BEGIN...COMMIT: the README tells users so.
*/

static void clearReadMarks(TinkvConn *pConn){
  TinkvTable *p;
  for(p=pConn->pTables; p; p=p->pNext){
    p->bReadMark = 0;
    if( p->pKv && tkv_in_read(p->pKv) ) tkv_read_end(p->pKv);
  }
}

/* A cursor of pTab is about to read (xFilter). */
void tinkvTableReadMark(TinkvTable *pTab){
  if( sqlite3_get_autocommit(pTab->db) ){
    clearReadMarks(pTab->pConn);
  }else if( !pTab->bReadMark && pTab->pKv
         && !tkv_in_transaction(pTab->pKv) ){
    pTab->readMark = tkv_data_version(pTab->pKv);
    pTab->bReadMark = 1;
    /* On failure (out of memory) statements read the latest instead. */
    (void)tkv_read_begin(pTab->pKv);
  }
}

/* SQLITE_OK if no table read in this transaction changed since. */
static int checkReadMarks(TinkvTable *pTab){
  TinkvTable *p;
  for(p=pTab->pConn->pTables; p; p=p->pNext){
    if( p->bReadMark && p->pKv && tkv_data_version(p->pKv)!=p->readMark ){
      clearReadMarks(pTab->pConn);
      return tinkvTableError(pTab, SQLITE_BUSY_SNAPSHOT, "tinkv: table '%s' "
          "changed (another connection or process committed) since this "
          "transaction read it, so writing now could lose that update; "
          "ROLLBACK and run the transaction again", p->zName);
    }
  }
  return SQLITE_OK;
}

/*
** Make pTab's handle one that may write.  A read-only database
** (sqlite3_db_readonly) or PRAGMA query_only refuses, as SQLite refuses
** writes to its own tables.  A table connected while query_only was on
** has a read-only handle (so that nothing it did could change the store):
** it is swapped for a writable one, when no cursor of the table needs it.
** bAsk: read PRAGMA query_only even when the handle is writable (SQLite
** itself refuses INSERT, UPDATE and DELETE under it, so a write
** transaction need not pay for the statement; tinkv_compact must).
*/
int tinkvTableWritable(TinkvTable *pTab, int bAsk){
  tkv_db *pNew = 0;
  char *zErr = 0;
  int rc;
  if( pTab->bReadonly ){
    return tinkvTableError(pTab, SQLITE_READONLY, "tinkv: attempt to write a "
        "readonly database (table '%s' of a connection that opened it "
        "read-only)", pTab->zName);
  }
  if( !pTab->bRoHandle && !bAsk ) return SQLITE_OK;
  if( tinkvConnQueryOnly(pTab->db) ){
    return tinkvTableError(pTab, SQLITE_READONLY, "tinkv: attempt to write a "
        "readonly database (PRAGMA query_only is on)");
  }
  if( !pTab->bRoHandle ) return SQLITE_OK;
  if( pTab->nCursor>0 ){
    return tinkvTableError(pTab, SQLITE_BUSY, "tinkv: table '%s' was opened "
        "while PRAGMA query_only was on and cannot write while a statement "
        "reads it; finish that statement first", pTab->zName);
  }
  pTab->opts.readonly = 0;
  rc = tinkvStoreOpen(pTab->zPath, &pTab->opts, 0, 0, &pNew, &zErr);
  if( rc==SQLITE_OK ){
    if( pTab->pIdCsr ){ tkv_cursor_close(pTab->pIdCsr); pTab->pIdCsr = 0; }
    if( pTab->pSpare ){ tinkvCursorFree(pTab->pSpare); pTab->pSpare = 0; }
    tinkvStoreClose(pTab->zPath, pTab->pKv);
    pTab->pKv = pNew;
    pTab->bRoHandle = 0;
    pTab->bReadMark = 0;
    if( tkv_cursor_open(pNew, &pTab->pIdCsr)!=TKV_OK ){
      pTab->pIdCsr = 0;
      rc = tinkvTableStatus(pTab, TKV_NOMEM);
    }
  }else{
    pTab->opts.readonly = 1;
    tinkvTableError(pTab, rc, "%s", zErr ? zErr : "tinkv: reopen failed");
    sqlite3_free(zErr);
  }
  return rc;
}

/*
** Start the engine transaction of this table if it has none: take the
** store's write lock.  While another process holds it, wait up to the
** connection's busy timeout (sqlite3_busy_timeout, PRAGMA busy_timeout;
** none set: fail at once, as SQLite's own tables do), then SQLITE_BUSY
** naming that process.  The timeout is read only when the lock is taken.
*/
int tinkvTableBegin(TinkvTable *pTab){
  int rc = tinkvTableReady(pTab);
  int krc;
  if( rc!=SQLITE_OK || tkv_in_transaction(pTab->pKv) ) return rc;
  if( sqlite3_get_autocommit(pTab->db) ) clearReadMarks(pTab->pConn);
  /* Its view gives way to the write transaction; the marks say whether
  ** the store changed since it began. */
  if( tkv_in_read(pTab->pKv) ) tkv_read_end(pTab->pKv);
  rc = tinkvTableWritable(pTab, 0);
  if( rc!=SQLITE_OK ) return rc;
  tkv_busy_timeout(pTab->pKv, -1);
  krc = tkv_begin(pTab->pKv);
  if( krc==TKV_BUSY ){
    int ms = connPragmaInt(pTab->db, "PRAGMA busy_timeout");
    if( ms>0 ){
      tkv_busy_timeout(pTab->pKv, ms);
      krc = tkv_begin(pTab->pKv);
    }
  }
  rc = tinkvTableStatus(pTab, krc);
  if( rc==SQLITE_OK ){
    rc = checkReadMarks(pTab);
    if( rc!=SQLITE_OK ) tkv_rollback(pTab->pKv);
  }
  return rc;
}

/*
** Decide where the store of table zSchema.zName is (see storeopen.c).
** Sets pTab->zPath and the bDefaultPath/bPrivate flags.  For xCreate
** (bCreate) of an in-memory table, the private directory is made here.
*/
static int locateStore(TinkvConn *pConn, sqlite3 *db, const char *zSchema,
                       const char *zName, const TinkvConfig *pCfg,
                       int bCreate, TinkvTable *pTab, char **pzErr){
  char *zPath = 0;
  int rc;
  if( pCfg->zPath ){
    rc = tinkvStoreAbsolutePath(pCfg->zPath, &zPath, pzErr);
  }else{
    rc = tinkvStoreDefaultPath(db, zSchema, zName, &zPath, pzErr);
    pTab->bDefaultPath = 1;
  }
  if( rc==SQLITE_OK && zPath==0 ){
    const char *zDir = tinkvPrivateDir(pConn, zSchema, zName);
    pTab->bPrivate = 1;
    if( bCreate ){
      rc = tinkvStoreMakePrivateDir(&zPath, pzErr);
      if( rc==SQLITE_OK ) rc = tinkvPrivateAdd(pConn, zSchema, zName, zPath);
    }else if( zDir ){
      zPath = sqlite3_mprintf("%s", zDir);
      if( zPath==0 ) rc = SQLITE_NOMEM;
    }else{
      *pzErr = sqlite3_mprintf("tinkv: the private store of in-memory table "
                               "%s.%s no longer exists", zSchema, zName);
      rc = SQLITE_CANTOPEN;
    }
  }
  pTab->zPath = zPath;
  return rc;
}

/*
** xCreate: open (making it if needed) the store and record that this table
** created or adopted it (owner.c).
*/
static int createStore(TinkvTable *pTab, const TinkvConfig *pCfg,
                       char **pzErr){
  const char *zDb = tinkvOwnerDbFile(pTab->db, pTab->zSchema);
  int bExisted = !pTab->bPrivate && tkv_is_store(pTab->zPath);
  int rc = SQLITE_OK;
  if( !pTab->bPrivate ) rc = tinkvStoreCheckCreate(pTab->zPath, pzErr);
  if( rc==SQLITE_OK ){
    rc = tinkvStoreOpen(pTab->zPath, &pCfg->opts, pCfg->mGiven, 1,
                        &pTab->pKv, pzErr);
  }
  if( rc==SQLITE_OK ){
    rc = tinkvStoreCheckEncoding(pTab->pKv, pTab->zPath, pTab->bRaw, 0,
                                 pzErr);
    if( rc!=SQLITE_OK ){
      tinkvStoreClose(pTab->zPath, pTab->pKv);
      pTab->pKv = 0;
    }
  }
  if( rc!=SQLITE_OK ) return rc;
  pTab->eOwner = bExisted ? TINKV_OWNER_ADOPTED : TINKV_OWNER_CREATED;
  if( pTab->bPrivate ) return SQLITE_OK;
  if( zDb ){
    rc = tinkvOwnerAdd(pTab->zPath, zDb, pTab->zName, pTab->eOwner, pzErr);
  }else{
    rc = tinkvSessionAdd(pTab->pConn, pTab->zSchema, pTab->zName,
                         pTab->zPath, pTab->eOwner);
  }
  if( bExisted ){
    sqlite3_log(SQLITE_NOTICE, "tinkv: table %s adopted the existing store "
                "'%s'; DROP TABLE will leave its files in place",
                pTab->zName, pTab->zPath);
  }
  return rc;
}

/* Leave pTab connected but closed: every use fails with rc and zMsg. */
static int closeTable(TinkvTable *pTab, int rc, char *zMsg){
  pTab->rcClosed = rc;
  pTab->zClosed = zMsg;
  return zMsg ? SQLITE_OK : SQLITE_NOMEM;
}

/*
** xConnect: open the store of an existing table if the table may (see
** owner.c).  A missing store, or one the table neither created nor
** adopted, leaves the table closed, so that it can still be dropped; a
** store that exists but cannot be opened (locked, corrupt) is an error.
*/
static int connectStore(TinkvTable *pTab, char **pzErr){
  const char *zDb = tinkvOwnerDbFile(pTab->db, pTab->zSchema);
  char *zErr = 0;
  int rc, bRecord = 0;
  if( pTab->bPrivate ){
    pTab->eOwner = TINKV_OWNER_CREATED;
  }else{
    rc = tinkvStoreCheckConnect(pTab->zPath, &zErr);
    if( rc!=SQLITE_OK ) return closeTable(pTab, rc, zErr);
    if( zDb ){
      pTab->eOwner = (u8)tinkvOwnerLookup(pTab->zPath, zDb, pTab->zName,
                                          &bRecord);
    }else{
      pTab->eOwner = (u8)tinkvSessionLookup(pTab->pConn, pTab->zSchema,
                                            pTab->zName, pTab->zPath);
    }
    if( pTab->eOwner==TINKV_OWNER_NONE
     && !(pTab->bDefaultPath && zDb && !bRecord) ){
      return closeTable(pTab, SQLITE_AUTH, sqlite3_mprintf(
          "tinkv: table '%s' did not create or adopt the store '%s', so it "
          "is not opened (a database file may come from elsewhere and name "
          "any directory); to use that store from this database, DROP TABLE "
          "%s (which leaves the store in place) and CREATE VIRTUAL TABLE it "
          "again", pTab->zName, pTab->zPath, pTab->zName));
    }
  }
  rc = tinkvStoreOpen(pTab->zPath, &pTab->opts, pTab->mGiven, 0,
                      &pTab->pKv, pzErr);
  if( rc!=SQLITE_OK ) return rc;
  rc = tinkvStoreCheckEncoding(pTab->pKv, pTab->zPath, pTab->bRaw,
                               pTab->bRoHandle, &zErr);
  if( rc!=SQLITE_OK ){
    /* Connected but closed, so that DROP TABLE still works. */
    tinkvStoreClose(pTab->zPath, pTab->pKv);
    pTab->pKv = 0;
    return closeTable(pTab, rc, zErr);
  }
  return SQLITE_OK;
}

/* Release everything a table holds (the store is closed, not removed). */
static void freeTable(TinkvTable *pTab){
  if( pTab->pSpare ) tinkvCursorFree(pTab->pSpare);
  if( pTab->pIdCsr ) tkv_cursor_close(pTab->pIdCsr);
  tinkvStoreClose(pTab->zPath, pTab->pKv);
  tinkvBufFree(&pTab->key);
  tinkvBufFree(&pTab->oldKey);
  tinkvBufFree(&pTab->val);
  sqlite3_free(pTab->zSchema);
  sqlite3_free(pTab->zName);
  sqlite3_free(pTab->zPath);
  sqlite3_free(pTab->zClosed);
  sqlite3_free(pTab->base.zErrMsg);   /* set outside a method (functions) */
  sqlite3_free(pTab);
}

/*
** xCreate (bCreate=1) and xConnect (bCreate=0).  argv[1] is the schema,
** argv[2] the table name, argv[3..] the module arguments.  Only xCreate may
** create the store; xConnect requires an existing one.
*/
static int tinkvConstruct(sqlite3 *db, void *pAux, int argc,
                          const char *const *argv, sqlite3_vtab **ppVtab,
                          char **pzErr, int bCreate){
  TinkvConn *pConn = (TinkvConn*)pAux;
  TinkvConfig cfg;
  TinkvTable *pTab;
  int rc;

  *ppVtab = 0;
  tinkvPendingResolve(pConn, 0);
  rc = tinkvConfigParse(argc-3, argv+3, &cfg, pzErr);
  if( rc!=SQLITE_OK ) return rc;
  pTab = sqlite3_malloc(sizeof(*pTab));
  if( pTab==0 ){
    tinkvConfigClear(&cfg);
    return SQLITE_NOMEM;
  }
  memset(pTab, 0, sizeof(*pTab));
  pTab->db = db;
  pTab->pConn = pConn;
  pTab->zSchema = sqlite3_mprintf("%s", argv[1]);
  pTab->zName = sqlite3_mprintf("%s", argv[2]);
  if( pTab->zSchema==0 || pTab->zName==0 ) rc = SQLITE_NOMEM;

  if( rc==SQLITE_OK ){
    rc = locateStore(pConn, db, argv[1], argv[2], &cfg, bCreate, pTab, pzErr);
  }
  if( rc==SQLITE_OK ){
    rc = sqlite3_declare_vtab(db,
        "CREATE TABLE x(key PRIMARY KEY NOT NULL, value)");
  }
  if( rc==SQLITE_OK ){
    pTab->opts = cfg.opts;
    pTab->mGiven = cfg.mGiven;
    pTab->bRaw = (u8)cfg.bRaw;
    /* A read-only connection gets a read-only handle: it never writes,
    ** merges, cuts a torn tail or records anything in the store. */
    pTab->bReadonly = sqlite3_db_readonly(db, argv[1])==1;
    if( !bCreate && (pTab->bReadonly || tinkvConnQueryOnly(db)) ){
      pTab->bRoHandle = 1;
      pTab->opts.readonly = 1;
    }
    rc = bCreate ? createStore(pTab, &cfg, pzErr) : connectStore(pTab, pzErr);
  }
  if( rc==SQLITE_OK && pTab->pKv ){
    rc = tkv_cursor_open(pTab->pKv, &pTab->pIdCsr);
    if( rc!=TKV_OK ) rc = tinkvStatus(rc, pTab->zPath, pzErr);
  }
  if( rc==SQLITE_OK ){
    sqlite3_vtab_config(db, SQLITE_VTAB_CONSTRAINT_SUPPORT, 1);
#ifdef SQLITE_VTAB_DIRECTONLY
    sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
#endif
  }
  tinkvConfigClear(&cfg);
  if( rc!=SQLITE_OK ){
    freeTable(pTab);
    return rc;
  }
  tinkvConnAdd(pConn, pTab);
  *ppVtab = &pTab->base;
  return SQLITE_OK;
}

static int tinkvCreate(sqlite3 *db, void *pAux, int argc,
                       const char *const *argv, sqlite3_vtab **ppVtab,
                       char **pzErr){
  return tinkvConstruct(db, pAux, argc, argv, ppVtab, pzErr, 1);
}

static int tinkvConnect(sqlite3 *db, void *pAux, int argc,
                        const char *const *argv, sqlite3_vtab **ppVtab,
                        char **pzErr){
  return tinkvConstruct(db, pAux, argc, argv, ppVtab, pzErr, 0);
}

/* xDisconnect: close this connection's handle; the store stays. */
static int tinkvDisconnect(sqlite3_vtab *pVtab){
  TinkvTable *pTab = (TinkvTable*)pVtab;
  tinkvConnRemove(pTab->pConn, pTab);
  freeTable(pTab);
  return SQLITE_OK;
}

/*
** Reopen the store of pTab after a DROP TABLE that closed it and then
** refused; on failure the table stays closed with the reason.
*/
static void reopenAfterRefusal(TinkvTable *pTab){
  char *zErr = 0;
  int rc = tinkvStoreOpen(pTab->zPath, &pTab->opts, 0, 0, &pTab->pKv, &zErr);
  if( rc==SQLITE_OK && tkv_cursor_open(pTab->pKv, &pTab->pIdCsr)!=TKV_OK ){
    pTab->pIdCsr = 0;
    tinkvStoreClose(pTab->zPath, pTab->pKv);
    pTab->pKv = 0;
    rc = SQLITE_IOERR;
  }
  if( rc!=SQLITE_OK && zErr ) closeTable(pTab, rc, zErr);
  else sqlite3_free(zErr);
}

/*
** xDestroy, for DROP TABLE.
**
** Only a table that created its store removes it (owner.c); any other
** table detaches and leaves every file in place.  SQLite calls xDestroy
** while the DROP statement runs, before the commit, which can still fail
** and bring the table back:
**   - inside an explicit transaction or savepoint a DROP of a table that
**     would remove its store is refused (a ROLLBACK could not restore it);
**     SQLite does not pass xDestroy's message on, so it reads "database
**     table is locked" (SQLITE_LOCKED) and the reason goes to sqlite3_log();
**   - a store another connection of this process has open is not removed:
**     the DROP is refused the same way;
**   - otherwise the removal of a store of a database file waits until the
**     DROP is known to have committed (registry.c, pending removals); the
**     store of a file-less database (whose commit cannot fail once the
**     statement ran) is removed at once.
*/
static int tinkvDestroy(sqlite3_vtab *pVtab){
  TinkvTable *pTab = (TinkvTable*)pVtab;
  const char *zDb = tinkvOwnerDbFile(pTab->db, pTab->zSchema);
  int bRemove = pTab->eOwner==TINKV_OWNER_CREATED && pTab->pKv!=0;
  char *zErr = 0;
  int rc = SQLITE_OK;
  if( bRemove && !sqlite3_get_autocommit(pTab->db) ){
    sqlite3_log(SQLITE_LOCKED, "tinkv: DROP TABLE %s refused inside a "
                "transaction: the store '%s' cannot be restored by ROLLBACK; "
                "drop it outside BEGIN...COMMIT", pTab->zName, pTab->zPath);
    return SQLITE_LOCKED;
  }
  if( bRemove && tinkvOpenOthers(pTab->zPath)>1 ){
    sqlite3_log(SQLITE_LOCKED, "tinkv: DROP TABLE %s refused: the store '%s' "
                "is open in another connection", pTab->zName, pTab->zPath);
    return SQLITE_LOCKED;
  }
  if( pTab->pIdCsr ){ tkv_cursor_close(pTab->pIdCsr); pTab->pIdCsr = 0; }
  if( pTab->pSpare ){ tinkvCursorFree(pTab->pSpare); pTab->pSpare = 0; }
  if( !bRemove ){
    if( !pTab->bPrivate ){
      sqlite3_log(SQLITE_NOTICE, "tinkv: DROP TABLE %s detached from the "
                  "store '%s', which it did not create; its files are left "
                  "in place", pTab->zName, pTab->zPath);
    }
  }else if( zDb && !pTab->bPrivate ){
    rc = tinkvPendingAdd(pTab->pConn, zDb, pTab->zName, pTab->zPath,
                         pTab->pKv);
    if( rc==SQLITE_OK ) pTab->pKv = 0;   /* now held by the pending entry */
  }else{
    tinkvStoreClose(pTab->zPath, pTab->pKv);
    pTab->pKv = 0;
    rc = tinkvOwnerRemoveStore(pTab->zPath, &zErr);
    if( rc!=SQLITE_OK ){
      sqlite3_log(rc, "tinkv: DROP TABLE %s refused: %s", pTab->zName, zErr);
      sqlite3_free(zErr);
      reopenAfterRefusal(pTab);
      return rc==SQLITE_BUSY ? SQLITE_LOCKED : rc;
    }
  }
  if( rc!=SQLITE_OK ) return rc;
  if( pTab->bPrivate ){
    tinkvPrivateForget(pTab->pConn, pTab->zSchema, pTab->zName);
  }
  tinkvSessionForget(pTab->pConn, pTab->zSchema, pTab->zName);
  tinkvConnRemove(pTab->pConn, pTab);
  freeTable(pTab);
  return SQLITE_OK;
}

/*
** xRename.  A table on its default path finds its store by its name, so
** renaming it would lose the store: refused.  Other tables take the new
** name, which the owner record (or the session) learns too; the old name
** stays in it, usable only by this database.
*/
static int tinkvRename(sqlite3_vtab *pVtab, const char *zNew){
  TinkvTable *pTab = (TinkvTable*)pVtab;
  const char *zDb = tinkvOwnerDbFile(pTab->db, pTab->zSchema);
  char *zName;
  int rc = SQLITE_OK;
  if( pTab->bDefaultPath ){
    return tinkvTableError(pTab, SQLITE_ERROR, "tinkv: cannot rename '%s': "
        "its store '%s' is found by the table name; create the table with a "
        "path option to be able to rename it", pTab->zName, pTab->zPath);
  }
  if( pTab->eOwner!=TINKV_OWNER_NONE && !pTab->bPrivate ){
    char *zErr = 0;
    if( zDb ){
      rc = tinkvOwnerAdd(pTab->zPath, zDb, zNew, pTab->eOwner, &zErr);
    }else{
      rc = tinkvSessionAdd(pTab->pConn, pTab->zSchema, zNew, pTab->zPath,
                           pTab->eOwner);
    }
    if( rc!=SQLITE_OK ){
      if( zErr ) tinkvTableError(pTab, rc, "%s", zErr);
      sqlite3_free(zErr);
      return rc;
    }
  }
  zName = sqlite3_mprintf("%s", zNew);
  if( zName==0 ) return SQLITE_NOMEM;
  sqlite3_free(pTab->zName);
  pTab->zName = zName;
  return SQLITE_OK;
}

static int tinkvBegin(sqlite3_vtab *pVtab){
  return tinkvTableBegin((TinkvTable*)pVtab);
}

/* Phase one of commit: all fallible I/O happens here. */
static int tinkvSync(sqlite3_vtab *pVtab){
  TinkvTable *pTab = (TinkvTable*)pVtab;
  if( pTab->pKv==0 || !tkv_in_transaction(pTab->pKv) ) return SQLITE_OK;
  return tinkvTableStatus(pTab, tkv_prepare(pTab->pKv));
}

/* SQLite ignores the result of xCommit; after tkv_prepare it cannot fail. */
static int tinkvCommit(sqlite3_vtab *pVtab){
  TinkvTable *pTab = (TinkvTable*)pVtab;
  clearReadMarks(pTab->pConn);
  if( pTab->pKv==0 || !tkv_in_transaction(pTab->pKv) ) return SQLITE_OK;
  return tinkvTableStatus(pTab, tkv_commit(pTab->pKv));
}

static int tinkvRollback(sqlite3_vtab *pVtab){
  TinkvTable *pTab = (TinkvTable*)pVtab;
  clearReadMarks(pTab->pConn);
  if( pTab->pKv==0 || !tkv_in_transaction(pTab->pKv) ) return SQLITE_OK;
  return tinkvTableStatus(pTab, tkv_rollback(pTab->pKv));
}

/* Savepoint n.  It may be the first call of a transaction (see above). */
static int tinkvSavepoint(sqlite3_vtab *pVtab, int n){
  TinkvTable *pTab = (TinkvTable*)pVtab;
  int rc = tinkvTableBegin(pTab);
  if( rc==SQLITE_OK ) rc = tinkvTableStatus(pTab, tkv_savepoint(pTab->pKv, n));
  return rc;
}

static int tinkvRelease(sqlite3_vtab *pVtab, int n){
  TinkvTable *pTab = (TinkvTable*)pVtab;
  if( pTab->pKv==0 || !tkv_in_transaction(pTab->pKv) ) return SQLITE_OK;
  return tinkvTableStatus(pTab, tkv_release(pTab->pKv, n));
}

/*
** Roll back to savepoint n.  n is -1 for ROLLBACK TO the savepoint that
** opened the transaction (SAVEPOINT outside BEGIN): everything since the
** start is undone and the transaction stays open.  That is savepoint 0
** once every savepoint is forgotten (the engine then undoes since begin).
*/
static int tinkvRollbackTo(sqlite3_vtab *pVtab, int n){
  TinkvTable *pTab = (TinkvTable*)pVtab;
  int rc = TKV_OK;
  if( pTab->pKv==0 || !tkv_in_transaction(pTab->pKv) ) return SQLITE_OK;
  if( n<0 ){
    rc = tkv_release(pTab->pKv, 0);
    n = 0;
  }
  if( rc==TKV_OK ) rc = tkv_rollback_to(pTab->pKv, n);
  return tinkvTableStatus(pTab, rc);
}

/*
** The module.  iVersion 2: the savepoint methods are used.  Designated
** initializers keep this valid for sqlite3.h versions with more methods.
*/
sqlite3_module tinkvModule = {
  .iVersion    = 2,
  .xCreate     = tinkvCreate,
  .xConnect    = tinkvConnect,
  .xBestIndex  = tinkvBestIndex,
  .xDisconnect = tinkvDisconnect,
  .xDestroy    = tinkvDestroy,
  .xOpen       = tinkvOpen,
  .xClose      = tinkvClose,
  .xFilter     = tinkvFilter,
  .xNext       = tinkvNext,
  .xEof        = tinkvEof,
  .xColumn     = tinkvColumn,
  .xRowid      = tinkvRowid,
  .xUpdate     = tinkvUpdate,
  .xBegin      = tinkvBegin,
  .xSync       = tinkvSync,
  .xCommit     = tinkvCommit,
  .xRollback   = tinkvRollback,
  .xFindFunction = 0,
  .xRename     = tinkvRename,
  .xSavepoint  = tinkvSavepoint,
  .xRelease    = tinkvRelease,
  .xRollbackTo = tinkvRollbackTo,
};
