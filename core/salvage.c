/*
** tkv_salvage: copy what can still be read of a damaged store into a new
** one, like sqlite3's .recover or mdb_dump -r.  The segments are read in
** replay order (base, id; a segment whose header is damaged is placed by
** its id) and every committed record walk.c finds, including those after
** damage, is applied to the new store: the last readable value of each key
** wins, as it would have in the original.  Regions that cannot be read are
** reported with file and offset.  What cannot be known is reported too: a
** damaged record may have been a newer value or a delete of some key.
** The source is only read (its LOCK held shared); hint files are ignored,
** since the segments are the data.
*/
#include "snapshot.h"
#include "walk.h"
#include "engine.h"
#include "err.h"
#include "mem.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef struct salvager {
  tkv_db *out;
  tkv_problem_fn problem;
  tkv_progress_fn progress;
  void *ctx;
  tkv_salvage_report *rep;
  const char *file;
  uint64_t base_done, total;
} salvager;

/* A segment in replay order. */
typedef struct order { uint32_t base, id; int ix; uint64_t start; } order;

static int cmp_order(const void *a, const void *b){
  const order *x = a, *y = b;
  if( x->base!=y->base ) return x->base<y->base ? -1 : 1;
  return x->id<y->id ? -1 : x->id>y->id;
}

static uint64_t now_usec(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec*1000000u + (uint64_t)ts.tv_nsec/1000u;
}

static int on_committed(void *ctx, const walk_rec *r){
  salvager *sv = ctx;
  int rc;
  if( r->type==TKV_REC_PUT || r->type==TKV_REC_TXPUT ){
    rc = tkv_write_expire(sv->out, r->key, r->klen, r->val, tkv_vlen(r->vlen),
                          0, r->expire, NULL);
  }else{
    rc = tkv_delete(sv->out, r->key, r->klen);
    if( rc==TKV_NOTFOUND ) rc = TKV_OK;
  }
  if( !rc ) sv->rep->records++;
  return rc;
}

static void on_damage(void *ctx, uint64_t off, uint64_t len, const char *why){
  salvager *sv = ctx;
  char what[512];
  sv->rep->damaged++;
  sv->rep->damaged_bytes += len;
  snprintf(what, sizeof what, "%s (%llu bytes not saved)", why,
           (unsigned long long)len);
  if( sv->problem ) sv->problem(sv->ctx, sv->file, off, what);
}

static void on_progress(void *ctx, uint64_t done){
  salvager *sv = ctx;
  if( sv->progress ) sv->progress(sv->ctx, sv->base_done + done, sv->total);
}

int tkv_salvage(const char *src, const char *dest, tkv_problem_fn problem_fn,
                tkv_progress_fn progress_fn, void *ctx,
                tkv_salvage_report *rep){
  tkv_salvage_report dummy;
  tkv_options o;
  salvager sv;
  snap s;
  order *ord = NULL;
  uint64_t t0 = now_usec();
  int rc;
  if( !rep ) rep = &dummy;
  memset(rep, 0, sizeof *rep);
  memset(&sv, 0, sizeof sv);
  if( !src || !dest ) return tkv_err(TKV_INVALID, "no source or target");
  if( tkv_is_store(dest) ){
    return tkv_err(TKV_INVALID, "%s is a store already; salvage makes a new "
                   "one", dest);
  }
  rc = snap_open_dir(src, &s);
  if( rc ) return rc;
  if( s.n==0 && !tkv_is_store(src) ){
    snap_free(&s);
    return tkv_err(TKV_NOTSTORE, "%s holds no tinkv store", src);
  }
  ord = tkv_mem_calloc((size_t)s.n + 1, sizeof *ord);
  if( !ord ){ snap_free(&s); return tkv_err_nomem(); }
  sv.problem = problem_fn;
  sv.progress = progress_fn;
  sv.ctx = ctx;
  sv.rep = rep;
  for(int i=0; i<s.n; i++){
    uint8_t buf[TKV_FILE_HDR];
    tkv_file_hdr h;
    const char *why = "cut short";
    ord[i].id = ord[i].base = s.a[i].id;
    ord[i].ix = i;
    ord[i].start = walk_data_start(NULL);
    sv.total += s.a[i].seg_size;
    if( pread(s.a[i].seg_fd, buf, sizeof buf, 0)==(ssize_t)sizeof buf
     && tkv_file_hdr_decode(buf, TKV_MAGIC_SEG, &h, &why)==0 ){
      ord[i].base = h.base;
      ord[i].start = walk_data_start(&h);
    }else{
      sv.file = s.a[i].seg_path;
      on_damage(&sv, 0, TKV_FILE_HDR, why);
    }
  }
  qsort(ord, (size_t)s.n, sizeof *ord, cmp_order);
  tkv_options_init(&o);
  o.create = 1;
  o.sync = TKV_SYNC_OFF;
  o.compact_threshold = UINT64_MAX;
  rc = tkv_open(dest, &o, &sv.out);
  /* The source's recorded key/value encoding goes with its data, so that
  ** the front end that wrote it accepts the copy.  An identity file that
  ** cannot be read is reported (the copy then records none), not counted
  ** as damaged data. */
  if( !rc ){
    uint32_t flags = 0;
    if( identity_read(src, &flags)==TKV_OK ){
      int enc = (int)((flags & TKV_ID_ENCODING_MASK) >> TKV_ID_ENCODING_SHIFT);
      if( enc ) rc = tkv_set_encoding(sv.out, enc);
    }else if( problem_fn ){
      char idpath[PATH_MAX + 16];
      snprintf(idpath, sizeof idpath, "%s/%s", src, TKV_IDENTITY_NAME);
      problem_fn(ctx, idpath, 0, "the identity file cannot be read: the "
                 "new store records no key/value encoding");
    }
  }
  for(int k=0; !rc && k<s.n; k++){
    snap_file *f = &s.a[ord[k].ix];
    walk_cb cb;
    walk_result res;
    uint8_t *map;
    if( f->seg_size<=ord[k].start ) continue;
    map = mmap(NULL, (size_t)f->seg_size, PROT_READ, MAP_SHARED, f->seg_fd, 0);
    if( map==MAP_FAILED ){
      rc = tkv_err_sys(errno, "cannot map", f->seg_path);
      break;
    }
    memset(&cb, 0, sizeof cb);
    cb.committed = on_committed;
    cb.damage = on_damage;
    cb.progress = on_progress;
    cb.ctx = &sv;
    sv.file = f->seg_path;
    rc = walk_image(map, f->seg_size, ord[k].start, 0, &cb, &res);
    munmap(map, (size_t)f->seg_size);
    sv.base_done += f->seg_size;
  }
  if( sv.out ){
    int rc2;
    if( !rc ) rc = tkv_sync(sv.out);
    rep->keys = tkv_count(sv.out);
    rc2 = tkv_close(sv.out);
    if( !rc ) rc = rc2;
  }
  tkv_mem_free(ord);
  snap_free(&s);
  rep->usec = now_usec() - t0;
  return rc;
}
