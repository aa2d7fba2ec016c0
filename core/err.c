/*
** Error messages.  One buffer per thread, so that several threads sharing a
** handle each read the message of their own last failure.
*/
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[1024];

/* Formats into a copy first, so that the arguments may include
** tkv_errmsg() (a message that wraps the cause of a failure). */
void tkv_err_set(const char *fmt, ...){
  char tmp[sizeof errbuf];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  memcpy(errbuf, tmp, sizeof errbuf);
}

void tkv_err_sys_set(int errnum, const char *what, const char *path){
  char tmp[256];
  const char *text = strerror_r(errnum, tmp, sizeof tmp);
  tkv_err_set("%s %s: %s", what, path, text);
}

const char *tkv_errmsg(void){
  return errbuf[0] ? errbuf : "not an error";
}

const char *tkv_strerror(int rc){
  switch( rc ){
    case TKV_OK:       return "ok";
    case TKV_NOTFOUND: return "not found";
    case TKV_EXISTS:   return "key exists";
    case TKV_IO:       return "I/O error";
    case TKV_CORRUPT:  return "corrupt store";
    case TKV_LOCKED:   return "store locked by another process";
    case TKV_BUSY:     return "busy: another transaction is open";
    case TKV_NOMEM:    return "out of memory";
    case TKV_TOOBIG:   return "too big";
    case TKV_INVALID:  return "invalid argument";
    case TKV_NOTSTORE: return "not a tinkv store";
    case TKV_MISUSE:   return "API misuse";
    case TKV_BROKEN:   return "store must be reopened after an earlier failure";
    case TKV_READONLY: return "store opened read-only";
  }
  return "unknown status";
}
