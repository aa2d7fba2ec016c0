/*
** Internal interfaces of the tinkv SQLite extension (ext/).
**
** The extension is split by job:
**
**   extension.c   the entry point sqlite3_tinkv_init(): version check and
**                 registration of the module and the SQL functions
**   registry.c    per-connection state: the tinkv tables this connection
**                 has open, and the private stores of in-memory databases
**   options.c     parsing and validation of the CREATE VIRTUAL TABLE
**                 arguments
**   storeopen.c   where a table's store lives, opening it, and turning
**                 engine status codes into SQLite errors
**   owner.c       which tables may open and which may remove a store: the
**                 owner record kept in the store directory
**   keycodec.c    the order-preserving byte encoding of SQL keys
**   valuecodec.c  the encoding of SQL values, and the raw BLOBs of
**                 encoding=raw tables
**   vtab.c        the module: constructors, destructors, transactions
**   scan.c        query planning (xBestIndex) and cursors
**   update.c      xUpdate: INSERT, UPDATE and DELETE with conflict modes
**   functions.c   tinkv_compact(), tinkv_stats(), tinkv_version()
**
** Only extension.c defines the sqlite3_api pointer (SQLITE_EXTENSION_INIT1);
** every other file includes this header, which declares it.
*/
#ifndef TINKV_INT_H
#define TINKV_INT_H

/* The API pointer gets a name of its own: every loadable extension defines
** a global "sqlite3_api", so two of them linked into one program would
** clash ("multiple definition of `sqlite3_api'").  Under SQLITE_CORE (the
** static build for sqlite3_auto_extension) there is no pointer at all. */
#define sqlite3_api sqlite3_tinkv_api
#include <sqlite3ext.h>
#ifndef TINKV_EXTENSION_MAIN
SQLITE_EXTENSION_INIT3
#endif

#include <stddef.h>
#include <stdint.h>
#include "tinkv.h"

typedef sqlite3_int64 i64;
typedef uint64_t u64;
typedef unsigned char u8;

/* The oldest SQLite the extension runs on: SQLITE_VTAB_DIRECTONLY and the
** SQLITE_DIRECTONLY function flag appeared in 3.31.0. */
#define TINKV_MIN_SQLITE 3031000

typedef struct TinkvBuf TinkvBuf;
typedef struct TinkvConfig TinkvConfig;
typedef struct TinkvConn TinkvConn;
typedef struct TinkvTable TinkvTable;
typedef struct TinkvCursor TinkvCursor;
typedef struct TinkvSession TinkvSession;
typedef struct TinkvPending TinkvPending;

/*
** A growable byte buffer, reused across rows so that the hot paths do not
** allocate once it has reached its working size.
*/
struct TinkvBuf {
  u8 *a;                      /* content, or NULL */
  size_t n;                   /* bytes in use */
  size_t nAlloc;              /* bytes allocated */
};

int tinkvBufReserve(TinkvBuf *pBuf, size_t n);
void tinkvBufFree(TinkvBuf *pBuf);

/* ------------------------------------------------------------ options.c */

/*
** The parsed arguments of CREATE VIRTUAL TABLE ... USING tinkv(...).
*/
struct TinkvConfig {
  char *zPath;                /* path= or the positional path; NULL: default */
  tkv_options opts;           /* sync, max_file_size, compact_threshold */
  unsigned mGiven;            /* TINKV_OPT_* bits of the options given */
  int bRaw;                   /* encoding=raw: keys and values are bytes */
};
#define TINKV_OPT_PATH       0x1
#define TINKV_OPT_SYNC       0x2
#define TINKV_OPT_FILESIZE   0x4
#define TINKV_OPT_THRESHOLD  0x8
#define TINKV_OPT_ENCODING   0x10

int tinkvConfigParse(int nArg, const char *const *azArg, TinkvConfig *pCfg,
                     char **pzErr);
void tinkvConfigClear(TinkvConfig *pCfg);

/* ---------------------------------------------------------- registry.c */

/*
** Per-connection state, the pAux of the module and the user data of the
** SQL functions.  It outlives every table of the connection.
*/
struct TinkvConn {
  sqlite3 *db;                /* the connection */
  TinkvTable *pTables;        /* tables connected in this connection */
  struct TinkvPrivate *pPrivate;  /* private stores of in-memory schemas */
  TinkvSession *pSession;     /* stores file-less schemas made or adopted */
  TinkvPending *pPending;     /* store removals waiting for their DROP */
};

TinkvConn *tinkvConnNew(sqlite3 *db);
void tinkvConnFree(void *pConn);
void tinkvConnAdd(TinkvConn *pConn, TinkvTable *pTab);
void tinkvConnRemove(TinkvConn *pConn, TinkvTable *pTab);
TinkvTable *tinkvConnFind(TinkvConn *pConn, const char *zSchema,
                          const char *zName);
const char *tinkvPrivateDir(TinkvConn *pConn, const char *zSchema,
                            const char *zName);
int tinkvPrivateAdd(TinkvConn *pConn, const char *zSchema, const char *zName,
                    const char *zDir);
void tinkvPrivateForget(TinkvConn *pConn, const char *zSchema,
                        const char *zName);
int tinkvFindTable(TinkvConn *pConn, const char *zArg, TinkvTable **ppTab,
                   char **pzErr);
int tinkvSessionAdd(TinkvConn *pConn, const char *zSchema, const char *zName,
                    const char *zPath, int eKind);
int tinkvSessionLookup(TinkvConn *pConn, const char *zSchema,
                       const char *zName, const char *zPath);
void tinkvSessionForget(TinkvConn *pConn, const char *zSchema,
                        const char *zName);
int tinkvPendingAdd(TinkvConn *pConn, const char *zDb, const char *zName,
                    const char *zPath, tkv_db *pKv);
void tinkvPendingResolve(TinkvConn *pConn, int bClosing);
int tinkvOpenAcquire(const char *zPath, const tkv_options *pOpts,
                     unsigned mGiven, char **pzErr);
void tinkvOpenRelease(const char *zPath);
int tinkvOpenOthers(const char *zPath);

/* ------------------------------------------------------------ owner.c */

#define TINKV_OWNER_NONE     0    /* the table neither made nor adopted it */
#define TINKV_OWNER_ADOPTED  1    /* CREATE VIRTUAL TABLE found the store */
#define TINKV_OWNER_CREATED  2    /* CREATE VIRTUAL TABLE made the store */

const char *tinkvOwnerDbFile(sqlite3 *db, const char *zSchema);
int tinkvOwnerLookup(const char *zDir, const char *zDb, const char *zName,
                     int *pbRecord);
int tinkvOwnerAdd(const char *zDir, const char *zDb, const char *zName,
                  int eKind, char **pzErr);
int tinkvOwnerRemoveStore(const char *zDir, char **pzErr);

/* --------------------------------------------------------- storeopen.c */

int tinkvStoreDefaultPath(sqlite3 *db, const char *zSchema, const char *zName,
                          char **pzPath, char **pzErr);
int tinkvStoreAbsolutePath(const char *zPath, char **pzAbs, char **pzErr);
int tinkvStoreMakePrivateDir(char **pzDir, char **pzErr);
int tinkvStoreCheckCreate(const char *zPath, char **pzErr);
int tinkvStoreCheckConnect(const char *zPath, char **pzErr);
int tinkvStoreOpen(const char *zPath, const tkv_options *pOpts,
                   unsigned mGiven, int bCreate, tkv_db **ppKv, char **pzErr);
void tinkvStoreClose(const char *zPath, tkv_db *pKv);
int tinkvStoreCheckEncoding(tkv_db *pKv, const char *zPath, int bRaw,
                            int bReadonly, char **pzErr);
int tinkvStatus(int rc, const char *zPath, char **pzErr);

/* ---------------------------------------------------------- keycodec.c */

/*
** Key encoding tags: the first byte of every encoded key.  Their order is
** SQLite's order of the storage classes (numbers < text < blobs).
*/
#define TINKV_KEY_NEGBIG  0x10    /* REAL below -2^63 */
#define TINKV_KEY_NUM     0x20    /* number in [-2^63, 2^63) */
#define TINKV_KEY_POSBIG  0x30    /* REAL at or above 2^63 */
#define TINKV_KEY_TEXT    0x40
#define TINKV_KEY_BLOB    0x50
#define TINKV_KEY_NUM_INT_LEN  9  /* length of an INTEGER key */

int tinkvKeyEncode(sqlite3_value *pVal, TinkvBuf *pBuf);
size_t tinkvKeyTwin(const u8 *aKey, size_t nKey);
int tinkvKeyIsInteger(const u8 *aKey, size_t nKey);
int tinkvKeyIsValid(const u8 *aKey, size_t nKey);
int tinkvKeyResult(sqlite3_context *ctx, const u8 *aKey, size_t nKey);
int tinkvKeyCompare(const u8 *a, size_t na, const u8 *b, size_t nb);
int tinkvText16IsWellFormed(sqlite3_value *pVal);

/* -------------------------------------------------------- valuecodec.c */

int tinkvValueEncode(sqlite3_value *pVal, TinkvBuf *pBuf);
int tinkvValueResult(sqlite3_context *ctx, void *pData, size_t nData);
int tinkvRawEncode(sqlite3_value *pVal, TinkvBuf *pBuf);
void tinkvRawResult(sqlite3_context *ctx, void *pData, size_t nData);

/* -------------------------------------------------------------- vtab.c */

/*
** One tinkv virtual table as seen by one connection.
*/
struct TinkvTable {
  sqlite3_vtab base;          /* Base class - must be first */
  sqlite3 *db;                /* the connection */
  TinkvConn *pConn;           /* per-connection state */
  TinkvTable *pNext;          /* next table of pConn->pTables */
  char *zSchema;              /* "main", "temp" or an attached name */
  char *zName;                /* table name */
  char *zPath;                /* absolute path of the store directory */
  u8 bDefaultPath;            /* path derived from the table name */
  u8 bPrivate;                /* private directory of an in-memory schema */
  u8 eOwner;                  /* TINKV_OWNER_*: how the table got the store */
  u8 eEnc;                    /* 0 not known yet, 1 UTF-8, 2 UTF-16 database */
  u8 bRaw;                    /* encoding=raw: key and value are raw BLOBs */
  tkv_options opts;           /* the table's options */
  unsigned mGiven;            /* TINKV_OPT_* bits given explicitly */
  u8 bReadonly;               /* the connection opened the database
                              ** read-only (sqlite3_db_readonly) */
  u8 bRoHandle;               /* pKv was opened read-only: bReadonly, or
                              ** PRAGMA query_only was on at connect */
  u8 bReadMark;               /* readMark is set (see tinkvTableReadMark) */
  u64 readMark;               /* tkv_data_version at the first read of the
                              ** open SQL transaction */
  tkv_db *pKv;                /* engine handle; NULL: the table is closed */
  int rcClosed;               /* why it is closed: error code ... */
  char *zClosed;              /* ... and message (NULL: reopen failed) */
  tkv_cursor *pIdCsr;         /* rowid -> key lookups of xUpdate */
  TinkvCursor *pSpare;        /* a closed cursor kept for reuse */
  int nCursor;                /* cursors open on this table */
  TinkvBuf key;               /* scratch: encoded new key */
  TinkvBuf oldKey;            /* scratch: copy of the old key of an UPDATE */
  TinkvBuf val;               /* scratch: encoded value */
};

int tinkvTableError(TinkvTable *pTab, int rc, const char *zFmt, ...);
int tinkvTableStatus(TinkvTable *pTab, int rc);
int tinkvTableBegin(TinkvTable *pTab);
void tinkvTableReadMark(TinkvTable *pTab);
int tinkvTableWritable(TinkvTable *pTab, int bAsk);
int tinkvConnQueryOnly(sqlite3 *db);
int tinkvTableReady(TinkvTable *pTab);
int tinkvTableBadText(TinkvTable *pTab, sqlite3_value *pVal);
int tinkvTableIsUtf16(TinkvTable *pTab);
extern sqlite3_module tinkvModule;

/* -------------------------------------------------------------- scan.c */

int tinkvBestIndex(sqlite3_vtab *pVtab, sqlite3_index_info *pInfo);
int tinkvOpen(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCsr);
int tinkvClose(sqlite3_vtab_cursor *pCsr);
int tinkvFilter(sqlite3_vtab_cursor *pCsr, int idxNum, const char *idxStr,
                int argc, sqlite3_value **argv);
int tinkvNext(sqlite3_vtab_cursor *pCsr);
int tinkvEof(sqlite3_vtab_cursor *pCsr);
int tinkvColumn(sqlite3_vtab_cursor *pCsr, sqlite3_context *ctx, int iCol);
int tinkvRowid(sqlite3_vtab_cursor *pCsr, sqlite_int64 *pRowid);
void tinkvCursorFree(TinkvCursor *pCsr);

/* ------------------------------------------------------------ update.c */

int tinkvUpdate(sqlite3_vtab *pVtab, int argc, sqlite3_value **argv,
                sqlite_int64 *pRowid);

/* --------------------------------------------------------- functions.c */

int tinkvRegisterFunctions(sqlite3 *db, TinkvConn *pConn);
int tinkvSideEffectsAllowed(sqlite3_context *ctx, const char *zFunc);

#endif /* TINKV_INT_H */
