/*
** Differential test of the tinkv virtual table against a native table.
**
** Two connections run the same seeded random statements: one on
**   CREATE VIRTUAL TABLE kv USING tinkv('<dir>/kv')
** and one on the native
**   CREATE TABLE kv(key PRIMARY KEY NOT NULL, value)
** (both tables are named kv so that error messages compare as they are).
** The statements cover every kind of write and conflict mode, range, IN,
** LIKE, GLOB and ORDER BY queries, transactions with savepoints and
** rollbacks, keys and values of every type (1 and 1.0, '1' and x'31'), and
** 1 MiB blobs.  After every statement the results, the error (code and
** message), changes() and the whole table contents (with types, in key
** order) must be equal.
**
** Multi-row UPDATEs that change keys depend on the order in which rows are
** processed: SQLite processes a native table's rows in rowid order and a
** virtual table's in the order of its scan (key order for tinkv).  Such
** statements (with every conflict clause) are generated right after the
** native table was rewritten in key order, so that both orders agree.
** INSERT ... SELECT without ORDER BY is not generated.
**
** Seeds vary the set-up: seed%4==1 runs in UTF-16be databases, seed%4==2
** in UTF-16le ones, seed%4==3 with an application-defined like() and
** glob() that fold more than ASCII (as ICU's do).  Keys and bounds at
** the 1 MiB key limit, subqueries, compound SELECTs and joins supplying
** bounds from columns of every affinity are drawn in every seed.
**
** Environment: TINKV_SO (the extension), TINKV_DIFF_SEEDS (default 12),
** TINKV_DIFF_STEPS (statements per seed, default 400), TINKV_DIFF_SEED
** (run only this seed, to reproduce a failure).
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "testutil.h"

#define BIG_BLOB (1u << 20)

/* One side of the comparison. */
typedef struct Side {
  sqlite3 *db;
  const char *zName;           /* "tinkv" or "native" */
} Side;

/* A bound parameter. */
typedef struct Param {
  int eType;                   /* SQLITE_INTEGER ... SQLITE_NULL */
  sqlite3_int64 i;
  double r;
  char z[32];                  /* text, also blob bytes (nz bytes) */
  int nz;
  int bBig;                    /* BLOB of BIG_BLOB bytes from aBig */
  int nHuge;                   /* >0: TEXT ('k' x nHuge) or BLOB (aBig) of
                               ** this size, near the key size limit */
} Param;

/* The outcome of one statement on one side. */
typedef struct Outcome {
  int rc;                      /* extended result code */
  char *zErr;                  /* error message, or NULL */
  int nChange;                 /* sqlite3_changes() after a write */
  char *zRows;                 /* rendered rows */
  size_t nRows;
} Outcome;

static uint64_t gRand;
static unsigned char *aBig;    /* pattern of the 1 MiB blobs */
static char *aHuge;            /* 'k' x (KEY_MAX+2): text near the limit */
static int bUniKeys;           /* draw keys with characters above U+00FF */
static int bUtf16;             /* UTF-16 databases: no random-byte BLOB keys
                               ** (as text they may hold unpaired surrogates,
                               ** which tinkv refuses; see README) */
static int bUtf16le;           /* UTF-16le: no BLOB keys at all.  Made into
                               ** text (key || 'x') they give characters above
                               ** U+00FF, and there SQLite's own GLOB 'a*' on
                               ** an index (a native table) takes the range
                               ** of UTF-16le bytes as exact and returns text
                               ** that does not start with 'a'. */

#define KEY_MAX (1 << 20)      /* tinkv's limit on an encoded key */

static unsigned rnd(unsigned n){ return (unsigned)(tu_rand(&gRand) % n); }

/* -------------------------------------------------------- Generation. */

static sqlite3_int64 aIntKey[] = {     /* see checkIntRealCompare() */
  -3, -1, 0, 1, 2, 3, 5, 10, 42, 100,
  9007199254740993LL, INT64_MAX, INT64_MIN
};
static const double aRealKey[] = {
  1.0, 2.0, 2.5, -0.0, -1.5, 0.5, 3.0, 1e20, -1e20, 9.3e18, -9.3e18,
  0.1, 100.0, 9007199254740992.0, -3.0
};
static const char *const azTextKey[] = {
  "a", "A", "ab", "aB", "b", "1", "10", "", "user:1", "User:2", "user:10",
  "x%y", "\xc3\xa9t\xc3\xa9", "zz", "-1", "Inf", "a_b", " 2", "01", "2.5",
  "1e1", "+3"
};
static const char *const azBlobKey[] = { "", "\x00", "a", "ab", "\xff", "1" };
/* Keys that Unicode-folding like()/glob() match differently (Kelvin sign,
** long s, A with macron). */
static const char *const azUniKey[] = {
  "\xe2\x84\xaa" "elvin", "kelvin", "Kelvin", "\xc5\xbf" "un", "sun", "SUN",
  "\xc4\x80"
};

/*
** SQLite compares an INTEGER with a REAL through long double where that is
** wider than double.  Under valgrind, which computes long double with the
** precision of double, the native table then takes an integer that double
** cannot hold for the REAL next to it (2^53+1 and 2^53, INT64_MAX and the
** 2^63 that INT64_MAX + 1 gives), while tinkv compares them exactly.  The
** native table being the oracle, such keys are then replaced by integers
** far from every REAL key, which both sides compare alike: 2^52+1 and 2^62.
*/
static void checkIntRealCompare(void){
  sqlite3 *db = 0;
  sqlite3_stmt *pStmt = 0;
  int bSame = 0;
  size_t i;
  assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT 9007199254740993 = "
                   "9007199254740992.0", -1, &pStmt, 0), SQLITE_OK);
  assert_int_equal(sqlite3_step(pStmt), SQLITE_ROW);
  bSame = sqlite3_column_int(pStmt, 0);
  sqlite3_finalize(pStmt);
  sqlite3_close(db);
  if( !bSame ) return;
  printf("differential: this SQLite compares integers with reals at double "
         "precision; keys over 2^53 are left out\n");
  for(i=0; i<sizeof(aIntKey)/sizeof(aIntKey[0]); i++){
    if( aIntKey[i]==9007199254740993LL ) aIntKey[i] = 4503599627370497LL;
    if( aIntKey[i]==INT64_MAX ) aIntKey[i] = 4611686018427387904LL;
  }
}

/* A random key (or, rarely, NULL). */
static void genKey(Param *p){
  memset(p, 0, sizeof(*p));
  if( rnd(400)==0 ){
    /* At the limit: TEXT of KEY_MAX-1 bytes (KEY_MAX encoded) or one
    ** less, or a BLOB of KEY_MAX-1 bytes. */
    p->nHuge = KEY_MAX - 1 - (int)rnd(2);
    p->eType = (rnd(3) || bUtf16) ? SQLITE_TEXT : SQLITE_BLOB;
    return;
  }
  if( bUniKeys && rnd(12)==0 ){
    const char *z = azUniKey[rnd(sizeof(azUniKey)/sizeof(azUniKey[0]))];
    p->eType = SQLITE_TEXT;
    p->nz = (int)strlen(z);
    memcpy(p->z, z, (size_t)p->nz);
    return;
  }
  switch( rnd(10) ){
    case 0: case 1: case 2:
      p->eType = SQLITE_INTEGER;
      p->i = aIntKey[rnd(sizeof(aIntKey)/sizeof(aIntKey[0]))];
      break;
    case 3: case 4:
      p->eType = SQLITE_FLOAT;
      p->r = aRealKey[rnd(sizeof(aRealKey)/sizeof(aRealKey[0]))];
      break;
    case 5: case 6: case 7: {
      const char *z = azTextKey[rnd(sizeof(azTextKey)/sizeof(azTextKey[0]))];
      p->eType = SQLITE_TEXT;
      p->nz = (int)strlen(z);
      memcpy(p->z, z, (size_t)p->nz);
      break;
    }
    case 8: if( !bUtf16le ){
      int i = (int)rnd(sizeof(azBlobKey)/sizeof(azBlobKey[0]));
      p->eType = SQLITE_BLOB;
      p->nz = i==0 ? 0 : (i==1 ? 1 : (int)strlen(azBlobKey[i]));
      memcpy(p->z, azBlobKey[i], (size_t)p->nz);
      break;
    }
    /* fall through */
    default:
      if( rnd(8)==0 ){
        p->eType = SQLITE_NULL;
      }else{
        p->eType = SQLITE_INTEGER;
        p->i = (sqlite3_int64)rnd(20);
      }
      break;
  }
}

/* A random value: any type, sometimes a 1 MiB blob. */
static void genValue(Param *p){
  memset(p, 0, sizeof(*p));
  switch( rnd(12) ){
    case 0: case 1:
      p->eType = SQLITE_INTEGER;
      p->i = (sqlite3_int64)(tu_rand(&gRand) >> rnd(64));
      if( rnd(2) ) p->i = -p->i;
      break;
    case 2: case 3:
      p->eType = SQLITE_FLOAT;
      p->r = (double)(sqlite3_int64)rnd(2000) / 8.0 - 100.0;
      break;
    case 4: case 5: case 6:
      p->eType = SQLITE_TEXT;
      p->nz = snprintf(p->z, sizeof(p->z), "v%u", rnd(1000));
      break;
    case 7: case 8:
      p->eType = SQLITE_BLOB;
      p->nz = (int)rnd(6);
      memcpy(p->z, "\x00\x01\x7f\x80\xff\x10", (size_t)p->nz);
      break;
    case 9:
      p->eType = SQLITE_BLOB;
      p->bBig = rnd(4)==0;
      if( !p->bBig ){ p->nz = 1; p->z[0] = 'q'; }
      break;
    default:
      p->eType = SQLITE_NULL;
      break;
  }
}

/* A LIKE or GLOB pattern. */
static void genPattern(Param *p, int bGlob){
  static const char *const azLike[] = {
    "a%", "A%", "user%", "USER:1%", "1%", "%b", "U_er%", "x\\%%", "%",
    "-%", "i%", "\xc3\xa9%", "a_%", "1.0%", "ab", "kel%", "sun", "s%", "k%"
  };
  static const char *const azGlob[] = {
    "a*", "A*", "u*", "user:1*", "1*", "[ab]*", "*", "?", "-*", "I*", "a?b",
    "*b", "SUN*", "k*", "s*", "kel*"
  };
  const char *z = bGlob ? azGlob[rnd(sizeof(azGlob)/sizeof(azGlob[0]))]
                        : azLike[rnd(sizeof(azLike)/sizeof(azLike[0]))];
  memset(p, 0, sizeof(*p));
  p->eType = SQLITE_TEXT;
  p->nz = (int)strlen(z);
  memcpy(p->z, z, (size_t)p->nz);
}

/* Growing SQL text with its parameters. */
typedef struct Stmt {
  char zSql[1024];
  Param aParam[12];
  int nParam;
} Stmt;

static void sqlAppend(Stmt *s, const char *zFmt, ...){
  size_t n = strlen(s->zSql);
  va_list ap;
  va_start(ap, zFmt);
  vsnprintf(&s->zSql[n], sizeof(s->zSql)-n, zFmt, ap);
  va_end(ap);
}

static void addKey(Stmt *s){ genKey(&s->aParam[s->nParam++]); sqlAppend(s, "?"); }

/* A key to compare with: any key, or rarely TEXT longer than any key. */
static void addBound(Stmt *s){
  Param *p = &s->aParam[s->nParam++];
  genKey(p);
  if( rnd(200)==0 ){
    memset(p, 0, sizeof(*p));
    p->eType = SQLITE_TEXT;
    p->nHuge = KEY_MAX - 1 + (int)rnd(3);
  }
  sqlAppend(s, "?");
}
static void addValue(Stmt *s){ genValue(&s->aParam[s->nParam++]); sqlAppend(s, "?"); }

/* A WHERE condition on the table (most of them on the key). */
static void addWhere(Stmt *s){
  switch( rnd(16) ){
    case 0: case 1: sqlAppend(s, "key = "); addBound(s); break;
    case 2: sqlAppend(s, "key IS "); addKey(s); break;
    case 3: sqlAppend(s, "key > "); addBound(s); break;
    case 4: sqlAppend(s, "key <= "); addBound(s); break;
    case 5:
      sqlAppend(s, "key >= "); addBound(s);
      sqlAppend(s, " AND key < "); addBound(s);
      break;
    case 6:
      sqlAppend(s, "key BETWEEN "); addKey(s);
      sqlAppend(s, " AND "); addKey(s);
      break;
    case 7:
      sqlAppend(s, "key LIKE ?");
      genPattern(&s->aParam[s->nParam++], 0);
      break;
    case 8:
      sqlAppend(s, "key GLOB ?");
      genPattern(&s->aParam[s->nParam++], 1);
      break;
    case 9:
      sqlAppend(s, "key IN ("); addBound(s); sqlAppend(s, ", "); addBound(s);
      sqlAppend(s, ", "); addKey(s); sqlAppend(s, ")");
      break;
    case 10: sqlAppend(s, "typeof(key) = 'integer'"); break;
    case 11: sqlAppend(s, "value = "); addValue(s); break;
    case 12: sqlAppend(s, "key < 'b' AND key LIKE 'a%%'"); break;
    case 13: sqlAppend(s, "key > 2 AND key < 'm'"); break;
    case 14: sqlAppend(s, "key LIKE 'user:%%' AND key > 'user:1'"); break;
    default: sqlAppend(s, "1"); break;
  }
}

static const char *conflictClause(void){
  static const char *const az[] = {
    "", "", "OR REPLACE ", "OR IGNORE ", "OR FAIL ", "OR ABORT ",
    "OR ROLLBACK "
  };
  return az[rnd(7)];
}

/* Transaction control, keeping a count of open savepoints. */
static int nSavepoint;
static int bInTxn;

static void genTxn(Stmt *s){
  switch( rnd(8) ){
    case 0:
      sqlAppend(s, "BEGIN");
      break;
    case 1: case 2:
      sqlAppend(s, bInTxn ? "COMMIT" : "BEGIN");
      break;
    case 3:
      sqlAppend(s, "ROLLBACK");
      break;
    case 4: case 5:
      sqlAppend(s, "SAVEPOINT s%d", nSavepoint);
      break;
    case 6:
      sqlAppend(s, "ROLLBACK TO s%d", nSavepoint>0 ? (int)rnd((unsigned)nSavepoint) : 0);
      break;
    default:
      sqlAppend(s, "RELEASE s%d", nSavepoint>0 ? (int)rnd((unsigned)nSavepoint) : 0);
      break;
  }
}

/*
** Statements comparing the key with columns of table aff, whose INTEGER,
** TEXT, NUMERIC, REAL and untyped columns make SQLite convert TEXT keys that
** look like numbers before comparing (as it does for a native table).
*/
static void genAffinity(Stmt *s){
  static const char *const azCol[] = { "i", "t", "n", "r", "b" };
  static const char *const azOp[] = {
    "=", "=", "IS", ">", "<=", ">=", "<"
  };
  static const char *const azLit[] = {
    "'5'", "'!'", "' 6'", "'2.5'", "'a'", "'01'", "5", "x'31'", "'1e1'"
  };
  const char *zCol = azCol[rnd(5)];
  const char *zOp = azOp[rnd(7)];
  unsigned iRow = 1+rnd(8);
  switch( rnd(10) ){
    case 0: case 1:
      sqlAppend(s, "SELECT aff.rowid, kv.key FROM aff JOIN kv ON kv.key %s "
                "aff.%s ORDER BY 1, 2", zOp, zCol);
      break;
    case 2:
      sqlAppend(s, "SELECT key FROM kv WHERE key IN (SELECT %s FROM aff) "
                "ORDER BY key", zCol);
      break;
    case 3:
      sqlAppend(s, "DELETE FROM kv WHERE key %s (SELECT %s FROM aff WHERE "
                "rowid = %u)", rnd(2) ? "=" : zOp, zCol, iRow);
      break;
    case 4:
      /* A subquery bound, or two (BETWEEN). */
      if( rnd(2) ){
        sqlAppend(s, "SELECT key FROM kv WHERE key %s (SELECT %s FROM aff "
                  "WHERE rowid = %u) ORDER BY key", zOp, zCol, iRow);
      }else{
        sqlAppend(s, "SELECT key FROM kv WHERE key BETWEEN (SELECT %s FROM "
                  "aff WHERE rowid = %u) AND (SELECT %s FROM aff WHERE rowid"
                  " = %u) ORDER BY key", zCol, iRow, azCol[rnd(5)], 1+rnd(8));
      }
      break;
    case 5:
      /* A compound SELECT: its column has the affinity of the first arm's
      ** column but holds the other arm's TEXT as it is. */
      sqlAppend(s, "SELECT key FROM kv WHERE key %s (SELECT %s FROM aff "
                "WHERE rowid = %u UNION ALL SELECT %s) ORDER BY key",
                zOp, zCol, 100+rnd(2), azLit[rnd(9)]);
      break;
    case 6:
      sqlAppend(s, "WITH c(y) AS (SELECT %s FROM aff WHERE rowid <= 2 UNION "
                "ALL SELECT %s) SELECT c.y, kv.key FROM c CROSS JOIN kv "
                "WHERE kv.key %s c.y ORDER BY 1, 2", zCol, azLit[rnd(9)], zOp);
      break;
    case 7:
      sqlAppend(s, "SELECT aff.rowid, kv.key FROM aff LEFT JOIN kv ON kv.key "
                "%s aff.%s AND kv.key %s aff.%s ORDER BY 1, 2", zOp, zCol,
                azOp[3+rnd(4)], azCol[rnd(5)]);
      break;
    case 8:
      sqlAppend(s, "SELECT key FROM kv WHERE key %s CAST(? AS %s) "
                "ORDER BY key", zOp,
                rnd(2) ? "INTEGER" : (rnd(2) ? "REAL" : "NUMERIC"));
      genValue(&s->aParam[s->nParam++]);
      break;
    default:
      sqlAppend(s, "UPDATE kv SET value = ");
      addValue(s);
      sqlAppend(s, " WHERE key %s (SELECT %s FROM aff WHERE rowid = %u)",
                zOp, zCol, iRow);
      break;
  }
}

/*
** Multi-row UPDATEs that change keys, with every conflict clause.  Run
** after the native table was rewritten in key order (see the header).
*/
static void genMultiUpdate(Stmt *s){
  static const char *const azExpr[] = {
    "key + 1", "key - 1", "6 - key", "key * 2", "substr(key, 1, 40) || 'x'",
    "substr(key, 1, 1)", "-key", "key + 0.5", "CAST(key AS TEXT)",
    "upper(key)"
  };
  sqlAppend(s, "UPDATE %skv SET key = %s", conflictClause(),
            azExpr[rnd(sizeof(azExpr)/sizeof(azExpr[0]))]);
  switch( rnd(4) ){
    case 0: break;
    case 1: sqlAppend(s, " WHERE key >= "); addKey(s); break;
    case 2: sqlAppend(s, " WHERE typeof(key) = 'integer'"); break;
    default:
      sqlAppend(s, " WHERE key BETWEEN "); addKey(s);
      sqlAppend(s, " AND "); addKey(s);
      break;
  }
}

/* One random statement; *pbRead says it is a query whose rows matter. */
static void genStmt(Stmt *s, int *pbOrdered, int *pbReorder){
  memset(s, 0, sizeof(*s));
  *pbOrdered = 1;
  *pbReorder = 0;
  switch( rnd(30) ){
    case 27: case 28:
      if( bUtf16 ){
        /* Both orders must be the key order, which in a UTF-16 database
        ** is not tinkv's scan order for text (see boundRange in scan.c). */
        sqlAppend(s, "SELECT count(*) FROM kv");
        break;
      }
      genMultiUpdate(s);
      *pbReorder = 1;
      break;
    case 0: case 1: case 2: case 3:
      sqlAppend(s, "INSERT %sINTO kv VALUES(", conflictClause());
      addKey(s); sqlAppend(s, ", "); addValue(s); sqlAppend(s, ")");
      break;
    case 4:
      sqlAppend(s, "INSERT %sINTO kv VALUES(", conflictClause());
      addKey(s); sqlAppend(s, ", "); addValue(s); sqlAppend(s, "), (");
      addKey(s); sqlAppend(s, ", "); addValue(s); sqlAppend(s, "), (");
      addKey(s); sqlAppend(s, ", "); addValue(s); sqlAppend(s, ")");
      break;
    case 5:
      sqlAppend(s, "REPLACE INTO kv VALUES(");
      addKey(s); sqlAppend(s, ", "); addValue(s); sqlAppend(s, ")");
      break;
    case 6:
      sqlAppend(s, "INSERT %sINTO kv(value) VALUES(", conflictClause());
      addValue(s); sqlAppend(s, ")");
      break;
    case 7: case 8:
      sqlAppend(s, "UPDATE %skv SET value = ", conflictClause());
      addValue(s); sqlAppend(s, " WHERE "); addWhere(s);
      break;
    case 9: case 10:
      sqlAppend(s, "UPDATE %skv SET key = ", conflictClause());
      addKey(s); sqlAppend(s, " WHERE key = "); addKey(s);
      break;
    case 11:
      sqlAppend(s, "UPDATE %skv SET key = ", conflictClause());
      addKey(s); sqlAppend(s, ", value = "); addValue(s);
      sqlAppend(s, " WHERE key IS "); addKey(s);
      break;
    case 12: case 13:
      sqlAppend(s, "DELETE FROM kv WHERE "); addWhere(s);
      break;
    case 14:
      switch( rnd(3) ){
        case 0:
          sqlAppend(s, "INSERT %sINTO kv SELECT key || 'x', value FROM kv "
                    "WHERE length(key) < 4 AND ", conflictClause());
          break;
        case 1:
          sqlAppend(s, "INSERT %sINTO kv SELECT key + 1, value FROM kv "
                    "WHERE typeof(key) IN ('integer','real') AND ",
                    conflictClause());
          break;
        default:
          sqlAppend(s, "INSERT %sINTO kv SELECT substr(key, 1, 1), key FROM "
                    "kv WHERE typeof(key)='text' AND ", conflictClause());
          break;
      }
      addWhere(s);
      sqlAppend(s, " ORDER BY key");
      break;
    case 15: case 16:
      sqlAppend(s, "SELECT key, value FROM kv WHERE "); addWhere(s);
      sqlAppend(s, " ORDER BY key");
      break;
    case 17:
      sqlAppend(s, "SELECT key, typeof(key), typeof(value) FROM kv WHERE ");
      addWhere(s);
      *pbOrdered = 0;
      break;
    case 18:
      sqlAppend(s, "SELECT count(*), sum(length(value)) FROM kv WHERE ");
      addWhere(s);
      break;
    case 19:
      sqlAppend(s, "SELECT key FROM kv WHERE "); addWhere(s);
      sqlAppend(s, " ORDER BY key DESC");
      break;
    case 20:
      sqlAppend(s, "SELECT a.key, b.key FROM kv a JOIN kv b ON a.key = b.value"
                " ORDER BY a.key, b.key");
      break;
    case 21:
      sqlAppend(s, "SELECT key, value FROM kv WHERE "); addWhere(s);
      sqlAppend(s, " ORDER BY key LIMIT 3 OFFSET 1");
      break;
    case 22: case 23:
      genAffinity(s);
      break;
    default:
      genTxn(s);
      break;
  }
}

/* --------------------------------------------------------- Execution. */

static void bindParams(sqlite3_stmt *pStmt, const Stmt *s){
  int i;
  for(i=0; i<s->nParam; i++){
    const Param *p = &s->aParam[i];
    switch( p->eType ){
      case SQLITE_INTEGER: sqlite3_bind_int64(pStmt, i+1, p->i); break;
      case SQLITE_FLOAT: sqlite3_bind_double(pStmt, i+1, p->r); break;
      case SQLITE_TEXT:
        if( p->nHuge ){
          sqlite3_bind_text(pStmt, i+1, aHuge, p->nHuge, SQLITE_STATIC);
        }else{
          sqlite3_bind_text(pStmt, i+1, p->z, p->nz, SQLITE_STATIC);
        }
        break;
      case SQLITE_BLOB:
        if( p->nHuge ){
          sqlite3_bind_blob(pStmt, i+1, aBig, p->nHuge, SQLITE_STATIC);
        }else if( p->bBig ){
          sqlite3_bind_blob(pStmt, i+1, aBig, BIG_BLOB, SQLITE_STATIC);
        }else{
          sqlite3_bind_blob(pStmt, i+1, p->z, p->nz, SQLITE_STATIC);
        }
        break;
      default: sqlite3_bind_null(pStmt, i+1); break;
    }
  }
}

/* Append the rendering of one value: type letter, then content (big
** blobs by length and a checksum). */
static void renderValue(char **pz, size_t *pn, sqlite3_stmt *pStmt, int iCol){
  char buf[128];
  int eType = sqlite3_column_type(pStmt, iCol);
  int n = 0;
  switch( eType ){
    case SQLITE_INTEGER:
      n = snprintf(buf, sizeof buf, "i%lld", sqlite3_column_int64(pStmt, iCol));
      break;
    case SQLITE_FLOAT: {
      /* A -0.0 key is stored as 0.0: SQLite shows both as 0.0. */
      double r = sqlite3_column_double(pStmt, iCol);
      n = snprintf(buf, sizeof buf, "r%.17g", r==0.0 ? 0.0 : r);
      break;
    }
    case SQLITE_NULL:
      n = snprintf(buf, sizeof buf, "n");
      break;
    default: {
      const unsigned char *a = eType==SQLITE_TEXT
          ? sqlite3_column_text(pStmt, iCol)
          : (const unsigned char*)sqlite3_column_blob(pStmt, iCol);
      int nByte = sqlite3_column_bytes(pStmt, iCol);
      uint64_t h = 1469598103934665603ULL;
      int i;
      for(i=0; i<nByte; i++){ h ^= a[i]; h *= 1099511628211ULL; }
      n = snprintf(buf, sizeof buf, "%c%d:%016llx",
                   eType==SQLITE_TEXT ? 't' : 'b', nByte,
                   (unsigned long long)h);
      break;
    }
  }
  *pz = realloc(*pz, *pn + (size_t)n + 2);
  assert_non_null(*pz);
  memcpy(*pz + *pn, buf, (size_t)n);
  *pn += (size_t)n;
  (*pz)[(*pn)++] = ' ';
  (*pz)[*pn] = 0;
}

static int cmpLines(const void *a, const void *b){
  return strcmp(*(char*const*)a, *(char*const*)b);
}

/* Sort the lines of z (for queries without ORDER BY). */
static void sortLines(char *z){
  char *azLine[4096];
  int n = 0;
  size_t nTotal = strlen(z);
  char *zCopy = malloc(nTotal+1);
  char *p;
  int i;
  assert_non_null(zCopy);
  memcpy(zCopy, z, nTotal+1);
  for(p=strtok(zCopy, "\n"); p && n<4096; p=strtok(0, "\n")) azLine[n++] = p;
  qsort(azLine, (size_t)n, sizeof(char*), cmpLines);
  z[0] = 0;
  for(i=0; i<n; i++){ strcat(z, azLine[i]); strcat(z, "\n"); }
  free(zCopy);
}

static void runStmt(Side *pSide, const Stmt *s, int bOrdered, Outcome *pOut){
  sqlite3_stmt *pStmt = 0;
  int rc;
  memset(pOut, 0, sizeof(*pOut));
  rc = sqlite3_prepare_v2(pSide->db, s->zSql, -1, &pStmt, 0);
  if( rc==SQLITE_OK ){
    int nCol = sqlite3_column_count(pStmt);
    bindParams(pStmt, s);
    while( (rc = sqlite3_step(pStmt))==SQLITE_ROW ){
      int i;
      for(i=0; i<nCol; i++) renderValue(&pOut->zRows, &pOut->nRows, pStmt, i);
      pOut->zRows = realloc(pOut->zRows, pOut->nRows + 2);
      pOut->zRows[pOut->nRows++] = '\n';
      pOut->zRows[pOut->nRows] = 0;
    }
  }
  if( rc==SQLITE_DONE ) rc = SQLITE_OK;
  pOut->rc = rc==SQLITE_OK ? SQLITE_OK : sqlite3_extended_errcode(pSide->db);
  if( rc!=SQLITE_OK ) pOut->zErr = strdup(sqlite3_errmsg(pSide->db));
  /* changes() is the count of the last write: compared after writes. */
  pOut->nChange = pStmt && !sqlite3_stmt_readonly(pStmt)
                ? sqlite3_changes(pSide->db) : -1;
  sqlite3_finalize(pStmt);
  if( !bOrdered && pOut->zRows ) sortLines(pOut->zRows);
}

static void freeOutcome(Outcome *p){
  free(p->zErr);
  free(p->zRows);
}

static char *tableDump(Side *pSide){
  Stmt s;
  Outcome o;
  memset(&s, 0, sizeof(s));
  sqlAppend(&s, "SELECT key, value FROM kv ORDER BY key");
  runStmt(pSide, &s, 1, &o);
  if( o.rc!=SQLITE_OK ){
    fprintf(stderr, "dump of %s failed: %s\n", pSide->zName, o.zErr);
    fail();
  }
  free(o.zErr);
  return o.zRows ? o.zRows : strdup("");
}

static void describeParams(const Stmt *s){
  int i;
  for(i=0; i<s->nParam; i++){
    const Param *p = &s->aParam[i];
    switch( p->eType ){
      case SQLITE_INTEGER: fprintf(stderr, "  ?%d = %lld\n", i+1, p->i); break;
      case SQLITE_FLOAT: fprintf(stderr, "  ?%d = %.17g\n", i+1, p->r); break;
      case SQLITE_TEXT:
        if( p->nHuge ) fprintf(stderr, "  ?%d = 'k' x %d\n", i+1, p->nHuge);
        else fprintf(stderr, "  ?%d = '%.*s'\n", i+1, p->nz, p->z);
        break;
      case SQLITE_BLOB:
        fprintf(stderr, "  ?%d = blob(%d)\n", i+1,
                p->nHuge ? p->nHuge : p->bBig ? (int)BIG_BLOB : p->nz);
        break;
      default: fprintf(stderr, "  ?%d = NULL\n", i+1); break;
    }
  }
}

static int sameStr(const char *a, const char *b){
  if( a==0 || b==0 ) return a==b;
  return strcmp(a, b)==0;
}

/* Fold text as a Unicode-aware like()/glob() would (a stand-in for ICU's):
** ASCII lower case, Kelvin sign to k, long s to s, A with macron to a. */
static char *foldText(const unsigned char *z){
  sqlite3_str *pStr = sqlite3_str_new(0);
  while( z && *z ){
    if( z[0]==0xE2 && z[1]==0x84 && z[2]==0xAA ){
      sqlite3_str_appendchar(pStr, 1, 'k'); z += 3;
    }else if( z[0]==0xC5 && z[1]==0xBF ){
      sqlite3_str_appendchar(pStr, 1, 's'); z += 2;
    }else if( z[0]==0xC4 && (z[1]==0x80 || z[1]==0x81) ){
      sqlite3_str_appendchar(pStr, 1, 'a'); z += 2;
    }else{
      char c = (char)*z++;
      if( c>='A' && c<='Z' ) c = (char)(c - 'A' + 'a');
      sqlite3_str_appendchar(pStr, 1, c);
    }
  }
  return sqlite3_str_finish(pStr);
}

static int matchFolded(const char *zPat, const char *z, char cAny, char cOne){
  if( *zPat==0 ) return *z==0;
  if( *zPat==cAny ){
    for(;; z++){
      if( matchFolded(zPat+1, z, cAny, cOne) ) return 1;
      if( *z==0 ) return 0;
    }
  }
  if( *z==0 ) return 0;
  if( *zPat!=cOne && *zPat!=*z ) return 0;
  return matchFolded(zPat+1, z+1, cAny, cOne);
}

static void foldMatch(sqlite3_context *ctx, sqlite3_value **argv, char cAny,
                      char cOne){
  char *zPat, *z;
  if( sqlite3_value_type(argv[0])==SQLITE_NULL
   || sqlite3_value_type(argv[1])==SQLITE_NULL ) return;
  zPat = foldText(sqlite3_value_text(argv[0]));
  z = foldText(sqlite3_value_text(argv[1]));
  sqlite3_result_int(ctx, matchFolded(zPat ? zPat : "", z ? z : "", cAny,
                                      cOne));
  sqlite3_free(zPat);
  sqlite3_free(z);
}
static void appLike(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  (void)argc;
  foldMatch(ctx, argv, '%', '_');
}
static void appGlob(sqlite3_context *ctx, int argc, sqlite3_value **argv){
  (void)argc;
  foldMatch(ctx, argv, '*', '?');
}

/*
** Open one side; bTinkv makes kv a tinkv table in directory zDir.  The
** seed chooses the database encoding and whether like()/glob() are the
** application's (see the header).
*/
static void openSide(Side *pSide, int bTinkv, const char *zDir,
                     uint64_t seed){
  char *zErr = 0;
  char zSql[4200];
  assert_int_equal(sqlite3_open(":memory:", &pSide->db), SQLITE_OK);
  pSide->zName = bTinkv ? "tinkv" : "native";
  if( seed%4==1 || seed%4==2 ){
    assert_int_equal(sqlite3_exec(pSide->db, seed%4==1
        ? "PRAGMA encoding='UTF-16be'" : "PRAGMA encoding='UTF-16le'",
        0, 0, 0), SQLITE_OK);
  }
  if( seed%4==3 ){
    assert_int_equal(sqlite3_create_function(pSide->db, "like", 2,
                     SQLITE_UTF8, 0, appLike, 0, 0), SQLITE_OK);
    assert_int_equal(sqlite3_create_function(pSide->db, "glob", 2,
                     SQLITE_UTF8, 0, appGlob, 0, 0), SQLITE_OK);
  }
  if( bTinkv ){
    const char *zSo = getenv("TINKV_SO");
    sqlite3_enable_load_extension(pSide->db, 1);
    if( sqlite3_load_extension(pSide->db, zSo ? zSo : "build/tinkv", 0, &zErr) ){
      fprintf(stderr, "load: %s\n", zErr);
      fail();
    }
    snprintf(zSql, sizeof zSql,
             "CREATE VIRTUAL TABLE kv USING tinkv('%s/kv', sync=off)", zDir);
  }else{
    snprintf(zSql, sizeof zSql, "CREATE TABLE kv(key PRIMARY KEY NOT NULL, value)");
  }
  if( sqlite3_exec(pSide->db, zSql, 0, 0, &zErr)
   || sqlite3_exec(pSide->db, "CREATE TABLE aff(i INTEGER, t TEXT, "
          "n NUMERIC, r REAL, b); INSERT INTO aff VALUES"
          "(1, '1', 1, 1.0, '1'), (2, '2.5', '2.5', 2.5, 2), "
          "(10, ' 2', '01', 1e1, '01'), (-1, 'a', '-1', -1, x'31'), "
          "(0, '', '1e1', 0.0, 2.5), ('01', '+3', ' 2 ', '3', 'Inf'),"
          "('!', '5', 'x5', 'abc', ' 6'), ('5x', '-1', '!', '2.5e0', '5'),"
          "(100, 100, 100, 100, 100), (' 7 ', ' 7 ', ' 7 ', ' 7 ', ' 7 ')",
          0, 0, &zErr) ){
    fprintf(stderr, "%s: %s\n", zSql, zErr);
    fail();
  }
}

/* Track transaction state as SQLite does, to generate sensible control. */
static void trackTxn(sqlite3 *db){
  bInTxn = !sqlite3_get_autocommit(db);
  if( !bInTxn ) nSavepoint = 0;
}

/* Run TINKV_DIFF_STEPS statements of one seed; return the count run. */
static long runSeed(uint64_t seed, long nStep){
  const char *zDir = tu_tmpdir("diff");
  char zDirCopy[4096];
  Side a, b;
  long iStep;
  snprintf(zDirCopy, sizeof zDirCopy, "%s", zDir);
  openSide(&a, 1, zDirCopy, seed);
  openSide(&b, 0, zDirCopy, seed);
  bUniKeys = 1;
  bUtf16 = seed%4==1 || seed%4==2;
  bUtf16le = seed%4==2;
  gRand = seed*2654435761u + 1;
  nSavepoint = 0;
  bInTxn = 0;
  for(iStep=0; iStep<nStep; iStep++){
    Stmt s;
    Outcome oa, ob;
    int bOrdered, bReorder;
    char *zDumpA, *zDumpB;
    genStmt(&s, &bOrdered, &bReorder);
    if( bReorder ){
      /* Rewrite the native table in key order: rowid order = key order. */
      static const char zReorder[] =
          "CREATE TEMP TABLE ro AS SELECT key, value FROM kv ORDER BY key;"
          "DELETE FROM kv; INSERT INTO kv SELECT key, value FROM ro "
          "ORDER BY key; DROP TABLE ro";
      if( sqlite3_exec(b.db, zReorder, 0, 0, 0)!=SQLITE_OK ){
        fprintf(stderr, "reorder: %s\n", sqlite3_errmsg(b.db));
        fail();
      }
    }
    if( strncmp(s.zSql, "SAVEPOINT", 9)==0 ) nSavepoint++;
    runStmt(&a, &s, bOrdered, &oa);
    runStmt(&b, &s, bOrdered, &ob);
    if( getenv("TINKV_DIFF_TRACE") ){
      fprintf(stderr, "%ld: %s -> %d %s\n", iStep, s.zSql, oa.rc,
              oa.zErr ? oa.zErr : "");
      describeParams(&s);
    }
    trackTxn(b.db);
    zDumpA = tableDump(&a);
    zDumpB = tableDump(&b);
    /* changes(): a multi-row UPDATE OR REPLACE whose REPLACE removed a row
    ** the statement had still to update counts that row on tinkv (SQLite
    ** counts every xUpdate; a native table skips the row).  See README. */
    if( bReorder && strstr(s.zSql, "OR REPLACE") ) oa.nChange = ob.nChange;
    if( oa.rc!=ob.rc || !sameStr(oa.zErr, ob.zErr) || oa.nChange!=ob.nChange
     || !sameStr(oa.zRows, ob.zRows) || strcmp(zDumpA, zDumpB)!=0
     || sqlite3_get_autocommit(a.db)!=sqlite3_get_autocommit(b.db) ){
      fprintf(stderr, "MISMATCH seed=%llu step=%ld\n  %s\n",
              (unsigned long long)seed, iStep, s.zSql);
      describeParams(&s);
      fprintf(stderr, "tinkv:  rc=%d err=%s changes=%d autocommit=%d\n"
              "rows:\n%s\n", oa.rc, oa.zErr ? oa.zErr : "-", oa.nChange,
              sqlite3_get_autocommit(a.db), oa.zRows ? oa.zRows : "");
      fprintf(stderr, "native: rc=%d err=%s changes=%d autocommit=%d\n"
              "rows:\n%s\n", ob.rc, ob.zErr ? ob.zErr : "-", ob.nChange,
              sqlite3_get_autocommit(b.db), ob.zRows ? ob.zRows : "");
      fprintf(stderr, "tinkv table:\n%s\nnative table:\n%s\n", zDumpA, zDumpB);
      fail();
    }
    freeOutcome(&oa);
    freeOutcome(&ob);
    free(zDumpA);
    free(zDumpB);
  }
  sqlite3_close(a.db);
  sqlite3_close(b.db);
  tu_rmrf(zDirCopy);
  return nStep;
}

static long envLong(const char *zName, long iDefault){
  const char *z = getenv(zName);
  return z && *z ? atol(z) : iDefault;
}

static void test_differential(void **state){
  long nSeed = envLong("TINKV_DIFF_SEEDS", 12);
  long nStep = envLong("TINKV_DIFF_STEPS", 400);
  long iOnly = envLong("TINKV_DIFF_SEED", -1);
  long nTotal = 0;
  long i;
  (void)state;
  checkIntRealCompare();
  for(i=0; i<nSeed; i++){
    if( iOnly>=0 && i!=iOnly ) continue;
    nTotal += runSeed((uint64_t)i, nStep);
  }
  printf("differential: %ld statements over %ld seeds, all equal\n",
         nTotal, iOnly>=0 ? 1 : nSeed);
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_differential),
  };
  size_t i;
  uint64_t r = 7;
  aBig = malloc(BIG_BLOB);
  for(i=0; i<BIG_BLOB; i++) aBig[i] = (unsigned char)(tu_rand(&r) >> 56);
  aHuge = malloc(KEY_MAX + 2);
  memset(aHuge, 'k', KEY_MAX + 2);
  i = (size_t)cmocka_run_group_tests(tests, 0, 0);
  free(aBig);
  free(aHuge);
  return (int)i;
}
