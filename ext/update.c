/*
** xUpdate of the tinkv virtual table: INSERT, UPDATE and DELETE.
**
** The rowid of a row is the engine's id of its key.  SQLite hands the old
** rowid to UPDATE and DELETE; tinkv finds the key through the engine
** (tkv_cursor_seek_id).  Rowids cannot be chosen: an INSERT or UPDATE that
** sets one is refused.
**
** The module declares SQLITE_VTAB_CONSTRAINT_SUPPORT, which promises that a
** constraint violation is detected before anything is written.  Every path
** below checks the NOT NULL and UNIQUE constraints first; the conflict mode
** (sqlite3_vtab_on_conflict) then decides:
**
**   REPLACE            the conflicting row is deleted, then the write done
**   IGNORE             SQLITE_CONSTRAINT: SQLite skips the row
**   ABORT/FAIL/ROLLBACK  SQLITE_CONSTRAINT with SQLite's message: SQLite
**                      undoes the statement or transaction as the mode says
**
** A NULL key violates NOT NULL in every mode (REPLACE has no default to
** use, so SQLite treats it as ABORT, as it does for a native table).
**
** The INTEGER and REAL forms of one number are the same key (see
** keycodec.c), so numeric keys also check their twin.  A write that fails
** half way (I/O error, out of memory) makes SQLite roll the transaction
** back, which undoes the first half in the engine.
*/
#include "tinkvInt.h"

#include <string.h>

static int uniqueError(TinkvTable *pTab){
  return tinkvTableError(pTab, SQLITE_CONSTRAINT_PRIMARYKEY,
                         "UNIQUE constraint failed: %s.key", pTab->zName);
}

static int notNullError(TinkvTable *pTab){
  return tinkvTableError(pTab, SQLITE_CONSTRAINT_NOTNULL,
                         "NOT NULL constraint failed: %s.key", pTab->zName);
}

static int rowidError(TinkvTable *pTab){
  return tinkvTableError(pTab, SQLITE_MISMATCH, "tinkv: cannot set the rowid "
      "of table '%s': the rowid is the store's id of the key", pTab->zName);
}

/* TEXT with an unpaired UTF-16 surrogate (see tinkvText16IsWellFormed). */
static int badTextError(TinkvTable *pTab, const char *zWhat){
  return tinkvTableError(pTab, SQLITE_MISMATCH, "tinkv: a TEXT %s with an "
      "unpaired UTF-16 surrogate cannot be stored in table '%s' (it would "
      "read back as different text)", zWhat, pTab->zName);
}

/*
** Encode key pKey into pTab->key, refusing NULL and oversized keys.  The
** key of an encoding=raw table must be a BLOB: a TEXT or number stored as
** its bytes would read back as a BLOB that no longer equals it.
*/
static int encodeKey(TinkvTable *pTab, sqlite3_value *pKey){
  int rc;
  if( sqlite3_value_type(pKey)==SQLITE_NULL ) return notNullError(pTab);
  if( pTab->bRaw ){
    if( sqlite3_value_type(pKey)!=SQLITE_BLOB ){
      return tinkvTableError(pTab, SQLITE_MISMATCH, "tinkv: the keys of "
          "table '%s' (encoding=raw) are BLOBs: write CAST(key AS BLOB) or "
          "x'...'", pTab->zName);
    }
    rc = tinkvRawEncode(pKey, &pTab->key);
  }else{
    if( tinkvTableBadText(pTab, pKey) ) return badTextError(pTab, "key");
    rc = tinkvKeyEncode(pKey, &pTab->key);
  }
  if( rc ) return rc;
  if( pTab->key.n > TKV_KEY_MAX ){
    return tinkvTableError(pTab, SQLITE_TOOBIG, "tinkv: key too big (%llu "
        "bytes encoded; the limit is %u)", (unsigned long long)pTab->key.n,
        TKV_KEY_MAX);
  }
  return SQLITE_OK;
}

/*
** Encode value pVal into pTab->val, refusing oversized values.  An
** encoding=raw table stores the bytes of any value but NULL, which raw
** stores (and Redis) cannot hold.
*/
static int encodeValue(TinkvTable *pTab, sqlite3_value *pVal){
  int rc;
  if( pTab->bRaw ){
    if( sqlite3_value_type(pVal)==SQLITE_NULL ){
      return tinkvTableError(pTab, SQLITE_CONSTRAINT_NOTNULL, "NOT NULL "
          "constraint failed: %s.value (encoding=raw stores bytes only)",
          pTab->zName);
    }
    rc = tinkvRawEncode(pVal, &pTab->val);
  }else{
    if( tinkvTableBadText(pTab, pVal) ) return badTextError(pTab, "value");
    rc = tinkvValueEncode(pVal, &pTab->val);
  }
  if( rc ) return rc;
  if( pTab->val.n > TKV_VALUE_MAX ){
    return tinkvTableError(pTab, SQLITE_TOOBIG, "tinkv: value too big (%llu "
        "bytes; the limit is %u)", (unsigned long long)pTab->val.n,
        TKV_VALUE_MAX);
  }
  return SQLITE_OK;
}

/* tinkvKeyTwin of pTab->key; raw keys have no twins. */
static size_t keyTwin(TinkvTable *pTab){
  return pTab->bRaw ? 0 : tinkvKeyTwin(pTab->key.a, pTab->key.n);
}

/*
** Set *pnFound to the length of the stored twin of the encoded key in
** pTab->key (see tinkvKeyTwin), or 0 if the twin is not stored.
*/
static int findTwin(TinkvTable *pTab, size_t *pnFound){
  size_t nTwin = keyTwin(pTab);
  int rc;
  *pnFound = 0;
  if( nTwin==0 ) return SQLITE_OK;
  rc = tkv_lookup(pTab->pKv, pTab->key.a, nTwin, 0, 0);
  if( rc==TKV_OK ) *pnFound = nTwin;
  else if( rc!=TKV_NOTFOUND ) return tinkvTableStatus(pTab, rc);
  return SQLITE_OK;
}

/* Delete the key aKey/nKey, which is known to exist. */
static int deleteKey(TinkvTable *pTab, const u8 *aKey, size_t nKey){
  int rc = tkv_delete(pTab->pKv, aKey, nKey);
  if( rc==TKV_NOTFOUND ) return SQLITE_OK;
  return tinkvTableStatus(pTab, rc);
}

/* INSERT of (pKey, pVal); *pRowid receives the new row's id. */
static int insertRow(TinkvTable *pTab, sqlite3_value *pKey,
                     sqlite3_value *pVal, sqlite_int64 *pRowid){
  int bReplace = sqlite3_vtab_on_conflict(pTab->db)==SQLITE_REPLACE;
  size_t nTwin;
  u64 iId = 0;
  int rc;

  rc = encodeKey(pTab, pKey);
  if( rc==SQLITE_OK ) rc = encodeValue(pTab, pVal);
  if( rc==SQLITE_OK ) rc = findTwin(pTab, &nTwin);
  if( rc ) return rc;
  if( nTwin ){
    if( !bReplace ) return uniqueError(pTab);
    rc = deleteKey(pTab, pTab->key.a, nTwin);
    if( rc ) return rc;
  }
  rc = tkv_write(pTab->pKv, pTab->key.a, pTab->key.n, pTab->val.a,
                 pTab->val.n, bReplace ? 0 : TKV_NOOVERWRITE, &iId);
  if( rc==TKV_EXISTS ) return uniqueError(pTab);
  if( rc!=TKV_OK ) return tinkvTableStatus(pTab, rc);
  *pRowid = (sqlite_int64)iId;
  return SQLITE_OK;
}

/*
** Copy the key of engine id iRowid into pTab->oldKey.  *pbFound is 0 if
** no key has that id any more (an earlier write of the same statement
** removed it; SQLite then skips the row, as for a native table).
*/
static int keyOfRowid(TinkvTable *pTab, sqlite3_value *pRowid, int *pbFound){
  i64 iRowid = sqlite3_value_int64(pRowid);
  const void *pKey;
  size_t nKey;
  int rc;
  *pbFound = 0;
  if( iRowid<=0 ) return SQLITE_OK;
  rc = tkv_cursor_seek_id(pTab->pIdCsr, (u64)iRowid);
  if( rc==TKV_NOTFOUND ) return SQLITE_OK;
  if( rc!=TKV_OK ) return tinkvTableStatus(pTab, rc);
  tkv_cursor_key(pTab->pIdCsr, &pKey, &nKey);
  if( tinkvBufReserve(&pTab->oldKey, nKey) ) return SQLITE_NOMEM;
  memcpy(pTab->oldKey.a, pKey, nKey);
  pTab->oldKey.n = nKey;
  *pbFound = 1;
  return SQLITE_OK;
}

/* DELETE of the row with rowid pRowid. */
static int deleteRow(TinkvTable *pTab, sqlite3_value *pRowid){
  int bFound;
  int rc = keyOfRowid(pTab, pRowid, &bFound);
  if( rc || !bFound ) return rc;
  return deleteKey(pTab, pTab->oldKey.a, pTab->oldKey.n);
}

/*
** Write the key in pTab->key with the new value: pVal, or (when the UPDATE
** leaves the value unchanged) the stored bytes of the old key.
*/
static int writeUpdatedRow(TinkvTable *pTab, sqlite3_value *pVal){
  void *pOld = 0;
  size_t nOld = 0;
  int rc;
  if( !sqlite3_value_nochange(pVal) ){
    rc = encodeValue(pTab, pVal);
    if( rc ) return rc;
    rc = tkv_put(pTab->pKv, pTab->key.a, pTab->key.n, pTab->val.a,
                 pTab->val.n);
    return tinkvTableStatus(pTab, rc);
  }
  rc = tkv_get(pTab->pKv, pTab->oldKey.a, pTab->oldKey.n, &pOld, &nOld);
  if( rc==TKV_OK ){
    rc = tkv_put(pTab->pKv, pTab->key.a, pTab->key.n, pOld, nOld);
    tkv_free(pOld);
  }
  return tinkvTableStatus(pTab, rc);
}

/*
** UPDATE of the row with rowid pRowid to (pKey, pVal).  Either may be an
** unchanged ("nochange") value.  When the key changes, the row moves to the
** new key (a new rowid), following the conflict mode if that key exists.
*/
static int updateRow(TinkvTable *pTab, sqlite3_value *pRowid,
                     sqlite3_value *pKey, sqlite3_value *pVal){
  int bReplace = sqlite3_vtab_on_conflict(pTab->db)==SQLITE_REPLACE;
  size_t nTwin;
  int bFound;
  int rc;

  rc = keyOfRowid(pTab, pRowid, &bFound);
  if( rc || !bFound ) return rc;
  if( sqlite3_value_nochange(pKey) ){
    if( tinkvBufReserve(&pTab->key, pTab->oldKey.n) ) return SQLITE_NOMEM;
    memcpy(pTab->key.a, pTab->oldKey.a, pTab->oldKey.n);
    pTab->key.n = pTab->oldKey.n;
  }else{
    rc = encodeKey(pTab, pKey);
    if( rc ) return rc;
  }
  if( tinkvKeyCompare(pTab->key.a, pTab->key.n,
                      pTab->oldKey.a, pTab->oldKey.n)==0 ){
    if( sqlite3_value_nochange(pVal) ) return SQLITE_OK;   /* nothing new */
    return writeUpdatedRow(pTab, pVal);
  }

  /* The key changes.  Look for a row already holding the new key (its own
  ** twin form when the old key was the other form of the same number). */
  nTwin = keyTwin(pTab);
  if( nTwin==0 || tinkvKeyCompare(pTab->key.a, nTwin, pTab->oldKey.a,
                                  pTab->oldKey.n)!=0 ){
    size_t nFound = 0;
    rc = tkv_lookup(pTab->pKv, pTab->key.a, pTab->key.n, 0, 0);
    if( rc==TKV_OK ) nFound = pTab->key.n;
    else if( rc!=TKV_NOTFOUND ) return tinkvTableStatus(pTab, rc);
    if( nFound==0 ){
      rc = findTwin(pTab, &nFound);
      if( rc ) return rc;
    }
    if( nFound ){
      if( !bReplace ) return uniqueError(pTab);
      rc = deleteKey(pTab, pTab->key.a, nFound);
      if( rc ) return rc;
    }
  }
  rc = writeUpdatedRow(pTab, pVal);
  if( rc==SQLITE_OK ) rc = deleteKey(pTab, pTab->oldKey.a, pTab->oldKey.n);
  return rc;
}

/*
** xUpdate.  argc==1: DELETE argv[0].  argv[0] NULL: INSERT with rowid
** argv[1] (must be NULL), key argv[2], value argv[3].  Otherwise UPDATE of
** rowid argv[0] to rowid argv[1] (must be the same), key and value.
*/
int tinkvUpdate(sqlite3_vtab *pVtab, int argc, sqlite3_value **argv,
                sqlite_int64 *pRowid){
  TinkvTable *pTab = (TinkvTable*)pVtab;
  int rc = tinkvTableBegin(pTab);
  if( rc ) return rc;
  if( argc==1 ) return deleteRow(pTab, argv[0]);
  if( sqlite3_value_type(argv[0])==SQLITE_NULL ){
    if( sqlite3_value_type(argv[1])!=SQLITE_NULL ) return rowidError(pTab);
    return insertRow(pTab, argv[2], argv[3], pRowid);
  }
  if( sqlite3_value_type(argv[1])!=SQLITE_INTEGER
   || sqlite3_value_int64(argv[1])!=sqlite3_value_int64(argv[0]) ){
    return rowidError(pTab);
  }
  return updateRow(pTab, argv[0], argv[2], argv[3]);
}
