/*
** Parsing and validation of the arguments of
**
**   CREATE VIRTUAL TABLE kv USING tinkv('data/kv');
**   CREATE VIRTUAL TABLE kv USING tinkv(path='data/kv', sync=normal,
**                                       max_file_size='64MiB',
**                                       compact_threshold=10485760);
**   CREATE VIRTUAL TABLE cache USING tinkv(path='/srv/cache', encoding=raw);
**
** SQLite hands each comma-separated argument over as raw text, quotes
** included.  An argument is either "name=value" or, once and first, a bare
** value that is the path.  Values may be quoted ('..', "..", [..], `..`) or
** not.  Every mistake is an error that names the argument; nothing is
** silently ignored, because the arguments live in the database schema.
*/
#include "tinkvInt.h"

#include <ctype.h>
#include <string.h>

#define TINKV_NOPT 5          /* options known; their TINKV_OPT_* bits */

/* Return a copy of z[0..n) without surrounding blanks, or NULL on OOM. */
static char *trimmedCopy(const char *z, size_t n){
  while( n>0 && isspace((unsigned char)z[0]) ){ z++; n--; }
  while( n>0 && isspace((unsigned char)z[n-1]) ) n--;
  return sqlite3_mprintf("%.*s", (int)n, z);
}

/*
** Remove SQL quotes from z in place: '..' and ".." (with the quote doubled
** inside), [..] and `..`.  An unquoted z is left as it is.
*/
static void dequote(char *z){
  char q = z[0];
  char qEnd;
  size_t i, j;
  if( q=='[' ) qEnd = ']';
  else if( q=='\'' || q=='"' || q=='`' ) qEnd = q;
  else return;
  for(i=1, j=0; z[i]; i++){
    if( z[i]==qEnd ){
      if( qEnd!=']' && z[i+1]==qEnd ){ z[j++] = qEnd; i++; continue; }
      break;
    }
    z[j++] = z[i];
  }
  z[j] = 0;
}

/* True if z starts with a quote character. */
static int isQuoted(const char *z){
  return z[0]=='\'' || z[0]=='"' || z[0]=='[' || z[0]=='`';
}

/*
** Parse a size: decimal digits, optional blanks, an optional binary suffix
** (K, KB, KiB, M, MB, MiB, G, GB, GiB; any case).  Sizes must be positive.
** Returns 0 and sets *pn, or 1 if z is not such a size.
*/
static int parseSize(const char *z, u64 *pn){
  u64 n = 0;
  u64 mult = 1;
  const char *zUnit;
  if( !isdigit((unsigned char)*z) ) return 1;
  while( isdigit((unsigned char)*z) ){
    int d = *z - '0';
    if( n > (UINT64_MAX - (u64)d)/10 ) return 1;
    n = n*10 + (u64)d;
    z++;
  }
  while( *z==' ' ) z++;
  zUnit = z;
  if( *z ){
    switch( *z ){
      case 'k': case 'K': mult = (u64)1<<10; break;
      case 'm': case 'M': mult = (u64)1<<20; break;
      case 'g': case 'G': mult = (u64)1<<30; break;
      default: return 1;
    }
    zUnit++;
    if( sqlite3_stricmp(zUnit, "")!=0 && sqlite3_stricmp(zUnit, "b")!=0
     && sqlite3_stricmp(zUnit, "ib")!=0 ){
      return 1;
    }
  }
  if( n==0 || n > UINT64_MAX/mult ) return 1;
  *pn = n*mult;
  return 0;
}

/* Parse the value of sync=. */
static int parseSync(const char *z, tkv_sync_mode *pMode){
  if( sqlite3_stricmp(z, "full")==0 ){ *pMode = TKV_SYNC_FULL; return 0; }
  if( sqlite3_stricmp(z, "normal")==0 ){ *pMode = TKV_SYNC_NORMAL; return 0; }
  if( sqlite3_stricmp(z, "off")==0 ){ *pMode = TKV_SYNC_OFF; return 0; }
  return 1;
}

/*
** Apply one option to pCfg.  abSeen[] records which options were given, to
** refuse a second occurrence.  SQLITE_OK or an error with *pzErr set.
*/
static int applyOption(TinkvConfig *pCfg, const char *zName, char *zValue,
                       int *abSeen, char **pzErr){
  static const char *const azOpt[] = {
    "path", "sync", "max_file_size", "compact_threshold", "encoding"
  };
  int iOpt;
  for(iOpt=0; iOpt<TINKV_NOPT; iOpt++){
    if( sqlite3_stricmp(zName, azOpt[iOpt])==0 ) break;
  }
  if( iOpt==TINKV_NOPT ){
    *pzErr = sqlite3_mprintf("tinkv: unknown option '%s' (known options: "
        "path, sync, max_file_size, compact_threshold, encoding)", zName);
    return SQLITE_ERROR;
  }
  if( abSeen[iOpt] ){
    *pzErr = sqlite3_mprintf("tinkv: option '%s' given more than once",
                             azOpt[iOpt]);
    return SQLITE_ERROR;
  }
  abSeen[iOpt] = 1;
  switch( iOpt ){
    case 0:
      if( zValue[0]==0 ){
        *pzErr = sqlite3_mprintf("tinkv: the path must not be empty");
        return SQLITE_ERROR;
      }
      pCfg->zPath = sqlite3_mprintf("%s", zValue);
      return pCfg->zPath ? SQLITE_OK : SQLITE_NOMEM;
    case 1:
      if( parseSync(zValue, &pCfg->opts.sync) ){
        *pzErr = sqlite3_mprintf("tinkv: sync must be 'full', 'normal' or "
                                 "'off', not '%s'", zValue);
        return SQLITE_ERROR;
      }
      return SQLITE_OK;
    case 2:
      if( parseSize(zValue, &pCfg->opts.max_file_size) ){
        *pzErr = sqlite3_mprintf("tinkv: max_file_size must be a positive "
            "number of bytes (a KiB, MiB or GiB suffix is allowed), not '%s'",
            zValue);
        return SQLITE_ERROR;
      }
      if( pCfg->opts.max_file_size<TKV_FILE_SIZE_MIN
       || pCfg->opts.max_file_size>TKV_FILE_SIZE_MAX ){
        *pzErr = sqlite3_mprintf("tinkv: max_file_size must be between %u "
            "and %llu bytes, not %llu", TKV_FILE_SIZE_MIN,
            (unsigned long long)TKV_FILE_SIZE_MAX,
            (unsigned long long)pCfg->opts.max_file_size);
        return SQLITE_ERROR;
      }
      return SQLITE_OK;
    case 4:
      if( sqlite3_stricmp(zValue, "raw")==0 ){
        pCfg->bRaw = 1;
      }else if( sqlite3_stricmp(zValue, "sql")==0 ){
        pCfg->bRaw = 0;
      }else{
        *pzErr = sqlite3_mprintf("tinkv: encoding must be 'sql' (typed keys "
            "and values, the default) or 'raw' (BLOBs, as tinkv-server "
            "stores them), not '%s'", zValue);
        return SQLITE_ERROR;
      }
      return SQLITE_OK;
    default:
      if( parseSize(zValue, &pCfg->opts.compact_threshold)
       || pCfg->opts.compact_threshold==UINT64_MAX ){
        *pzErr = sqlite3_mprintf("tinkv: compact_threshold must be a positive "
            "number of bytes (a KiB, MiB or GiB suffix is allowed), not '%s'",
            zValue);
        return SQLITE_ERROR;
      }
      return SQLITE_OK;
  }
}

/*
** Parse one raw argument: "name=value" or a bare (positional) path, which
** is accepted only as the first argument.
*/
static int parseArg(TinkvConfig *pCfg, const char *zArg, int iArg,
                    int *abSeen, char **pzErr){
  const char *zEq = isQuoted(zArg) ? 0 : strchr(zArg, '=');
  char *zName;
  char *zValue;
  int rc;
  if( zEq==0 ){
    if( iArg>0 ){
      *pzErr = sqlite3_mprintf("tinkv: argument '%s' is not of the form "
                               "name=value (only the first argument may be "
                               "a bare path)", zArg);
      return SQLITE_ERROR;
    }
    zName = sqlite3_mprintf("path");
    zValue = trimmedCopy(zArg, strlen(zArg));
  }else{
    zName = trimmedCopy(zArg, (size_t)(zEq-zArg));
    zValue = trimmedCopy(zEq+1, strlen(zEq+1));
  }
  if( zName==0 || zValue==0 ){
    rc = SQLITE_NOMEM;
  }else{
    dequote(zName);
    dequote(zValue);
    rc = applyOption(pCfg, zName, zValue, abSeen, pzErr);
  }
  sqlite3_free(zName);
  sqlite3_free(zValue);
  return rc;
}

/*
** Parse the module arguments azArg[0..nArg) (argv[3..] of xCreate or
** xConnect) into *pCfg.  On error *pzErr names the offending argument and
** pCfg is cleared.
*/
int tinkvConfigParse(int nArg, const char *const *azArg, TinkvConfig *pCfg,
                     char **pzErr){
  int abSeen[TINKV_NOPT] = {0, 0, 0, 0, 0};
  int i;
  int rc = SQLITE_OK;
  memset(pCfg, 0, sizeof(*pCfg));
  tkv_options_init(&pCfg->opts);
  for(i=0; i<nArg && rc==SQLITE_OK; i++){
    rc = parseArg(pCfg, azArg[i], i, abSeen, pzErr);
  }
  for(i=0; i<TINKV_NOPT; i++){
    if( abSeen[i] ) pCfg->mGiven |= 1u<<i;
  }
  if( rc!=SQLITE_OK ) tinkvConfigClear(pCfg);
  return rc;
}

void tinkvConfigClear(TinkvConfig *pCfg){
  sqlite3_free(pCfg->zPath);
  pCfg->zPath = 0;
}
