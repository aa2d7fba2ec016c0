/*
** tkv_stats_json: the statistics of a store as one JSON object, written in
** one place so that every front end (SQL tinkv_stats(), the server's REST
** /v1/stats) shows the same fields under the same names: the fields of
** tkv_stats, by their C names, plus last_compact_status (the status's name)
** and path.  The report of a backup likewise (tkv_backup_json), for SQL's
** tinkv_backup(), the server's BACKUP and POST /v1/backup.
*/
#include "engine.h"
#include "err.h"
#include "mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct jbuf { char *p; size_t n, cap; int oom; } jbuf;

static void jb_printf(jbuf *b, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
static void jb_printf(jbuf *b, const char *fmt, ...){
  va_list ap;
  int k;
  if( b->oom ) return;
  for(;;){
    va_start(ap, fmt);
    k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if( k<0 ){ b->oom = 1; return; }
    if( b->p && b->n + (size_t)k < b->cap ){ b->n += (size_t)k; return; }
    {
      size_t cap = (b->cap ? b->cap*2 : 512) + (size_t)k;
      char *q = tkv_mem_realloc(b->p, cap);
      if( !q ){ b->oom = 1; return; }
      b->p = q;
      b->cap = cap;
    }
  }
}

/* A JSON string. */
static void jb_string(jbuf *b, const char *z){
  jb_printf(b, "\"");
  for(; *z; z++){
    unsigned char c = (unsigned char)*z;
    if( c=='"' || c=='\\' ) jb_printf(b, "\\%c", c);
    else if( c<0x20 ) jb_printf(b, "\\u%04x", c);
    else jb_printf(b, "%c", c);
  }
  jb_printf(b, "\"");
}

int tkv_stats_json(tkv_db *db, const char *path, char **pjson){
  tkv_stats st;
  jbuf b = {0};
  int rc = tkv_stats_get(db, &st);
  *pjson = NULL;
  if( rc ) return rc;
#define U(name) jb_printf(&b, "\"" #name "\":%llu,", (unsigned long long)st.name)
  jb_printf(&b, "{");
  U(keys); U(expires); U(live_bytes); U(stale_bytes); U(files); U(disk_bytes);
  U(compactions); U(last_reclaimed); U(keydir_bytes); U(compact_threshold);
  U(checks); U(last_check_usec); U(backups); U(last_backup_usec);
  U(merges); U(merge_bytes_copied); U(merge_bytes_reclaimed); U(merge_usec);
  U(merge_damaged); U(bytes_written); U(user_bytes); U(read_txns);
  U(held_bytes);
#undef U
  jb_printf(&b, "\"dead_ratio\":%.4f,\"write_amp\":%.3f,", st.dead_ratio,
            st.write_amp);
  if( st.merge_note[0] ){
    jb_printf(&b, "\"merge_note\":");
    jb_string(&b, st.merge_note);
    jb_printf(&b, ",");
  }
  jb_printf(&b, "\"last_compact_rc\":%d,\"last_compact_status\":",
            st.last_compact_rc);
  jb_string(&b, tkv_strerror(st.last_compact_rc));
  jb_printf(&b, ",\"path\":");
  jb_string(&b, path ? path : db->e->dir);
  jb_printf(&b, "}");
  if( b.oom ){
    tkv_mem_free(b.p);
    return tkv_err_nomem();
  }
  *pjson = b.p;
  return TKV_OK;
}

int tkv_backup_json(const tkv_backup_report *r, char **pjson){
  jbuf b = {0};
  *pjson = NULL;
  jb_printf(&b, "{\"files\":%llu,\"linked\":%llu,\"copied\":%llu,"
            "\"bytes_copied\":%llu,\"kept\":%llu,\"removed\":%llu,"
            "\"usec\":%llu}",
            (unsigned long long)r->files, (unsigned long long)r->linked,
            (unsigned long long)r->copied, (unsigned long long)r->bytes_copied,
            (unsigned long long)r->kept, (unsigned long long)r->removed,
            (unsigned long long)r->usec);
  if( b.oom ){
    tkv_mem_free(b.p);
    return tkv_err_nomem();
  }
  *pjson = b.p;
  return TKV_OK;
}
