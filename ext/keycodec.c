/*
** The byte encoding of SQL keys.
**
** The engine orders keys bytewise (memcmp, then the shorter key first).
** This encoding makes that order equal to SQLite's order of the same values
** in a column with no affinity and BINARY collation: numbers (INTEGER and
** REAL together, by value) < TEXT (memcmp) < BLOB (memcmp).
**
**   REAL < -2^63       0x10, ~(IEEE bits), big-endian               9 bytes
**   -2^63 <= x < 2^63  0x20, i = floor(x) as big-endian int64 with
**                      its sign bit flipped, then a suffix:
**                        INTEGER x             (none)              9 bytes
**                        REAL x, integral      0x00               10 bytes
**                        REAL x, fractional    x's IEEE bits, or
**                                              ~bits when x < 0   17 bytes
**   REAL >= 2^63       0x30, IEEE bits, big-endian                  9 bytes
**   TEXT               0x40, the UTF-8 bytes
**   BLOB               0x50, the bytes
**
** Within one integer part i, the plain INTEGER form sorts first, then the
** integral REAL form (one byte longer), then the fractional values, whose
** suffix orders them by value because they all share the sign of i.
**
** The INTEGER 1 and the REAL 1.0 are the same SQL key but encode as two
** "twins" (9 and 10 bytes): a table holds at most one of them, and the key
** keeps the type it was inserted with without any disk read.  Writers and
** point lookups check the twin too (tinkvKeyTwin).
*/
#include "tinkvInt.h"

#include <string.h>

#define TWO_POW_63  9223372036854775808.0

/* Make room for n bytes in pBuf.  SQLITE_OK or SQLITE_NOMEM. */
int tinkvBufReserve(TinkvBuf *pBuf, size_t n){
  u8 *aNew;
  size_t nNew;
  if( n<=pBuf->nAlloc ) return SQLITE_OK;
  nNew = pBuf->nAlloc ? pBuf->nAlloc*2 : 64;
  while( nNew<n ) nNew *= 2;
  aNew = sqlite3_realloc64(pBuf->a, nNew);
  if( aNew==0 ) return SQLITE_NOMEM;
  pBuf->a = aNew;
  pBuf->nAlloc = nNew;
  return SQLITE_OK;
}

void tinkvBufFree(TinkvBuf *pBuf){
  sqlite3_free(pBuf->a);
  memset(pBuf, 0, sizeof(*pBuf));
}

static void putBigEndian64(u8 *a, u64 v){
  int i;
  for(i=7; i>=0; i--){ a[i] = (u8)v; v >>= 8; }
}

static u64 getBigEndian64(const u8 *a){
  u64 v = 0;
  int i;
  for(i=0; i<8; i++) v = (v<<8) | a[i];
  return v;
}

static u64 doubleBits(double r){
  u64 v;
  memcpy(&v, &r, 8);
  return v;
}

static double bitsDouble(u64 v){
  double r;
  memcpy(&r, &v, 8);
  return r;
}

/*
** Write the integer part of a number key: tag and flipped int64.  Also
** write the twin marker byte 0x00 after it, so that the REAL twin of an
** INTEGER key is always available as the first 10 bytes of the buffer.
*/
static void encodeIntPart(u8 *a, i64 i){
  a[0] = TINKV_KEY_NUM;
  putBigEndian64(&a[1], (u64)i ^ ((u64)1<<63));
  a[9] = 0x00;
}

/* Encode a REAL key into a (room for 17 bytes); return its length. */
static size_t encodeReal(u8 *a, double r){
  i64 i;
  if( r==0.0 ) r = 0.0;                       /* -0.0 is 0 */
  if( r<-TWO_POW_63 ){
    a[0] = TINKV_KEY_NEGBIG;
    putBigEndian64(&a[1], ~doubleBits(r));
    return 9;
  }
  if( r>=TWO_POW_63 ){
    a[0] = TINKV_KEY_POSBIG;
    putBigEndian64(&a[1], doubleBits(r));
    return 9;
  }
  i = (i64)r;                                 /* truncated toward zero */
  if( (double)i>r ) i--;                      /* floor */
  encodeIntPart(a, i);
  if( (double)i==r ) return 10;
  putBigEndian64(&a[9], r<0.0 ? ~doubleBits(r) : doubleBits(r));
  return 17;
}

/*
** Encode the non-NULL value pVal as a key into pBuf (pBuf->n is set).  For
** a number in the int64 range, the buffer also holds the twin marker (see
** tinkvKeyTwin).  SQLITE_OK or SQLITE_NOMEM.
*/
int tinkvKeyEncode(sqlite3_value *pVal, TinkvBuf *pBuf){
  int eType = sqlite3_value_type(pVal);
  size_t n;
  if( eType==SQLITE_TEXT || eType==SQLITE_BLOB ){
    const void *p = eType==SQLITE_TEXT ? (const void*)sqlite3_value_text(pVal)
                                       : sqlite3_value_blob(pVal);
    n = (size_t)sqlite3_value_bytes(pVal);
    if( p==0 && n>0 ) return SQLITE_NOMEM;
    if( tinkvBufReserve(pBuf, n+1) ) return SQLITE_NOMEM;
    pBuf->a[0] = eType==SQLITE_TEXT ? TINKV_KEY_TEXT : TINKV_KEY_BLOB;
    if( n && p ) memcpy(&pBuf->a[1], p, n);
    pBuf->n = n+1;
    return SQLITE_OK;
  }
  if( tinkvBufReserve(pBuf, 17) ) return SQLITE_NOMEM;
  if( eType==SQLITE_INTEGER ){
    encodeIntPart(pBuf->a, sqlite3_value_int64(pVal));
    pBuf->n = TINKV_KEY_NUM_INT_LEN;
  }else{
    pBuf->n = encodeReal(pBuf->a, sqlite3_value_double(pVal));
  }
  return SQLITE_OK;
}

/*
** The length of the twin of the encoded key aKey/nKey, or 0 if it has none.
** The twin of an INTEGER key is the REAL key of the same value: the same
** bytes plus the 0x00 marker (tinkvKeyEncode leaves it in the buffer).  The
** twin of an integral REAL key is the INTEGER key: the same bytes minus the
** marker.
*/
size_t tinkvKeyTwin(const u8 *aKey, size_t nKey){
  if( nKey==0 || aKey[0]!=TINKV_KEY_NUM ) return 0;
  if( nKey==TINKV_KEY_NUM_INT_LEN ) return TINKV_KEY_NUM_INT_LEN+1;
  if( nKey==TINKV_KEY_NUM_INT_LEN+1 ) return TINKV_KEY_NUM_INT_LEN;
  return 0;
}

/* True if aKey/nKey is the encoding of an INTEGER. */
int tinkvKeyIsInteger(const u8 *aKey, size_t nKey){
  return nKey==TINKV_KEY_NUM_INT_LEN && aKey[0]==TINKV_KEY_NUM;
}

/*
** Set the result of ctx to the SQL value of the encoded key aKey/nKey.
** SQLITE_OK, or SQLITE_CORRUPT_VTAB if the bytes are not an encoded key.
*/
int tinkvKeyResult(sqlite3_context *ctx, const u8 *aKey, size_t nKey){
  if( nKey==0 ) return SQLITE_CORRUPT_VTAB;
  switch( aKey[0] ){
    case TINKV_KEY_TEXT:
      sqlite3_result_text64(ctx, (const char*)&aKey[1], nKey-1,
                            SQLITE_TRANSIENT, SQLITE_UTF8);
      return SQLITE_OK;
    case TINKV_KEY_BLOB:
      sqlite3_result_blob64(ctx, &aKey[1], nKey-1, SQLITE_TRANSIENT);
      return SQLITE_OK;
    case TINKV_KEY_NEGBIG:
      if( nKey!=9 ) return SQLITE_CORRUPT_VTAB;
      sqlite3_result_double(ctx, bitsDouble(~getBigEndian64(&aKey[1])));
      return SQLITE_OK;
    case TINKV_KEY_POSBIG:
      if( nKey!=9 ) return SQLITE_CORRUPT_VTAB;
      sqlite3_result_double(ctx, bitsDouble(getBigEndian64(&aKey[1])));
      return SQLITE_OK;
    case TINKV_KEY_NUM: {
      i64 i;
      if( nKey!=9 && nKey!=10 && nKey!=17 ) return SQLITE_CORRUPT_VTAB;
      i = (i64)(getBigEndian64(&aKey[1]) ^ ((u64)1<<63));
      if( nKey==9 ){
        sqlite3_result_int64(ctx, i);
      }else if( nKey==10 ){
        if( aKey[9]!=0x00 ) return SQLITE_CORRUPT_VTAB;
        sqlite3_result_double(ctx, (double)i);
      }else{
        u64 v = getBigEndian64(&aKey[9]);
        sqlite3_result_double(ctx, bitsDouble(i<0 ? ~v : v));
      }
      return SQLITE_OK;
    }
  }
  return SQLITE_CORRUPT_VTAB;
}

/*
** True if aKey/nKey is a key in this encoding (what tinkvKeyResult
** decodes).  Used to tell a store written by SQL tables from one holding
** raw keys when the store does not record which it is.
*/
int tinkvKeyIsValid(const u8 *aKey, size_t nKey){
  if( nKey==0 ) return 0;
  switch( aKey[0] ){
    case TINKV_KEY_TEXT:
    case TINKV_KEY_BLOB:
      return 1;
    case TINKV_KEY_NEGBIG:
    case TINKV_KEY_POSBIG:
      return nKey==9;
    case TINKV_KEY_NUM:
      return nKey==9 || (nKey==10 && aKey[9]==0x00) || nKey==17;
  }
  return 0;
}

/* Compare two encoded keys in the engine's order: memcmp, shorter first. */
int tinkvKeyCompare(const u8 *a, size_t na, const u8 *b, size_t nb){
  size_t n = na<nb ? na : nb;
  int c = n ? memcmp(a, b, n) : 0;
  if( c ) return c;
  return na<nb ? -1 : (na>nb ? 1 : 0);
}

/*
** True unless TEXT value pVal of a UTF-16 database holds an unpaired
** surrogate.  SQLite's conversion to UTF-8 (which keys and values are
** stored in) maps such text onto the same bytes as a different, valid
** string, so it cannot be stored faithfully.  Call only for UTF-16
** databases: the text is then read without conversion.
*/
int tinkvText16IsWellFormed(sqlite3_value *pVal){
  const unsigned short *a = (const unsigned short*)sqlite3_value_text16(pVal);
  int n = sqlite3_value_bytes16(pVal)/2;
  int i;
  if( a==0 ) return 1;
  for(i=0; i<n; i++){
    unsigned c = a[i];
    if( c>=0xD800 && c<=0xDBFF ){
      if( i+1>=n || a[i+1]<0xDC00 || a[i+1]>0xDFFF ) return 0;
      i++;
    }else if( c>=0xDC00 && c<=0xDFFF ){
      return 0;
    }
  }
  return 1;
}
