/*
** Where a table's store lives, opening it, and the mapping of engine status
** codes to SQLite errors.  Which tables may open or remove a store is
** decided in owner.c.
**
** The store directory of a table is, in order of preference:
**   - the path option, made absolute against the process's working
**     directory when it is relative (as a shell user expects);
**   - '<database file>-<table name>.tinkv' beside the database file;
**   - for an in-memory or temporary database (or one of the memdb VFS), a
**     private directory made with mkdtemp() and removed when the connection
**     closes.
**
** The path comes from the database schema, which may have been written by
** someone else, so xConnect (tinkvStoreCheckConnect, bCreate=0) never
** creates anything and refuses directories that hold no tinkv store.
*/
#include "tinkvInt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
** Map engine status rc (with the engine's message for this thread) to an
** SQLite result code, and set *pzErr to a message that names the store.
*/
int tinkvStatus(int rc, const char *zPath, char **pzErr){
  const char *zMsg = tkv_errmsg();
  switch( rc ){
    case TKV_OK:
      return SQLITE_OK;
    case TKV_LOCKED:
      *pzErr = sqlite3_mprintf("tinkv: store '%s' is locked by another "
                               "process (%s)", zPath, zMsg);
      return SQLITE_BUSY;
    case TKV_BUSY:
      *pzErr = sqlite3_mprintf("tinkv: store '%s' is busy: another connection"
                               " has a write transaction open (%s)",
                               zPath, zMsg);
      return SQLITE_BUSY;
    case TKV_NOTSTORE:
      *pzErr = sqlite3_mprintf("tinkv: '%s' holds no tinkv store; refusing "
                               "to use it (%s)", zPath, zMsg);
      return SQLITE_ERROR;
    case TKV_NOMEM:
      *pzErr = sqlite3_mprintf("tinkv: out of memory (%s)", zMsg);
      return SQLITE_NOMEM;
    case TKV_CORRUPT:
      *pzErr = sqlite3_mprintf("tinkv: store '%s' is corrupt: %s",
                               zPath, zMsg);
      return SQLITE_CORRUPT_VTAB;
    case TKV_TOOBIG:
      *pzErr = sqlite3_mprintf("tinkv: %s", zMsg);
      return SQLITE_TOOBIG;
    case TKV_IO:
    case TKV_BROKEN:
      *pzErr = sqlite3_mprintf("tinkv: I/O error on store '%s': %s",
                               zPath, zMsg);
      return SQLITE_IOERR;
    case TKV_MISUSE:
      *pzErr = sqlite3_mprintf("tinkv: engine misuse: %s", zMsg);
      return SQLITE_MISUSE;
    default:
      *pzErr = sqlite3_mprintf("tinkv: %s (%s)", tkv_strerror(rc), zMsg);
      return SQLITE_ERROR;
  }
}

/*
** Set *pzPath to the default store path of table zName in schema zSchema:
** beside the database file, or NULL for an in-memory or temporary database
** (the caller then makes a private directory).
*/
int tinkvStoreDefaultPath(sqlite3 *db, const char *zSchema, const char *zName,
                          char **pzPath, char **pzErr){
  const char *zFile = tinkvOwnerDbFile(db, zSchema);
  *pzPath = 0;
  if( zFile==0 ) return SQLITE_OK;
  if( strchr(zName, '/') ){
    *pzErr = sqlite3_mprintf("tinkv: table name '%s' contains '/' and cannot"
                             " name a store; give a path option", zName);
    return SQLITE_ERROR;
  }
  *pzPath = sqlite3_mprintf("%s-%s.tinkv", zFile, zName);
  return *pzPath ? SQLITE_OK : SQLITE_NOMEM;
}

/* Set *pzAbs to zPath made absolute against the working directory. */
int tinkvStoreAbsolutePath(const char *zPath, char **pzAbs, char **pzErr){
  char *zCwd;
  if( zPath[0]=='/' ){
    *pzAbs = sqlite3_mprintf("%s", zPath);
    return *pzAbs ? SQLITE_OK : SQLITE_NOMEM;
  }
  zCwd = getcwd(0, 0);
  if( zCwd==0 ){
    *pzErr = sqlite3_mprintf("tinkv: cannot resolve relative path '%s': "
                             "getcwd: %s", zPath, strerror(errno));
    return SQLITE_ERROR;
  }
  while( zPath[0]=='.' && zPath[1]=='/' ) zPath += 2;
  *pzAbs = sqlite3_mprintf("%s/%s", strcmp(zCwd, "/")==0 ? "" : zCwd, zPath);
  free(zCwd);
  return *pzAbs ? SQLITE_OK : SQLITE_NOMEM;
}

/* Make a private, empty directory for the store of an in-memory table. */
int tinkvStoreMakePrivateDir(char **pzDir, char **pzErr){
  const char *zTmp = getenv("TMPDIR");
  char *zDir;
  if( zTmp==0 || zTmp[0]==0 ) zTmp = "/tmp";
  zDir = sqlite3_mprintf("%s/tinkv-XXXXXX", zTmp);
  if( zDir==0 ) return SQLITE_NOMEM;
  if( mkdtemp(zDir)==0 ){
    *pzErr = sqlite3_mprintf("tinkv: cannot make a temporary directory in "
                             "'%s': %s", zTmp, strerror(errno));
    sqlite3_free(zDir);
    return SQLITE_ERROR;
  }
  *pzDir = zDir;
  return SQLITE_OK;
}

/* Set *pzParent to the directory part of zPath ("/" or "." at least). */
static int parentOf(const char *zPath, char **pzParent){
  const char *zSlash = strrchr(zPath, '/');
  if( zSlash==0 ){
    *pzParent = sqlite3_mprintf(".");
  }else if( zSlash==zPath ){
    *pzParent = sqlite3_mprintf("/");
  }else{
    *pzParent = sqlite3_mprintf("%.*s", (int)(zSlash-zPath), zPath);
  }
  return *pzParent ? SQLITE_OK : SQLITE_NOMEM;
}

/*
** Check, before CREATE VIRTUAL TABLE opens zPath with creation allowed,
** that it can be a store directory: an existing directory, or a missing one
** whose parent exists and is writable.
*/
int tinkvStoreCheckCreate(const char *zPath, char **pzErr){
  struct stat st;
  char *zParent = 0;
  int rc = SQLITE_OK;
  if( stat(zPath, &st)==0 ){
    if( !S_ISDIR(st.st_mode) ){
      *pzErr = sqlite3_mprintf("tinkv: '%s' exists and is not a directory",
                               zPath);
      return SQLITE_ERROR;
    }
    if( access(zPath, R_OK|W_OK|X_OK) ){
      *pzErr = sqlite3_mprintf("tinkv: no permission to use directory '%s'",
                               zPath);
      return SQLITE_PERM;
    }
    return SQLITE_OK;
  }
  if( errno!=ENOENT ){
    *pzErr = sqlite3_mprintf("tinkv: cannot use '%s': %s",
                             zPath, strerror(errno));
    return errno==EACCES ? SQLITE_PERM : SQLITE_ERROR;
  }
  if( lstat(zPath, &st)==0 ){
    /* A link to nowhere: creating the store would follow it. */
    *pzErr = sqlite3_mprintf("tinkv: '%s' is a symbolic link to a missing "
                             "path", zPath);
    return SQLITE_ERROR;
  }
  if( parentOf(zPath, &zParent) ) return SQLITE_NOMEM;
  if( stat(zParent, &st) || !S_ISDIR(st.st_mode) ){
    *pzErr = sqlite3_mprintf("tinkv: cannot create store '%s': parent "
                             "directory '%s' does not exist", zPath, zParent);
    rc = SQLITE_ERROR;
  }else if( access(zParent, W_OK|X_OK) ){
    *pzErr = sqlite3_mprintf("tinkv: cannot create store '%s': no permission"
                             " to write in '%s'", zPath, zParent);
    rc = SQLITE_PERM;
  }
  sqlite3_free(zParent);
  return rc;
}

/*
** Check, before a connection opens the store of an existing table, that
** zPath is a directory holding a tinkv store.  Nothing is created.
*/
int tinkvStoreCheckConnect(const char *zPath, char **pzErr){
  struct stat st;
  if( stat(zPath, &st) ){
    *pzErr = sqlite3_mprintf("tinkv: no store at '%s' (%s; was it moved or "
                             "deleted?)", zPath, strerror(errno));
    return SQLITE_CANTOPEN;
  }
  if( !S_ISDIR(st.st_mode) ){
    *pzErr = sqlite3_mprintf("tinkv: '%s' is not a directory", zPath);
    return SQLITE_CANTOPEN;
  }
  if( access(zPath, R_OK|W_OK|X_OK) ){
    *pzErr = sqlite3_mprintf("tinkv: no permission to use directory '%s'",
                             zPath);
    return SQLITE_PERM;
  }
  if( !tkv_is_store(zPath) ){
    *pzErr = sqlite3_mprintf("tinkv: '%s' holds no tinkv store; refusing to "
                             "use it", zPath);
    return SQLITE_CANTOPEN;
  }
  return SQLITE_OK;
}

/*
** Open the store in zPath; bCreate allows making it.  mGiven says which of
** the options were given explicitly: an option the engine already open in
** this process cannot honour is an error (see registry.c).  Close with
** tinkvStoreClose.
*/
int tinkvStoreOpen(const char *zPath, const tkv_options *pOpts,
                   unsigned mGiven, int bCreate, tkv_db **ppKv, char **pzErr){
  tkv_options opts = *pOpts;
  int rc;
  opts.create = bCreate;
  *ppKv = 0;
  rc = tinkvOpenAcquire(zPath, pOpts, mGiven, pzErr);
  if( rc!=SQLITE_OK ) return rc;
  rc = tkv_open(zPath, &opts, ppKv);
  if( rc!=TKV_OK ){
    *ppKv = 0;
    tinkvOpenRelease(zPath);
    return tinkvStatus(rc, zPath, pzErr);
  }
  return SQLITE_OK;
}

/* Close a handle opened by tinkvStoreOpen. */
void tinkvStoreClose(const char *zPath, tkv_db *pKv){
  if( pKv ){
    tkv_close(pKv);
    tinkvOpenRelease(zPath);
  }
}

/*
** Classify the keys of a store that records no encoding: *pbAllTyped is
** set when every key is a key of the SQL encoding (keycodec.c), *pbEmpty
** when there is none.  Keys are in memory: no value is read.
*/
static int classifyKeys(tkv_db *pKv, int *pbEmpty, int *pbAllTyped){
  tkv_cursor *pCur = 0;
  int rc = tkv_cursor_open(pKv, &pCur);
  *pbEmpty = 1;
  *pbAllTyped = 1;
  if( rc==TKV_OK ) rc = tkv_cursor_seek(pCur, 0, 0);
  while( rc==TKV_OK && tkv_cursor_valid(pCur) ){
    const void *pKey;
    size_t nKey;
    tkv_cursor_key(pCur, &pKey, &nKey);
    *pbEmpty = 0;
    if( !tinkvKeyIsValid((const u8*)pKey, nKey) ){
      *pbAllTyped = 0;
      break;
    }
    rc = tkv_cursor_next(pCur);
  }
  if( pCur ) tkv_cursor_close(pCur);
  return rc;
}

/*
** Check that the store open in pKv holds keys and values of the kind the
** table reads: raw bytes (bRaw, encoding=raw, as tinkv-server writes them)
** or the typed SQL encoding.  A store records which (tkv_encoding); one
** that does not yet is classified here and then recorded:
**
**   no keys                  the table's kind
**   every key a SQL key      SQL: a SQL table's store from before the
**                            record existed (a raw table refuses it)
**   some other key           raw (a typed table refuses it)
**
** A mismatch is an error that says which option reads the store, so that
** no table ever returns another encoding's bytes as its own values.  A
** read-only handle (bReadonly) records nothing.
*/
int tinkvStoreCheckEncoding(tkv_db *pKv, const char *zPath, int bRaw,
                            int bReadonly, char **pzErr){
  int want = bRaw ? TKV_ENCODING_RAW : TKV_ENCODING_SQL;
  int enc = TKV_ENCODING_UNKNOWN;
  int rc = tkv_encoding(pKv, &enc);
  if( rc==TKV_OK && enc==TKV_ENCODING_UNKNOWN ){
    int bEmpty = 1, bAllTyped = 1;
    rc = classifyKeys(pKv, &bEmpty, &bAllTyped);
    if( rc==TKV_OK ){
      if( bEmpty ) enc = want;
      else enc = bAllTyped ? TKV_ENCODING_SQL : TKV_ENCODING_RAW;
      if( enc==want && !bReadonly ) rc = tkv_set_encoding(pKv, enc);
    }
  }
  if( rc!=TKV_OK ) return tinkvStatus(rc, zPath, pzErr);
  if( enc==want ) return SQLITE_OK;
  if( bRaw ){
    *pzErr = sqlite3_mprintf("tinkv: store '%s' holds the typed keys and "
        "values of SQL tables, not raw bytes; open it without encoding=raw",
        zPath);
  }else{
    *pzErr = sqlite3_mprintf("tinkv: store '%s' holds raw keys and values "
        "(as tinkv-server and the C API write them), not the typed encoding "
        "of SQL tables; open it with encoding=raw to read them as BLOBs",
        zPath);
  }
  return SQLITE_MISMATCH;
}
