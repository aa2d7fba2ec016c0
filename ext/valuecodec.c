/*
** The byte encoding of SQL values.
**
** A stored value is its payload followed by one trailer byte that records
** the SQL type, so that typeof() returns what was inserted:
**
**   INTEGER   minimal big-endian two's complement (0 to 8 bytes), 0xA1
**   REAL      IEEE bits, big-endian (8 bytes),                     0xA2
**   TEXT      the UTF-8 bytes,                                     0xA3
**   BLOB      the bytes,                                           0xA4
**   NULL      (nothing),                                           0xA5
**
** The trailer comes last so that a TEXT or BLOB payload starts at the
** beginning of the buffer the engine returns: the buffer is handed to
** SQLite as the result without a copy, and released with tkv_free().
**
** A table with encoding=raw stores values as tinkv-server does: the bytes
** alone, no trailer.  It reads them back as BLOBs (tinkvRawResult) and
** stores any non-NULL value as CAST(value AS BLOB) would give it: TEXT as
** its UTF-8 bytes, numbers as their text (the way Redis keeps a counter).
*/
#include "tinkvInt.h"

#include <string.h>

#define TRAILER_MARK  0xA0
#define TRAILER_MASK  0xF0

/* Bytes of the shortest two's complement form of v (0 for zero). */
static int intPayloadSize(i64 v){
  int n;
  if( v==0 ) return 0;
  for(n=1; n<8; n++){
    i64 half = (i64)1 << (8*n-1);
    if( v>=-half && v<half ) return n;
  }
  return 8;
}

/*
** Encode the SQL value pVal into pBuf (pBuf->n is set).
** SQLITE_OK or SQLITE_NOMEM.
*/
int tinkvValueEncode(sqlite3_value *pVal, TinkvBuf *pBuf){
  int eType = sqlite3_value_type(pVal);
  size_t n = 0;
  switch( eType ){
    case SQLITE_INTEGER: {
      i64 v = sqlite3_value_int64(pVal);
      int nByte = intPayloadSize(v);
      int i;
      if( tinkvBufReserve(pBuf, 9) ) return SQLITE_NOMEM;
      for(i=0; i<nByte; i++){
        pBuf->a[i] = (u8)((u64)v >> ((nByte-1-i)*8));
      }
      n = (size_t)nByte;
      break;
    }
    case SQLITE_FLOAT: {
      double r = sqlite3_value_double(pVal);
      u64 bits;
      int i;
      memcpy(&bits, &r, 8);
      if( tinkvBufReserve(pBuf, 9) ) return SQLITE_NOMEM;
      for(i=0; i<8; i++) pBuf->a[i] = (u8)(bits >> ((7-i)*8));
      n = 8;
      break;
    }
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
      const void *p = eType==SQLITE_TEXT ? (const void*)sqlite3_value_text(pVal)
                                         : sqlite3_value_blob(pVal);
      n = (size_t)sqlite3_value_bytes(pVal);
      if( p==0 && n>0 ) return SQLITE_NOMEM;
      if( tinkvBufReserve(pBuf, n+1) ) return SQLITE_NOMEM;
      if( n && p ) memcpy(pBuf->a, p, n);
      break;
    }
    default:
      if( tinkvBufReserve(pBuf, 1) ) return SQLITE_NOMEM;
      eType = SQLITE_NULL;
      break;
  }
  pBuf->a[n] = (u8)(TRAILER_MARK | eType);
  pBuf->n = n+1;
  return SQLITE_OK;
}

/*
** Set the result of ctx to the value encoded in pData/nData, a buffer from
** the engine that this function takes over (it is released with tkv_free,
** now or by SQLite once it is done with the result).
** SQLITE_OK, or SQLITE_CORRUPT_VTAB if the bytes are not an encoded value.
*/
int tinkvValueResult(sqlite3_context *ctx, void *pData, size_t nData){
  u8 *a = (u8*)pData;
  size_t n;
  int eType;
  if( nData==0 || (a[nData-1] & TRAILER_MASK)!=TRAILER_MARK ){
    tkv_free(pData);
    return SQLITE_CORRUPT_VTAB;
  }
  n = nData-1;
  eType = a[n] & ~TRAILER_MASK;
  switch( eType ){
    case SQLITE_TEXT:
      sqlite3_result_text64(ctx, (const char*)a, n, tkv_free, SQLITE_UTF8);
      return SQLITE_OK;
    case SQLITE_BLOB:
      sqlite3_result_blob64(ctx, a, n, tkv_free);
      return SQLITE_OK;
    case SQLITE_INTEGER:
      if( n<=8 ){
        i64 v = (n>0 && (a[0] & 0x80)) ? -1 : 0;
        size_t i;
        for(i=0; i<n; i++) v = (i64)(((u64)v << 8) | a[i]);
        sqlite3_result_int64(ctx, v);
        tkv_free(pData);
        return SQLITE_OK;
      }
      break;
    case SQLITE_FLOAT:
      if( n==8 ){
        u64 bits = 0;
        double r;
        size_t i;
        for(i=0; i<8; i++) bits = (bits<<8) | a[i];
        memcpy(&r, &bits, 8);
        sqlite3_result_double(ctx, r);
        tkv_free(pData);
        return SQLITE_OK;
      }
      break;
    case SQLITE_NULL:
      if( n==0 ){
        sqlite3_result_null(ctx);
        tkv_free(pData);
        return SQLITE_OK;
      }
      break;
  }
  tkv_free(pData);
  return SQLITE_CORRUPT_VTAB;
}

/*
** encoding=raw: copy the bytes of the non-NULL value pVal into pBuf, as
** CAST(pVal AS BLOB) gives them.  SQLITE_OK or SQLITE_NOMEM.
*/
int tinkvRawEncode(sqlite3_value *pVal, TinkvBuf *pBuf){
  const void *p = sqlite3_value_blob(pVal);
  size_t n = (size_t)sqlite3_value_bytes(pVal);
  if( p==0 && n>0 ) return SQLITE_NOMEM;
  if( tinkvBufReserve(pBuf, n ? n : 1) ) return SQLITE_NOMEM;
  if( n && p ) memcpy(pBuf->a, p, n);
  pBuf->n = n;
  return SQLITE_OK;
}

/* encoding=raw: the engine buffer pData/nData as a BLOB result; the
** buffer is taken over (released with tkv_free). */
void tinkvRawResult(sqlite3_context *ctx, void *pData, size_t nData){
  sqlite3_result_blob64(ctx, pData, nData, tkv_free);
}
