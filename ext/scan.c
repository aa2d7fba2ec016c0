/*
** Query planning and cursors of the tinkv virtual table.
**
** The keydir is ordered in the byte order of the key encoding (keycodec.c),
** which is SQLite's order of the key column, so every plan produces rows in
** ascending key order and ORDER BY key (ascending) is consumed (not in
** UTF-16 databases, whose text order differs: see boundRange).
**
** Plans, as bits of idxNum; the xFilter arguments come in this order:
**
**   PLAN_KEY_EQ       key = ? or key IS ?                        argv: key
**   PLAN_KEY_IN       (with PLAN_KEY_EQ) key IN (...), all values at once
**                     (SQLite 3.38+, sqlite3_vtab_in)           argv: list
**   PLAN_ROWID_EQ     rowid = ?: one lookup by engine id           argv: rowid
**   PLAN_LOWER(_INCL) key > ? (key >= ?)                         argv: bound
**   PLAN_UPPER(_INCL) key < ? (key <= ?)                         argv: bound
**   PLAN_GLOB         key GLOB ?: the literal prefix of the       argv: pattern
**                     pattern, as ranges
**   PLAN_LIKE         key LIKE ?: as GLOB, one range per ASCII   argv: pattern
**                     case variant of the first letters of the prefix
**   (none)            full scan
**
** key IN (...) takes all its values in one xFilter where SQLite allows it
** (3.38 and later): SQLite then re-checks rows with the IN expression
** itself, which applies affinity as for a native table.  (One value at a
** time, SQLite re-checks each row with a plain "key = value" that ignores
** the IN's affinity.)
**
** SQLite hands LIKE and GLOB constraints over by function name, also when
** the application replaced like() or glob() (the ICU extension folds all of
** Unicode).  The pattern plans assume the built-in functions, so they are
** used only when the functions behave as the built-in ones on probes that
** tell them apart from such replacements (builtinPatternFunc); otherwise
** SQLite checks every row, as it does for a native table.
**
** A GLOB or LIKE prefix is preferred to a range: SQLite derives range terms
** from such patterns itself, and the prefix ranges are as tight or tighter
** (one per case variant instead of 'AB'..'ac').  Equality and ranges are
** used only with BINARY collation.
**
** Every plan visits a superset of the matching keys, in key order, and
** SQLite re-checks the constraints (omit=0).  The superset matters: when
** the other side of a comparison has INTEGER, REAL or NUMERIC affinity (a
** column of another table in a join, a CAST), SQLite converts TEXT keys
** that look like numbers ('1', ' 2.5') before comparing, as it would for a
** native table.  So a number argument also visits the TEXT keys that start
** like a number (NUMTEXT below).  Such an argument may also be TEXT: a
** column with numeric affinity can hold text ('!' in an INTEGER column, or
** '5' from one arm of a compound SELECT).  Under that affinity the text is
** converted too when it looks like a number, and otherwise every converted
** key is below it.  The plan cannot see the affinity, so unless the
** argument is a constant written in the SQL (which has none), a TEXT
** argument that looks like a number also gets the ranges of that number,
** and a TEXT upper bound without a TEXT lower bound also visits NUMTEXT.
** The common point query, key = <text or blob>, stays one keydir lookup
** when the text does not look like a number.
**
** A key is never read from disk: xColumn(0) decodes the keydir's key, and
** the value is read only when xColumn(1) asks for it.
**
** In an encoding=raw table the key column holds BLOBs whose bytes are the
** store's keys as they are.  Plans are made exactly as above, in the space
** of encoded keys, where the raw key k is the BLOB key (0x50, k); the
** ranges are then mapped onto raw keys (rawRanges): the tag is dropped, and
** bounds below every BLOB (numbers, TEXT) become "from the start" or an
** empty range.  So a raw table answers as a native table whose keys are
** all BLOBs: key = 'text' matches nothing, key = CAST('text' AS BLOB) does.
*/
#include "tinkvInt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLAN_KEY_EQ      0x01
#define PLAN_ROWID_EQ    0x02
#define PLAN_LOWER       0x04
#define PLAN_LOWER_INCL  0x08
#define PLAN_UPPER       0x10
#define PLAN_UPPER_INCL  0x20
#define PLAN_GLOB        0x40
#define PLAN_LIKE        0x80
#define PLAN_KEY_IN      0x100
#define PLAN_LITERAL     0x200    /* every argument is a constant in the SQL */

/* Letters of a LIKE prefix expanded into case variants (2^n ranges). */
#define LIKE_MAX_LETTERS 4

/* TEXT keys that numeric affinity may turn into numbers: they start with
** white space (0x09-0x0D, 0x20), a sign, a dot or a digit. */
static const u8 aNumTextLo[] = { TINKV_KEY_TEXT, 0x09 };
static const u8 aNumTextHi[] = { TINKV_KEY_TEXT, 0x3A };

/*
** A half-open range [lo, hi) of encoded keys.  An absent bound is
** unbounded.  Bounds are offsets into TinkvCursor.bounds.
*/
typedef struct TinkvRange {
  size_t iLo, nLo;            /* lower bound (inclusive), if bLo */
  size_t iHi, nHi;            /* upper bound (exclusive), if bHi */
  u8 bLo, bHi;                /* the bound is present */
} TinkvRange;

struct TinkvCursor {
  sqlite3_vtab_cursor base;   /* Base class - must be first */
  tkv_cursor *pKc;            /* engine cursor for scans, opened lazily */
  u8 bEof;                    /* no current row */
  u8 bPoint;                  /* point plan: the row is key/iPointId */
  u64 iPointId;               /* engine id of the point row */
  TinkvBuf key;               /* encoded key of the point row; scratch */
  TinkvBuf bounds;            /* bytes of the range bounds */
  TinkvRange *aRange;         /* ranges to scan, ascending, disjoint */
  int nRange;                 /* ranges in aRange[] */
  int nRangeAlloc;            /* allocated size of aRange[] */
  int iRange;                 /* range being scanned */
};

/* ------------------------------------------------------------ Planning. */

/* True if constraint i compares with BINARY collation. */
static int isBinary(sqlite3_index_info *pInfo, int i){
  const char *zColl = sqlite3_vtab_collation(pInfo, i);
  return zColl==0 || sqlite3_stricmp(zColl, "BINARY")==0;
}

/*
** The literal prefix of a LIKE (bLike) or GLOB pattern: the bytes before
** the first wildcard.  A LIKE prefix also stops at the first non-ASCII
** byte, since an application-defined like() may fold such characters.
*/
static size_t patternPrefix(const char *z, int bLike){
  size_t n = 0;
  for(; z[n]; n++){
    unsigned char c = (unsigned char)z[n];
    if( bLike ){
      if( c=='%' || c=='_' || c>=0x80 ) break;
    }else{
      if( c=='*' || c=='?' || c=='[' ) break;
    }
  }
  return n;
}

/*
** True if like() (bLike) or glob() of connection db behaves as SQLite's
** built-in function on probes where an application-defined one (ICU's,
** or one with other wildcards or folding) differs: ASCII-only case
** folding for LIKE (either setting of case_sensitive_like), exact bytes for
** GLOB, and each function's wildcards only.
*/
static int builtinPatternFunc(sqlite3 *db, int bLike){
  static const char zLike[] =
      "SELECT like('a%','abc')=1 AND like('a_c','abc')=1 AND like('a%','bac')=0"
      " AND like('%','')=1 AND like('a*','abc')=0 AND like('a?c','abc')=0"
      " AND like('\xc3\xa4','\xc3\x84')=0 AND like('s','\xc5\xbf')=0"
      " AND like('k','\xe2\x84\xaa')=0 AND like('ab','ab')=1"
      " AND like('ab','AB')=like('AB','ab') AND like('a%','ab\xc3\xa4')=1";
  static const char zGlob[] =
      "SELECT glob('a*','abc')=1 AND glob('A*','abc')=0 AND glob('a?c','abc')=1"
      " AND glob('[ab]*','bc')=1 AND glob('a%','abc')=0 AND glob('a_c','abc')=0"
      " AND glob('s*','\xc5\xbfun')=0 AND glob('\xc3\xa4','\xc3\x84')=0"
      " AND glob('*','')=1 AND glob('[^a]*','bc')=1";
  sqlite3_stmt *pStmt = 0;
  const char *zSql = bLike ? zLike : zGlob;
  int bOk = 0;
  if( sqlite3_prepare_v2(db, zSql, -1, &pStmt, 0)==SQLITE_OK
   && sqlite3_step(pStmt)==SQLITE_ROW ){
    bOk = sqlite3_column_int(pStmt, 0)==1;
  }
  sqlite3_finalize(pStmt);
  return bOk;
}

/*
** For a pattern known while planning (SQLite 3.38 and later), true if it
** has no literal prefix, so that the pattern plan would be a full scan.
*/
static int patternIsUnbounded(sqlite3_index_info *pInfo, int i, int bLike){
#if SQLITE_VERSION_NUMBER>=3038000
  if( sqlite3_libversion_number()>=3038000 ){
    sqlite3_value *pVal = 0;
    if( sqlite3_vtab_rhs_value(pInfo, i, &pVal)==SQLITE_OK && pVal ){
      const char *z = (const char*)sqlite3_value_text(pVal);
      return z==0 || patternPrefix(z, bLike)==0;
    }
  }
#else
  (void)pInfo; (void)i; (void)bLike;
#endif
  return 0;
}

/*
** True if constraint i (or no constraint, i<0) compares with a constant
** written in the SQL, which has no affinity: then a TEXT argument is
** compared as TEXT.  Only SQLite 3.38 and later tell.
*/
static int isLiteral(sqlite3_index_info *pInfo, int i){
  if( i<0 ) return 1;
#if SQLITE_VERSION_NUMBER>=3038000
  if( sqlite3_libversion_number()>=3038000 ){
    sqlite3_value *pVal = 0;
    return sqlite3_vtab_rhs_value(pInfo, i, &pVal)==SQLITE_OK && pVal!=0;
  }
#else
  (void)pInfo;
#endif
  return 0;
}

/*
** True if constraint i is an IN that SQLite can hand over with all its
** values at once; then ask for that.
*/
static int wantAllIn(sqlite3_index_info *pInfo, int i){
#if SQLITE_VERSION_NUMBER>=3038000
  if( sqlite3_libversion_number()>=3038000
   && sqlite3_vtab_in(pInfo, i, -1) ){
    sqlite3_vtab_in(pInfo, i, 1);
    return 1;
  }
#else
  (void)pInfo; (void)i;
#endif
  return 0;
}

/* Use constraint i as xFilter argument *pnArg+1. */
static void useConstraint(sqlite3_index_info *pInfo, int i, int *pnArg,
                          int bOmit){
  pInfo->aConstraintUsage[i].argvIndex = ++(*pnArg);
  pInfo->aConstraintUsage[i].omit = (unsigned char)bOmit;
}

static void setUnique(sqlite3_index_info *pInfo){
#ifdef SQLITE_INDEX_SCAN_UNIQUE
  pInfo->idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
#endif
}

/*
** xBestIndex.  Pick the most selective plan among the usable constraints
** (see the table at the top of this file) and estimate its cost from the
** number of keys: a full scan of N keys costs about N, like a scan of an
** SQLite table of N rows; a point lookup costs 1.
*/
int tinkvBestIndex(sqlite3_vtab *pVtab, sqlite3_index_info *pInfo){
  TinkvTable *pTab = (TinkvTable*)pVtab;
  double nKeys = pTab->pKv ? (double)tkv_count(pTab->pKv) : 0.0;
  int iEq = -1, iRowid = -1, iLo = -1, iHi = -1, iGlob = -1, iLike = -1;
  int bGlobOk = -1, bLikeOk = -1;    /* built-in glob()/like()? -1: unknown */
  int idxNum = 0;
  int nArg = 0;
  double nRows = nKeys;
  int i;

  for(i=0; i<pInfo->nConstraint; i++){
    const struct sqlite3_index_constraint *p = &pInfo->aConstraint[i];
    if( !p->usable ) continue;
    if( p->iColumn<0 ){
      if( iRowid<0 && (p->op==SQLITE_INDEX_CONSTRAINT_EQ
                       || p->op==SQLITE_INDEX_CONSTRAINT_IS) ) iRowid = i;
      continue;
    }
    if( p->iColumn!=0 ) continue;
    switch( p->op ){
      case SQLITE_INDEX_CONSTRAINT_EQ:
      case SQLITE_INDEX_CONSTRAINT_IS:
        if( iEq<0 && isBinary(pInfo, i) ) iEq = i;
        break;
      case SQLITE_INDEX_CONSTRAINT_GT:
      case SQLITE_INDEX_CONSTRAINT_GE:
        if( iLo<0 && isBinary(pInfo, i) ) iLo = i;
        break;
      case SQLITE_INDEX_CONSTRAINT_LT:
      case SQLITE_INDEX_CONSTRAINT_LE:
        if( iHi<0 && isBinary(pInfo, i) ) iHi = i;
        break;
      case SQLITE_INDEX_CONSTRAINT_GLOB:
        if( iGlob<0 && !patternIsUnbounded(pInfo, i, 0) ){
          if( bGlobOk<0 ) bGlobOk = builtinPatternFunc(pTab->db, 0);
          if( bGlobOk ) iGlob = i;
        }
        break;
      case SQLITE_INDEX_CONSTRAINT_LIKE:
        if( iLike<0 && !patternIsUnbounded(pInfo, i, 1) ){
          if( bLikeOk<0 ) bLikeOk = builtinPatternFunc(pTab->db, 1);
          if( bLikeOk ) iLike = i;
        }
        break;
    }
  }

  if( iEq>=0 ){
    idxNum = PLAN_KEY_EQ;
    useConstraint(pInfo, iEq, &nArg, 0);
    nRows = 1;
    if( wantAllIn(pInfo, iEq) ){
      idxNum |= PLAN_KEY_IN;
      nRows = 10;
    }
  }else if( iRowid>=0 ){
    idxNum = PLAN_ROWID_EQ;
    useConstraint(pInfo, iRowid, &nArg, 1);
    nRows = 1;
  }else if( iGlob<0 && iLike<0 && (iLo>=0 || iHi>=0) ){
    if( iLo>=0 ){
      idxNum |= PLAN_LOWER;
      if( pInfo->aConstraint[iLo].op==SQLITE_INDEX_CONSTRAINT_GE ){
        idxNum |= PLAN_LOWER_INCL;
      }
      useConstraint(pInfo, iLo, &nArg, 0);
      nRows /= 4;
    }
    if( iHi>=0 ){
      idxNum |= PLAN_UPPER;
      if( pInfo->aConstraint[iHi].op==SQLITE_INDEX_CONSTRAINT_LE ){
        idxNum |= PLAN_UPPER_INCL;
      }
      useConstraint(pInfo, iHi, &nArg, 0);
      nRows /= 4;
    }
  }else if( iGlob>=0 ){
    idxNum = PLAN_GLOB;
    useConstraint(pInfo, iGlob, &nArg, 0);
    nRows /= 20;
  }else if( iLike>=0 ){
    idxNum = PLAN_LIKE;
    useConstraint(pInfo, iLike, &nArg, 0);
    nRows /= 10;
  }

  if( (idxNum & (PLAN_KEY_EQ|PLAN_LOWER|PLAN_UPPER))
   && !(idxNum & PLAN_KEY_IN)
   && isLiteral(pInfo, (idxNum & PLAN_KEY_EQ) ? iEq : iLo)
   && isLiteral(pInfo, (idxNum & PLAN_KEY_EQ) ? -1 : iHi) ){
    idxNum |= PLAN_LITERAL;
  }
  pInfo->idxNum = idxNum;
  if( idxNum & (PLAN_KEY_EQ|PLAN_ROWID_EQ) ){
    /* Only a rowid is certainly unique: a key = <number> plan may also
    ** visit TEXT keys that numeric affinity makes equal (see above). */
    pInfo->estimatedCost = nRows;
    pInfo->estimatedRows = (sqlite3_int64)nRows;
    if( idxNum & PLAN_ROWID_EQ ) setUnique(pInfo);
  }else if( idxNum ){
    if( nRows<1.0 ) nRows = 1.0;
    pInfo->estimatedCost = 2.0 + nRows;
    pInfo->estimatedRows = (sqlite3_int64)nRows;
  }else{
    pInfo->estimatedCost = 3.0 + nKeys;
    pInfo->estimatedRows = (sqlite3_int64)nKeys;
  }
  if( pInfo->nOrderBy>=1 && !tinkvTableIsUtf16(pTab)
   && pInfo->aOrderBy[0].iColumn==0 && !pInfo->aOrderBy[0].desc ){
    /* Keys are unique, so terms after the first do not matter. */
    pInfo->orderByConsumed = 1;
  }
  return SQLITE_OK;
}

/* ------------------------------------------------------------- Cursors. */

void tinkvCursorFree(TinkvCursor *pCsr){
  if( pCsr->pKc ) tkv_cursor_close(pCsr->pKc);
  sqlite3_free(pCsr->aRange);
  tinkvBufFree(&pCsr->key);
  tinkvBufFree(&pCsr->bounds);
  sqlite3_free(pCsr);
}

/* xOpen.  A cursor closed earlier is reused, so that a prepared point
** query does not allocate on each run; not its engine cursor, whose
** opening is where a statement catches up with what other processes
** committed (a statement run again must see their commits since). */
int tinkvOpen(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCsr){
  TinkvTable *pTab = (TinkvTable*)pVtab;
  TinkvCursor *pCsr = pTab->pSpare;
  int rc = tinkvTableReady(pTab);
  if( rc!=SQLITE_OK ) return rc;
  if( pCsr ){
    pTab->pSpare = 0;
    if( pCsr->pKc ){
      tkv_cursor_close(pCsr->pKc);
      pCsr->pKc = 0;
    }
  }else{
    pCsr = sqlite3_malloc(sizeof(*pCsr));
    if( pCsr==0 ) return SQLITE_NOMEM;
    memset(pCsr, 0, sizeof(*pCsr));
  }
  pCsr->bEof = 1;
  pCsr->bPoint = 0;
  pTab->nCursor++;
  *ppCsr = &pCsr->base;
  return SQLITE_OK;
}

int tinkvClose(sqlite3_vtab_cursor *pBase){
  TinkvCursor *pCsr = (TinkvCursor*)pBase;
  TinkvTable *pTab = (TinkvTable*)pBase->pVtab;
  pTab->nCursor--;
  if( pTab->pSpare==0 ){
    pTab->pSpare = pCsr;
  }else{
    tinkvCursorFree(pCsr);
  }
  return SQLITE_OK;
}

/* Append n bytes to the bounds buffer; *piOff receives their offset. */
static int addBound(TinkvCursor *pCsr, const u8 *a, size_t n, size_t *piOff){
  if( tinkvBufReserve(&pCsr->bounds, pCsr->bounds.n + n) ) return SQLITE_NOMEM;
  if( n ) memcpy(&pCsr->bounds.a[pCsr->bounds.n], a, n);
  *piOff = pCsr->bounds.n;
  pCsr->bounds.n += n;
  return SQLITE_OK;
}

/*
** Add a range whose bounds are already in the bounds buffer (at offsets
** iLo and iHi); bLo and bHi say whether each bound is present.
*/
static int pushRange(TinkvCursor *pCsr, int bLo, size_t iLo, size_t nLo,
                     int bHi, size_t iHi, size_t nHi){
  TinkvRange *pR;
  if( pCsr->nRange==pCsr->nRangeAlloc ){
    int nNew = pCsr->nRangeAlloc ? pCsr->nRangeAlloc*2 : 8;
    TinkvRange *aNew = sqlite3_realloc64(pCsr->aRange, nNew*sizeof(*aNew));
    if( aNew==0 ) return SQLITE_NOMEM;
    pCsr->aRange = aNew;
    pCsr->nRangeAlloc = nNew;
  }
  pR = &pCsr->aRange[pCsr->nRange++];
  pR->bLo = (u8)bLo; pR->iLo = iLo; pR->nLo = nLo;
  pR->bHi = (u8)bHi; pR->iHi = iHi; pR->nHi = nHi;
  return SQLITE_OK;
}

/*
** Add the range [aLo, aHi), copying the bounds (which must not point into
** the bounds buffer); a NULL bound is unbounded.
*/
static int addRange(TinkvCursor *pCsr, const u8 *aLo, size_t nLo,
                    const u8 *aHi, size_t nHi){
  size_t iLo = 0, iHi = 0;
  int rc = SQLITE_OK;
  if( aLo ) rc = addBound(pCsr, aLo, nLo, &iLo);
  if( rc==SQLITE_OK && aHi ) rc = addBound(pCsr, aHi, nHi, &iHi);
  if( rc ) return rc;
  return pushRange(pCsr, aLo!=0, iLo, nLo, aHi!=0, iHi, nHi);
}

/*
** Add the range of keys that start with aPrefix/nPrefix (tag included): from
** the prefix to its successor (the prefix with its last byte incremented,
** after dropping trailing 0xFF bytes).
*/
static int addPrefixRange(TinkvCursor *pCsr, const u8 *aPrefix,
                          size_t nPrefix){
  u8 aSucc[1 + 256];
  size_t nSucc = nPrefix;
  while( nSucc>0 && aPrefix[nSucc-1]==0xFF ) nSucc--;
  if( nSucc==0 ) return addRange(pCsr, aPrefix, nPrefix, 0, 0);
  memcpy(aSucc, aPrefix, nSucc);
  aSucc[nSucc-1]++;
  return addRange(pCsr, aPrefix, nPrefix, aSucc, nSucc);
}

/* Compare lower bounds (absent: minus infinity). */
static int compareLower(TinkvCursor *pCsr, const TinkvRange *a,
                        const TinkvRange *b){
  if( !a->bLo || !b->bLo ) return (int)a->bLo - (int)b->bLo;
  return tinkvKeyCompare(&pCsr->bounds.a[a->iLo], a->nLo,
                         &pCsr->bounds.a[b->iLo], b->nLo);
}

/* Compare upper bounds (absent: plus infinity). */
static int compareUpper(TinkvCursor *pCsr, const TinkvRange *a,
                        const TinkvRange *b){
  if( !a->bHi || !b->bHi ) return (int)a->bHi==(int)b->bHi ? 0
                                 : (a->bHi ? -1 : 1);
  return tinkvKeyCompare(&pCsr->bounds.a[a->iHi], a->nHi,
                         &pCsr->bounds.a[b->iHi], b->nHi);
}

/* True if range b starts at or before the end of range a. */
static int touches(TinkvCursor *pCsr, const TinkvRange *a,
                   const TinkvRange *b){
  if( !a->bHi || !b->bLo ) return 1;
  return tinkvKeyCompare(&pCsr->bounds.a[b->iLo], b->nLo,
                         &pCsr->bounds.a[a->iHi], a->nHi)<=0;
}

/*
** Sort the ranges by lower bound and merge those that overlap, so that a
** scan visits each key once and in ascending order.
*/
static void normalizeRanges(TinkvCursor *pCsr){
  TinkvRange *a = pCsr->aRange;
  int i, j, n = 0;
  for(i=1; i<pCsr->nRange; i++){
    TinkvRange r = a[i];
    for(j=i; j>0 && compareLower(pCsr, &a[j-1], &r)>0; j--) a[j] = a[j-1];
    a[j] = r;
  }
  for(i=0; i<pCsr->nRange; i++){
    if( n>0 && touches(pCsr, &a[n-1], &a[i]) ){
      if( compareUpper(pCsr, &a[i], &a[n-1])>0 ){
        a[n-1].bHi = a[i].bHi;
        a[n-1].iHi = a[i].iHi;
        a[n-1].nHi = a[i].nHi;
      }
    }else{
      a[n++] = a[i];
    }
  }
  pCsr->nRange = n;
}

/* True if text starting with byte c could be an SQLite number's text. */
static int mayStartNumber(u8 c){
  return (c>='0' && c<='9') || c=='-' || c=='I' || c=='i';
}

static int isAsciiLetter(u8 c){
  return (c>='A' && c<='Z') || (c>='a' && c<='z');
}

/*
** Build the ranges of a LIKE (bLike) or GLOB pattern.  Numbers, TEXT and
** BLOB keys can all match (SQLite compares their text, unless it is built
** not to match BLOBs), so the ranges are: every number if the prefix could
** start a number's text, then the TEXT keys and the BLOB keys that start
** with the prefix.  For LIKE, which ignores ASCII case, the prefix is cut
** after its LIKE_MAX_LETTERS-th letter and each case variant gets its own
** ranges.
*/
static int patternRanges(TinkvCursor *pCsr, const char *zPattern, int bLike){
  static const u8 aNumLo[] = { TINKV_KEY_NEGBIG };
  static const u8 aNumHi[] = { TINKV_KEY_TEXT };
  size_t nPrefix = patternPrefix(zPattern, bLike);
  size_t aiLetter[LIKE_MAX_LETTERS];
  int nLetter = 0;
  int nVariant, iVariant, iTag;
  u8 aKey[1 + 256];
  size_t i;
  int rc = SQLITE_OK;

  if( nPrefix>256 ) nPrefix = 256;
  if( bLike ){
    for(i=0; i<nPrefix; i++){
      if( !isAsciiLetter((u8)zPattern[i]) ) continue;
      if( nLetter==LIKE_MAX_LETTERS ){ nPrefix = i; break; }
      aiLetter[nLetter++] = i;
    }
  }
  if( nPrefix==0 ) return addRange(pCsr, 0, 0, 0, 0);
  if( mayStartNumber((u8)zPattern[0]) ){
    rc = addRange(pCsr, aNumLo, 1, aNumHi, 1);
  }
  nVariant = 1<<nLetter;
  for(iTag=0; iTag<2 && rc==SQLITE_OK; iTag++){
    aKey[0] = iTag==0 ? TINKV_KEY_TEXT : TINKV_KEY_BLOB;
    memcpy(&aKey[1], zPattern, nPrefix);
    for(iVariant=0; iVariant<nVariant && rc==SQLITE_OK; iVariant++){
      int j;
      for(j=0; j<nLetter; j++){
        u8 c = aKey[1+aiLetter[j]];
        int bLower = (iVariant >> j) & 1;
        if( c>='a' && c<='z' && !bLower ) c = (u8)(c - 'a' + 'A');
        if( c>='A' && c<='Z' && bLower ) c = (u8)(c - 'A' + 'a');
        aKey[1+aiLetter[j]] = c;
      }
      rc = addPrefixRange(pCsr, aKey, 1+nPrefix);
    }
  }
  return rc;
}

/* True if pVal is an INTEGER or a REAL. */
static int isNumber(sqlite3_value *pVal){
  int eType = sqlite3_value_type(pVal);
  return eType==SQLITE_INTEGER || eType==SQLITE_FLOAT;
}

/*
** If pVal is TEXT that numeric affinity turns into a number, set *ppNum to
** that number (a new value, freed with sqlite3_value_free).  Else *ppNum is
** NULL.  SQLITE_OK or SQLITE_NOMEM.
*/
static int textAsNumber(sqlite3_value *pVal, sqlite3_value **ppNum){
  sqlite3_value *pCopy;
  *ppNum = 0;
  if( pVal==0 || sqlite3_value_type(pVal)!=SQLITE_TEXT ) return SQLITE_OK;
  pCopy = sqlite3_value_dup(pVal);
  if( pCopy==0 ) return SQLITE_NOMEM;
  if( isNumber(pCopy) || (sqlite3_value_numeric_type(pCopy), isNumber(pCopy)) ){
    *ppNum = pCopy;
  }else{
    sqlite3_value_free(pCopy);
  }
  return SQLITE_OK;
}

/*
** Encode comparison value pVal into pCsr->key as a bound.  A number equal
** to an integer is bound by its INTEGER form, and bAfter moves the bound
** past the value (past both twin forms of a number): the bound then sits
** just after every key equal to pVal, which makes "> v" and "<= v" half-open.
*/
static int encodeBound(TinkvCursor *pCsr, sqlite3_value *pVal, int bAfter){
  int rc = tinkvKeyEncode(pVal, &pCsr->key);
  size_t n = pCsr->key.n;
  if( rc ) return rc;
  if( tinkvKeyTwin(pCsr->key.a, n) ){
    n = TINKV_KEY_NUM_INT_LEN;
    if( bAfter ){
      pCsr->key.a[n++] = 0x00;              /* the REAL twin ... */
      pCsr->key.a[n++] = 0x00;              /* ... and past it */
    }
  }else if( bAfter ){
    if( tinkvBufReserve(&pCsr->key, n+1) ) return SQLITE_NOMEM;
    pCsr->key.a[n++] = 0x00;
  }
  pCsr->key.n = n;
  return SQLITE_OK;
}

/* Add the range of TEXT keys whose text starts with byte c. */
static int textLeadRange(TinkvCursor *pCsr, u8 c){
  u8 aPrefix[2];
  aPrefix[0] = TINKV_KEY_TEXT;
  aPrefix[1] = c;
  return addPrefixRange(pCsr, aPrefix, 2);
}

/*
** The TEXT keys that numeric affinity could make equal to the number pVal,
** as ranges.  Such text is white space, an optional sign, digits with a
** decimal point and an exponent.  Unless it starts with white space, a
** sign, '0' or '.', its digits start with the significant digits of the
** number (shortest form, trailing zeros dropped) with the point at some
** place among them, or right after them (then the exponent makes up the
** rest): so the ranges are one prefix per place of the point, plus the
** keys starting with white space, a sign, '0' or '.'.  Infinities (text
** such as '1e999') take every TEXT key that starts like a number.
*/
static int numTextEqRanges(TinkvCursor *pCsr, sqlite3_value *pVal){
  static const u8 aLead[] = { 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, '+', '-',
                              '.', '0' };
  char zDig[32];
  u8 aPrefix[40];
  int nDig = 0, i, rc = SQLITE_OK;
  if( sqlite3_value_type(pVal)==SQLITE_INTEGER ){
    i64 v = sqlite3_value_int64(pVal);
    u64 u = v<0 ? (u64)0 - (u64)v : (u64)v;
    nDig = snprintf(zDig, sizeof zDig, "%llu", (unsigned long long)u);
  }else{
    double r = sqlite3_value_double(pVal);
    char zNum[40];
    int p;
    if( r<0 ) r = -r;
    if( !(r<=1.7976931348623157e308) ){
      return addRange(pCsr, aNumTextLo, sizeof(aNumTextLo),
                      aNumTextHi, sizeof(aNumTextHi));
    }
    for(p=0; p<17; p++){
      snprintf(zNum, sizeof zNum, "%.*e", p, r);
      if( strtod(zNum, 0)==r ) break;
    }
    for(i=0; zNum[i] && zNum[i]!='e'; i++){
      if( zNum[i]>='0' && zNum[i]<='9' ) zDig[nDig++] = zNum[i];
    }
    zDig[nDig] = 0;
  }
  while( nDig>0 && zDig[nDig-1]=='0' ) nDig--;
  for(i=0; rc==SQLITE_OK && i<(int)sizeof(aLead); i++){
    rc = textLeadRange(pCsr, aLead[i]);
  }
  if( nDig==0 ) return rc;                    /* zero: all start with 0 */
  aPrefix[0] = TINKV_KEY_TEXT;
  memcpy(&aPrefix[1], zDig, (size_t)nDig);
  if( rc==SQLITE_OK ) rc = addPrefixRange(pCsr, aPrefix, 1+(size_t)nDig);
  for(i=1; rc==SQLITE_OK && i<nDig; i++){
    memcpy(&aPrefix[1], zDig, (size_t)i);
    aPrefix[1+i] = '.';
    memcpy(&aPrefix[2+i], &zDig[i], (size_t)(nDig-i));
    rc = addPrefixRange(pCsr, aPrefix, 2+(size_t)nDig);
  }
  return rc;
}

/*
** Ranges of key = pVal for a number: the key itself (both twin forms), and
** the TEXT keys that numeric affinity could make equal to it.
*/
static int numberEqRanges(TinkvCursor *pCsr, sqlite3_value *pVal){
  size_t iLo = 0, nLo = 0, iHi = 0;
  int rc = encodeBound(pCsr, pVal, 0);
  if( rc==SQLITE_OK ) rc = addBound(pCsr, pCsr->key.a, pCsr->key.n, &iLo);
  nLo = pCsr->key.n;
  if( rc==SQLITE_OK ) rc = encodeBound(pCsr, pVal, 1);
  if( rc==SQLITE_OK ) rc = addBound(pCsr, pCsr->key.a, pCsr->key.n, &iHi);
  if( rc==SQLITE_OK ){
    rc = pushRange(pCsr, 1, iLo, nLo, 1, iHi, pCsr->key.n);
  }
  if( rc==SQLITE_OK ) rc = numTextEqRanges(pCsr, pVal);
  return rc;
}

/* True if the key aKey/nKey is at or past the end of range pR. */
static int pastUpper(TinkvCursor *pCsr, const TinkvRange *pR,
                     const u8 *aKey, size_t nKey){
  if( !pR->bHi ) return 0;
  return tinkvKeyCompare(aKey, nKey, &pCsr->bounds.a[pR->iHi], pR->nHi)>=0;
}

/*
** Position the engine cursor at the first key of range iRange or a later
** one, skipping empty ranges.  Sets bEof when no range has a key left.
*/
static int seekRange(TinkvTable *pTab, TinkvCursor *pCsr){
  while( pCsr->iRange < pCsr->nRange ){
    const TinkvRange *pR = &pCsr->aRange[pCsr->iRange];
    const void *pKey;
    size_t nKey;
    int rc;
    if( pR->bLo ){
      /* No key is longer than TKV_KEY_MAX: a longer bound is cut, which
      ** seeks to the same key or an earlier one; those keys below the whole
      ** bound are then stepped over (an earlier range may have returned
      ** them already: ranges were merged by their whole bounds). */
      const u8 *aLo = &pCsr->bounds.a[pR->iLo];
      size_t nLo = pR->nLo<TKV_KEY_MAX ? pR->nLo : TKV_KEY_MAX;
      rc = tkv_cursor_seek(pCsr->pKc, aLo, nLo);
      while( rc==TKV_OK && nLo<pR->nLo && tkv_cursor_valid(pCsr->pKc) ){
        tkv_cursor_key(pCsr->pKc, &pKey, &nKey);
        if( tinkvKeyCompare(pKey, nKey, aLo, pR->nLo)>=0 ) break;
        rc = tkv_cursor_next(pCsr->pKc);
      }
    }else{
      rc = tkv_cursor_seek(pCsr->pKc, 0, 0);
    }
    if( rc!=TKV_OK ) return tinkvTableStatus(pTab, rc);
    if( tkv_cursor_valid(pCsr->pKc) ){
      tkv_cursor_key(pCsr->pKc, &pKey, &nKey);
      if( !pastUpper(pCsr, pR, pKey, nKey) ){
        pCsr->bEof = 0;
        return SQLITE_OK;
      }
    }
    pCsr->iRange++;
  }
  pCsr->bEof = 1;
  return SQLITE_OK;
}

/* Open the cursor's engine cursor if it has none yet. */
static int ensureEngineCursor(TinkvTable *pTab, TinkvCursor *pCsr){
  if( pCsr->pKc ) return SQLITE_OK;
  return tinkvTableStatus(pTab, tkv_cursor_open(pTab->pKv, &pCsr->pKc));
}

/*
** encoding=raw: map the normalized ranges of encoded keys onto the store's
** raw keys, where raw key k stands for the encoded BLOB key (0x50, k).  The
** map keeps order, so the ranges stay ascending and disjoint; those left
** empty are dropped.  A lower bound below the BLOB tag starts at the first
** key; an upper bound below it (or equal to the bare tag) ends before any;
** an upper bound past every BLOB key (the tag's successor) is none.
*/
static void rawRanges(TinkvCursor *pCsr){
  int i, n = 0;
  for(i=0; i<pCsr->nRange; i++){
    TinkvRange r = pCsr->aRange[i];
    if( r.bLo ){
      u8 c = pCsr->bounds.a[r.iLo];
      if( c>TINKV_KEY_BLOB ) continue;                     /* above all */
      if( c<TINKV_KEY_BLOB || r.nLo==1 ){
        r.bLo = 0;
      }else{
        r.iLo++;
        r.nLo--;
      }
    }
    if( r.bHi ){
      u8 c = pCsr->bounds.a[r.iHi];
      if( c<TINKV_KEY_BLOB || (c==TINKV_KEY_BLOB && r.nHi==1) ) continue;
      if( c>TINKV_KEY_BLOB ){
        r.bHi = 0;
      }else{
        r.iHi++;
        r.nHi--;
      }
    }
    pCsr->aRange[n++] = r;
  }
  pCsr->nRange = n;
}

/* Normalize the ranges built for a scan and seek the first row. */
static int startScan(TinkvTable *pTab, TinkvCursor *pCsr){
  int rc = ensureEngineCursor(pTab, pCsr);
  if( rc ) return rc;
  normalizeRanges(pCsr);
  if( pTab->bRaw ) rawRanges(pCsr);
  return seekRange(pTab, pCsr);
}

/* The range of the single TEXT or BLOB key pVal: [k, k 0x00). */
static int pointRange(TinkvCursor *pCsr, sqlite3_value *pVal){
  size_t iLo = 0, n;
  int rc = tinkvKeyEncode(pVal, &pCsr->key);
  if( rc ) return rc;
  n = pCsr->key.n;
  if( tinkvBufReserve(&pCsr->key, n+1) ) return SQLITE_NOMEM;
  pCsr->key.a[n] = 0x00;
  rc = addBound(pCsr, pCsr->key.a, n+1, &iLo);
  if( rc ) return rc;
  return pushRange(pCsr, 1, iLo, n, 1, iLo, n+1);
}

/*
** key = pVal.  A TEXT or BLOB key is one keydir lookup; a number is a scan
** of its ranges (see numberEqRanges), and so is TEXT that looks like a
** number unless it is a constant of the SQL (bLiteral; see the header).
*/
static int filterKeyEq(TinkvTable *pTab, TinkvCursor *pCsr,
                       sqlite3_value *pVal, int bLiteral){
  sqlite3_value *pNum = 0;
  int rc;
  if( sqlite3_value_type(pVal)==SQLITE_NULL ) return SQLITE_OK;
  if( tinkvTableBadText(pTab, pVal) ) return SQLITE_OK;  /* never stored */
  if( isNumber(pVal) ){
    rc = numberEqRanges(pCsr, pVal);
    if( rc ) return rc;
    return startScan(pTab, pCsr);
  }
  if( !bLiteral ){
    rc = textAsNumber(pVal, &pNum);
    if( rc ) return rc;
    if( pNum ){
      /* Maybe compared under numeric affinity: the text and the number. */
      rc = pointRange(pCsr, pVal);
      if( rc==SQLITE_OK ) rc = numberEqRanges(pCsr, pNum);
      sqlite3_value_free(pNum);
      if( rc ) return rc;
      return startScan(pTab, pCsr);
    }
  }
  rc = tinkvKeyEncode(pVal, &pCsr->key);
  if( rc ) return rc;
  if( pTab->bRaw ){
    /* Only a BLOB equals a raw key: the bytes after the tag. */
    if( pCsr->key.a[0]!=TINKV_KEY_BLOB ) return SQLITE_OK;
    memmove(pCsr->key.a, pCsr->key.a+1, pCsr->key.n-1);
    pCsr->key.n--;
  }
  if( pCsr->key.n>TKV_KEY_MAX ) return SQLITE_OK;   /* cannot be stored */
  rc = tkv_lookup(pTab->pKv, pCsr->key.a, pCsr->key.n, &pCsr->iPointId, 0);
  if( rc==TKV_NOTFOUND ) return SQLITE_OK;
  if( rc!=TKV_OK ) return tinkvTableStatus(pTab, rc);
  pCsr->bPoint = 1;
  pCsr->bEof = 0;
  return SQLITE_OK;
}

/* key IN (list), with all the values of the list at once. */
static int filterKeyIn(TinkvTable *pTab, TinkvCursor *pCsr,
                       sqlite3_value *pList){
#if SQLITE_VERSION_NUMBER>=3038000
  sqlite3_value *pVal = 0;
  int rc;
  for(rc=sqlite3_vtab_in_first(pList, &pVal);
      rc==SQLITE_OK && pVal;
      rc=sqlite3_vtab_in_next(pList, &pVal)){
    if( sqlite3_value_type(pVal)==SQLITE_NULL ) continue;
    if( tinkvTableBadText(pTab, pVal) ) continue;           /* never stored */
    rc = isNumber(pVal) ? numberEqRanges(pCsr, pVal) : pointRange(pCsr, pVal);
    if( rc ) return rc;
  }
  if( rc!=SQLITE_OK && rc!=SQLITE_DONE ) return rc;
  return startScan(pTab, pCsr);
#else
  (void)pTab; (void)pCsr; (void)pList;
  return SQLITE_ERROR;
#endif
}

/*
** The engine id that equals rowid value pVal as SQLite compares a rowid
** (INTEGER affinity), or 0 if no id can equal it.
*/
static u64 rowidArgument(sqlite3_value *pVal){
  sqlite3_value *pCopy = 0;
  u64 iId = 0;
  double r;
  if( sqlite3_value_type(pVal)==SQLITE_TEXT ){
    /* Convert a copy: the argument itself belongs to the statement. */
    pCopy = sqlite3_value_dup(pVal);
    if( pCopy==0 ) return 0;
    sqlite3_value_numeric_type(pCopy);
    pVal = pCopy;
  }
  switch( sqlite3_value_type(pVal) ){
    case SQLITE_INTEGER: {
      i64 i = sqlite3_value_int64(pVal);
      if( i>0 ) iId = (u64)i;
      break;
    }
    case SQLITE_FLOAT:
      r = sqlite3_value_double(pVal);
      if( r>=1.0 && r<9223372036854775808.0 && r==(double)(i64)r ){
        iId = (u64)(i64)r;
      }
      break;
  }
  sqlite3_value_free(pCopy);
  return iId;
}

/* Point plan on rowid argument pVal. */
static int filterRowidEq(TinkvTable *pTab, TinkvCursor *pCsr,
                         sqlite3_value *pVal){
  u64 iId = rowidArgument(pVal);
  const void *pKey;
  size_t nKey;
  int rc;
  if( iId==0 ) return SQLITE_OK;
  rc = ensureEngineCursor(pTab, pCsr);
  if( rc ) return rc;
  rc = tkv_cursor_seek_id(pCsr->pKc, iId);
  if( rc==TKV_NOTFOUND ) return SQLITE_OK;
  if( rc!=TKV_OK ) return tinkvTableStatus(pTab, rc);
  tkv_cursor_key(pCsr->pKc, &pKey, &nKey);
  if( tinkvBufReserve(&pCsr->key, nKey) ) return SQLITE_NOMEM;
  memcpy(pCsr->key.a, pKey, nKey);
  pCsr->key.n = nKey;
  pCsr->iPointId = iId;
  pCsr->bPoint = 1;
  pCsr->bEof = 0;
  return SQLITE_OK;
}

/*
** Add the range between pLo and pHi (either may be NULL: unbounded).  In a
** UTF-16 database a TEXT bound becomes the edge of all TEXT keys: SQLite
** orders text there by UTF-16 code units, which is not the keydir's UTF-8
** order for characters above U+00FF (UTF-16le) or outside the BMP.
*/
static int boundRange(TinkvTable *pTab, TinkvCursor *pCsr, int idxNum,
                      sqlite3_value *pLo, sqlite3_value *pHi){
  static const u8 aTextLo[] = { TINKV_KEY_TEXT };
  static const u8 aTextHi[] = { TINKV_KEY_TEXT+1 };
  size_t iLo = 0, nLo = 0, iHi = 0, nHi = 0;
  int bWide = tinkvTableIsUtf16(pTab);
  int rc = SQLITE_OK;
  if( pLo && bWide && sqlite3_value_type(pLo)==SQLITE_TEXT ){
    rc = addBound(pCsr, aTextLo, 1, &iLo);
    nLo = 1;
  }else if( pLo ){
    rc = encodeBound(pCsr, pLo, (idxNum & PLAN_LOWER_INCL)==0);
    if( rc==SQLITE_OK ) rc = addBound(pCsr, pCsr->key.a, pCsr->key.n, &iLo);
    nLo = pCsr->key.n;
  }
  if( rc==SQLITE_OK && pHi && bWide && sqlite3_value_type(pHi)==SQLITE_TEXT ){
    rc = addBound(pCsr, aTextHi, 1, &iHi);
    nHi = 1;
  }else if( rc==SQLITE_OK && pHi ){
    rc = encodeBound(pCsr, pHi, (idxNum & PLAN_UPPER_INCL)!=0);
    if( rc==SQLITE_OK ) rc = addBound(pCsr, pCsr->key.a, pCsr->key.n, &iHi);
    nHi = pCsr->key.n;
  }
  if( rc==SQLITE_OK ){
    rc = pushRange(pCsr, pLo!=0, iLo, nLo, pHi!=0, iHi, nHi);
  }
  return rc;
}

/*
** Range plan: key > / >= argv[0] and/or key < / <= the next argument.  A
** number bound also adds the TEXT keys that numeric affinity could convert
** into the range; so do TEXT bounds that may be compared under numeric
** affinity (see the header comment).
*/
static int filterRange(TinkvTable *pTab, TinkvCursor *pCsr, int idxNum,
                       int argc, sqlite3_value **argv){
  sqlite3_value *pLo = 0, *pHi = 0, *pLoNum = 0, *pHiNum = 0;
  int iArg = 0;
  int bNumText;
  int rc;
  if( (idxNum & PLAN_LOWER) && iArg<argc ) pLo = argv[iArg++];
  if( (idxNum & PLAN_UPPER) && iArg<argc ) pHi = argv[iArg++];
  if( (pLo && sqlite3_value_type(pLo)==SQLITE_NULL)
   || (pHi && sqlite3_value_type(pHi)==SQLITE_NULL) ){
    return SQLITE_OK;                        /* nothing compares with NULL */
  }
  rc = boundRange(pTab, pCsr, idxNum, pLo, pHi);
  bNumText = (pLo && isNumber(pLo)) || (pHi && isNumber(pHi));
  if( rc==SQLITE_OK && !(idxNum & PLAN_LITERAL) ){
    rc = textAsNumber(pLo, &pLoNum);
    if( rc==SQLITE_OK ) rc = textAsNumber(pHi, &pHiNum);
    if( rc==SQLITE_OK && (pLoNum || pHiNum) ){
      rc = boundRange(pTab, pCsr, idxNum, pLoNum ? pLoNum : pLo,
                      pHiNum ? pHiNum : pHi);
      bNumText = 1;
    }
    if( pHi && !isNumber(pHi) && !pHiNum
     && (pLo==0 || isNumber(pLo) || pLoNum) ){
      bNumText = 1;        /* converted keys are all below a TEXT bound */
    }
    sqlite3_value_free(pLoNum);
    sqlite3_value_free(pHiNum);
  }
  if( rc==SQLITE_OK && bNumText ){
    rc = addRange(pCsr, aNumTextLo, sizeof(aNumTextLo),
                  aNumTextHi, sizeof(aNumTextHi));
  }
  if( rc ) return rc;
  return startScan(pTab, pCsr);
}

/* GLOB and LIKE plans: the ranges of the pattern's literal prefix. */
static int filterPattern(TinkvTable *pTab, TinkvCursor *pCsr, int bLike,
                         int argc, sqlite3_value **argv){
  const char *zPattern;
  int rc;
  if( argc<1 ) return SQLITE_OK;
  zPattern = (const char*)sqlite3_value_text(argv[0]);
  if( zPattern==0 ){
    return sqlite3_value_type(argv[0])==SQLITE_NULL ? SQLITE_OK : SQLITE_NOMEM;
  }
  rc = patternRanges(pCsr, zPattern, bLike);
  if( rc ) return rc;
  return startScan(pTab, pCsr);
}

/* xFilter: (re)start the cursor with plan idxNum (see xBestIndex). */
int tinkvFilter(sqlite3_vtab_cursor *pBase, int idxNum, const char *idxStr,
                int argc, sqlite3_value **argv){
  TinkvCursor *pCsr = (TinkvCursor*)pBase;
  TinkvTable *pTab = (TinkvTable*)pBase->pVtab;
  int rc = tinkvTableReady(pTab);
  (void)idxStr;
  pCsr->bEof = 1;
  pCsr->bPoint = 0;
  pCsr->nRange = 0;
  pCsr->iRange = 0;
  pCsr->bounds.n = 0;
  if( rc ) return rc;
  tinkvTableReadMark(pTab);
  if( idxNum & (PLAN_KEY_EQ|PLAN_ROWID_EQ) ){
    if( argc<1 ) return SQLITE_OK;
    if( idxNum & PLAN_KEY_IN ) return filterKeyIn(pTab, pCsr, argv[0]);
    if( idxNum & PLAN_KEY_EQ ){
      return filterKeyEq(pTab, pCsr, argv[0], (idxNum & PLAN_LITERAL)!=0);
    }
    return filterRowidEq(pTab, pCsr, argv[0]);
  }
  if( idxNum & (PLAN_GLOB|PLAN_LIKE) ){
    return filterPattern(pTab, pCsr, (idxNum & PLAN_LIKE)!=0, argc, argv);
  }
  if( idxNum & (PLAN_LOWER|PLAN_UPPER) ){
    return filterRange(pTab, pCsr, idxNum, argc, argv);
  }
  rc = addRange(pCsr, 0, 0, 0, 0);
  if( rc ) return rc;
  return startScan(pTab, pCsr);
}

/* xNext: the next key of the current range, or of the next ranges. */
int tinkvNext(sqlite3_vtab_cursor *pBase){
  TinkvCursor *pCsr = (TinkvCursor*)pBase;
  TinkvTable *pTab = (TinkvTable*)pBase->pVtab;
  const void *pKey;
  size_t nKey;
  int rc;
  if( pCsr->bPoint ){
    pCsr->bEof = 1;
    return SQLITE_OK;
  }
  rc = tkv_cursor_next(pCsr->pKc);
  if( rc!=TKV_OK ) return tinkvTableStatus(pTab, rc);
  if( tkv_cursor_valid(pCsr->pKc) ){
    tkv_cursor_key(pCsr->pKc, &pKey, &nKey);
    if( !pastUpper(pCsr, &pCsr->aRange[pCsr->iRange], pKey, nKey) ){
      return SQLITE_OK;
    }
  }
  pCsr->iRange++;
  return seekRange(pTab, pCsr);
}

int tinkvEof(sqlite3_vtab_cursor *pBase){
  return ((TinkvCursor*)pBase)->bEof;
}

/* Report a value or key that is not in tinkv's SQL encoding. */
static int corruptRow(sqlite3_context *ctx, TinkvTable *pTab, const char *z){
  char *zMsg = sqlite3_mprintf("tinkv: table '%s' (store '%s') holds a %s "
      "that is not in the SQL encoding of tinkv (was the store written by "
      "another program?)", pTab->zName, pTab->zPath, z);
  sqlite3_result_error(ctx, zMsg ? zMsg : "tinkv: corrupt row", -1);
  sqlite3_free(zMsg);
  return SQLITE_CORRUPT_VTAB;
}

/* Pass an engine failure of a read on as the error of ctx. */
static int readError(sqlite3_context *ctx, TinkvTable *pTab, int rc){
  if( rc==TKV_NOTFOUND ){
    sqlite3_result_error(ctx, "tinkv: the row was deleted while the cursor "
                         "was on it", -1);
    return SQLITE_ERROR;
  }
  rc = tinkvTableStatus(pTab, rc);
  sqlite3_result_error(ctx, pTab->base.zErrMsg ? pTab->base.zErrMsg
                                                : "tinkv: read failed", -1);
  sqlite3_result_error_code(ctx, rc);
  return rc;
}

/*
** xColumn.  Column 0 (key) is decoded from the keydir's key.  Column 1
** (value) is read from disk, except during an UPDATE that leaves it
** unchanged (sqlite3_vtab_nochange): xUpdate then copies the stored bytes.
*/
int tinkvColumn(sqlite3_vtab_cursor *pBase, sqlite3_context *ctx, int iCol){
  TinkvCursor *pCsr = (TinkvCursor*)pBase;
  TinkvTable *pTab = (TinkvTable*)pBase->pVtab;
  const void *pKey;
  size_t nKey;
  void *pVal = 0;
  size_t nVal = 0;
  int rc;
  if( pCsr->bPoint ){
    pKey = pCsr->key.a;
    nKey = pCsr->key.n;
  }else{
    tkv_cursor_key(pCsr->pKc, &pKey, &nKey);
  }
  if( iCol==0 ){
    if( pTab->bRaw ){
      sqlite3_result_blob64(ctx, pKey, nKey, SQLITE_TRANSIENT);
      return SQLITE_OK;
    }
    if( tinkvKeyResult(ctx, pKey, nKey) ) return corruptRow(ctx, pTab, "key");
    return SQLITE_OK;
  }
  if( sqlite3_vtab_nochange(ctx) ) return SQLITE_OK;
  if( pCsr->bPoint ){
    rc = tkv_get(pTab->pKv, pKey, nKey, &pVal, &nVal);
  }else{
    rc = tkv_cursor_value(pCsr->pKc, &pVal, &nVal);
  }
  if( rc!=TKV_OK ) return readError(ctx, pTab, rc);
  if( pTab->bRaw ){
    tinkvRawResult(ctx, pVal, nVal);
    return SQLITE_OK;
  }
  if( tinkvValueResult(ctx, pVal, nVal) ) return corruptRow(ctx, pTab, "value");
  return SQLITE_OK;
}

/* xRowid: the engine's id of the current key. */
int tinkvRowid(sqlite3_vtab_cursor *pBase, sqlite_int64 *pRowid){
  TinkvCursor *pCsr = (TinkvCursor*)pBase;
  *pRowid = (sqlite_int64)(pCsr->bPoint ? pCsr->iPointId
                                        : tkv_cursor_id(pCsr->pKc));
  return SQLITE_OK;
}
