/*
** Segment files: creation, the buffered append path of the active segment,
** syncing, rewinding an uncommitted tail, reading one record, scanning a
** whole segment, and writing its hint file.
**
** The active segment grows into space reserved ahead of the writes
** (fallocate), so that a commit's fdatasync normally has no file size to
** update.  Space past `end` is all zeros; a scan stops at a zero header.
*/
#include "engine.h"
#include "crc32c.h"
#include "err.h"
#include "io.h"
#include "mem.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#define WRITE_BUF_SIZE  (1u << 20)     /* user-space write buffer */
#define PREALLOC_MIN    (1ull << 20)   /* first reservation step */
#define PREALLOC_MAX    (8ull << 20)   /* largest reservation step */
#define SCAN_WINDOW     ((size_t)TKV_KEY_MAX + (4u << 20))
#define SEG_OFF_LIMIT   0xffffffffull  /* offsets are 32-bit in the keydir */
#define SMALL_READ      4096

int seg_name(char *out, size_t n, const char *dir, uint32_t id,
             const char *suffix){
  int len = snprintf(out, n, "%s/%010u%s", dir, id, suffix);
  if( len<0 || (size_t)len>=n ){
    return tkv_err(TKV_INVALID, "path too long: %s", dir);
  }
  return TKV_OK;
}

void seg_free(tkv_segment *s){
  if( !s ) return;
  tkv_io_unmap((void*)s->map, s->map_len);
  tkv_io_close(s->fd);
  tkv_mem_free(s->path);
  tkv_mem_free(s);
}

/*
** Map segment s for reading: its records so far, and for a segment still
** being appended to, room up to max_file_size.  Records past the map (a
** transaction that made the segment outgrow it) are read with pread.
*/
void seg_map(tkv_engine *e, tkv_segment *s){
  uint64_t len = s->end;
  if( s->map ) return;
  if( !s->sealed && len<e->opts.max_file_size ) len = e->opts.max_file_size;
  if( len>SEG_OFF_LIMIT ) len = SEG_OFF_LIMIT;
  s->map = tkv_io_map(s->fd, s->path, (size_t)len);
  s->map_len = s->map ? (size_t)len : 0;
}

/*
** Create a new segment file (name: id + suffix) holding just its header.
** The caller syncs the directory when the file's existence must last.
*/
int seg_create(tkv_engine *e, uint32_t id, uint32_t base, uint32_t flags,
               const char *suffix, tkv_segment **pseg){
  char path[4096];
  uint8_t hdr[TKV_FILE_HDR];
  tkv_file_hdr h;
  tkv_segment *s;
  int rc = seg_name(path, sizeof path, e->dir, id, suffix);
  if( rc ) return rc;
  s = tkv_mem_calloc(1, sizeof *s);
  if( !s ) return tkv_err_nomem();
  s->fd = -1;
  s->path = tkv_mem_dup(path, strlen(path));
  if( !s->path ){ seg_free(s); return tkv_err_nomem(); }
  rc = tkv_io_open(path, O_RDWR|O_CREAT|O_EXCL, 0644, &s->fd);
  if( rc ){ seg_free(s); return rc; }
  memset(&h, 0, sizeof h);
  memcpy(h.magic, TKV_MAGIC_SEG, 8);
  h.version = TKV_FORMAT_VERSION;
  h.file_id = id;
  h.base = base;
  h.flags = flags;
  tkv_file_hdr_encode(&h, hdr);
  rc = tkv_io_pwrite(s->fd, path, hdr, sizeof hdr, 0);
  if( rc ){
    seg_free(s);
    tkv_io_unlink(path);
    return rc;
  }
  s->id = id;
  s->base = base;
  s->flags = flags;
  s->end = s->alloc = TKV_FILE_HDR;
  atomic_store(&s->flushed, TKV_FILE_HDR);
  *pseg = s;
  return TKV_OK;
}

/* Order of replay: by base, then by id. */
static int seg_before(const tkv_segment *a, const tkv_segment *b){
  if( a->base!=b->base ) return a->base < b->base;
  return a->id < b->id;
}

/*
** Make room for n segments in the table, so that adding them cannot fail.
** Growing the array frees the old one, which readers walk under rw: so the
** caller holds mu and rw exclusively (or the engine is being recovered).
*/
int seg_table_reserve(tkv_engine *e, int n){
  tkv_segment **p;
  int cap = e->nseg_alloc ? e->nseg_alloc : 16;
  ASSERT_TABLE_LOCKED(e);
  if( n<=e->nseg_alloc ) return TKV_OK;
  while( cap<n ) cap *= 2;
  p = tkv_mem_realloc(e->segs, cap * sizeof *p);
  if( !p ) return tkv_err_nomem();
  e->segs = p;
  e->nseg_alloc = cap;
  return TKV_OK;
}

/* Insert s into the table in replay order.  Caller holds mu and rw
** exclusively (or the engine is being recovered). */
int seg_table_add(tkv_engine *e, tkv_segment *s){
  int i, rc = seg_table_reserve(e, e->nseg + 1);
  if( rc ) return rc;
  for(i=e->nseg; i>0 && seg_before(s, e->segs[i-1]); i--){
    e->segs[i] = e->segs[i-1];
  }
  e->segs[i] = s;
  e->nseg++;
  if( s->id>=e->next_id ) e->next_id = s->id + 1;
  return TKV_OK;
}

/* Take s out of the table (it is not freed).  Caller holds mu and rw
** exclusively. */
void seg_table_remove(tkv_engine *e, tkv_segment *s){
  int i, j;
  ASSERT_TABLE_LOCKED(e);
  for(i=0; i<e->nseg && e->segs[i]!=s; i++){}
  if( i==e->nseg ) return;
  for(j=i; j<e->nseg-1; j++) e->segs[j] = e->segs[j+1];
  e->nseg--;
}

/* The segment with this file id, or NULL.  Caller holds mu or rw. */
tkv_segment *seg_find(tkv_engine *e, uint32_t id){
  int i;
  /* The active segment is the usual answer; then a linear walk (stores
  ** have tens of segments, and the table is in replay order, not id order). */
  if( e->active && e->active->id==id ) return e->active;
  for(i=e->nseg-1; i>=0; i--){
    if( e->segs[i]->id==id ) return e->segs[i];
  }
  return NULL;
}

/* Make sure the file has space reserved up to `upto`. */
static int seg_reserve(tkv_engine *e, tkv_segment *s, uint64_t upto){
  uint64_t step, target;
  int done, rc;
  if( upto<=s->alloc ) return TKV_OK;
  step = s->alloc < PREALLOC_MIN ? PREALLOC_MIN : s->alloc;
  if( step>PREALLOC_MAX ) step = PREALLOC_MAX;
  target = s->alloc + step;
  if( target>e->opts.max_file_size ) target = e->opts.max_file_size;
  if( target<upto ) target = upto;
  rc = tkv_io_prealloc(s->fd, s->path, s->alloc, target - s->alloc, &done);
  if( rc && target>upto ){
    /* Perhaps the disk is nearly full: reserve only what this write needs. */
    target = upto;
    rc = tkv_io_prealloc(s->fd, s->path, s->alloc, target - s->alloc, &done);
  }
  if( rc ) return rc;
  s->alloc = target;
  return TKV_OK;
}

/* Write the buffer to the active segment. Caller holds mu. */
int seg_flush(tkv_engine *e){
  tkv_segment *s = e->active;
  int rc;
  if( !s || e->buf_len==0 ) return TKV_OK;
  rc = seg_reserve(e, s, e->buf_off + e->buf_len);
  if( rc ) return rc;
  rc = tkv_io_pwrite(s->fd, s->path, e->buf, e->buf_len, e->buf_off);
  if( rc ) return rc;
  atomic_fetch_add(&e->bytes_written, e->buf_len);
  e->buf_off += e->buf_len;
  e->buf_len = 0;
  atomic_store(&s->flushed, e->buf_off);
  return TKV_OK;
}

/* Write a record too large for the buffer straight to the file. */
static int seg_append_direct(tkv_engine *e, int type, const void *key,
                             uint32_t klen, const void *val, uint32_t vlen){
  tkv_segment *s = e->active;
  uint64_t off = e->buf_off;
  uint8_t *head = tkv_mem_alloc(TKV_REC_HDR + (size_t)klen);
  int rc;
  if( !head ) return tkv_err_nomem();
  head[4] = (uint8_t)type;
  head[5] = (uint8_t)klen;
  head[6] = (uint8_t)(klen >> 8);
  head[7] = (uint8_t)(klen >> 16);
  tkv_put32(head + 8, vlen);
  memcpy(head + TKV_REC_HDR, key, klen);
  tkv_put32(head, tkv_rec_crc(head, key, klen, val, vlen));
  rc = seg_reserve(e, s, off + tkv_rec_size(klen, vlen));
  if( !rc ) rc = tkv_io_pwrite(s->fd, s->path, head, TKV_REC_HDR + klen, off);
  if( !rc ) rc = tkv_io_pwrite(s->fd, s->path, val, vlen, off+TKV_REC_HDR+klen);
  tkv_mem_free(head);
  if( rc ){
    /* Leave no partial record behind the end (zeros follow `end`). */
    if( tkv_io_truncate(s->fd, s->path, off)==TKV_OK ) s->alloc = off;
    else e->broken = 1;
    return rc;
  }
  e->buf_off = off + tkv_rec_size(klen, vlen);
  atomic_fetch_add(&e->bytes_written, tkv_rec_size(klen, vlen));
  atomic_store(&s->flushed, e->buf_off);
  return TKV_OK;
}

/*
** Append one record to the active segment; *ploc receives its location.
** Nothing of it is written when this fails.  Caller holds mu and has
** called seg_start_write.
*/
int seg_append(tkv_engine *e, int type, const void *key, uint32_t klen,
               const void *val, uint32_t vlen, tkv_loc *ploc){
  tkv_segment *s = e->active;
  uint64_t size = tkv_rec_size(klen, vlen);
  uint64_t off = e->buf_off + e->buf_len;
  int rc;
  if( off + size > SEG_OFF_LIMIT ){
    return tkv_err(TKV_TOOBIG, "transaction too large: segment %s would pass "
                   "4 GiB", s->path);
  }
  if( e->buf_len + size > e->buf_cap ){
    rc = seg_flush(e);
    if( rc ) return rc;
  }
  if( size>e->buf_cap ){
    rc = seg_append_direct(e, type, key, klen, val, vlen);
  }else{
    tkv_rec_encode(e->buf + e->buf_len, type, key, klen, val, vlen);
    e->buf_len += size;
    rc = TKV_OK;
  }
  if( rc ) return rc;
  s->end = off + size;
  if( type==TKV_REC_DEL || type==TKV_REC_TXDEL ) s->tomb_bytes += size;
  ploc->file = s->id;
  ploc->off = (uint32_t)off;
  ploc->vlen = vlen;
  return TKV_OK;
}

/* Make what was appended as durable as the sync mode promises. */
int seg_commit_sync(tkv_engine *e){
  int rc;
  if( e->opts.sync==TKV_SYNC_OFF || !e->active ) return TKV_OK;
  rc = seg_flush(e);
  if( rc || e->opts.sync!=TKV_SYNC_FULL ) return rc;
  return tkv_io_sync(e->active->fd, e->active->path);
}

/* Overwrite [off, end) of s with zeros: what lies past the end of a
** segment's data is zeros, so this removes the records as truncation would. */
static int seg_zero(tkv_segment *s, uint64_t off, uint64_t end){
  static const uint8_t zeros[65536];
  int rc = TKV_OK;
  while( off<end && !rc ){
    size_t n = end - off > sizeof zeros ? sizeof zeros : (size_t)(end - off);
    rc = tkv_io_pwrite(s->fd, s->path, zeros, n, off);
    off += n;
  }
  return rc;
}

/*
** Forget everything appended to the active segment from `off` on.  Bytes
** already written to the file are cut off (or, if truncation fails,
** overwritten with zeros), and with sync=full that is synced, since the
** bytes may include a commit record that was synced.  If even that fails
** the engine refuses writes until reopened.
*/
int seg_rewind(tkv_engine *e, uint64_t off){
  tkv_segment *s = e->active;
  uint64_t written;
  int rc;
  if( !s ) return TKV_OK;
  if( off>=e->buf_off ){
    e->buf_len = (size_t)(off - e->buf_off);
    s->end = off;
    return TKV_OK;
  }
  written = e->buf_off;
  e->buf_len = 0;
  e->buf_off = off;
  s->end = off;
  atomic_store(&s->flushed, off);
  rc = tkv_io_truncate(s->fd, s->path, off);
  if( rc==TKV_OK ) s->alloc = off;
  else rc = seg_zero(s, off, written);
  if( !rc && e->opts.sync==TKV_SYNC_FULL ) rc = tkv_io_sync(s->fd, s->path);
  if( rc ) e->broken = 1;
  return rc;
}

/*
** Seal the active segment: flush, sync, give back the reserved space, and
** have its hint file written (by the merge thread, so that the commit that
** rotates does not scan the segment).  A missing hint is not an error: the
** next open scans the segment instead.
*/
int seg_seal_active(tkv_engine *e){
  tkv_segment *s = e->active;
  int rc;
  if( !s ) return TKV_OK;
  rc = seg_flush(e);
  if( !rc && e->opts.sync==TKV_SYNC_FULL ) rc = tkv_io_sync(s->fd, s->path);
  if( !rc && s->alloc>s->end ){
    rc = tkv_io_truncate(s->fd, s->path, s->end);
    if( !rc ) s->alloc = s->end;
  }
  if( rc ) return rc;
  s->sealed = 1;
  engine_wrlock(e);    /* readers look at e->active */
  e->active = NULL;
  engine_wrunlock(e);
  e->buf_len = 0;
  merge_sealed(e, s);
  return TKV_OK;
}

/*
** Called when a writer takes the slot: rotate a full active segment and
** make sure there is one to append to.  Caller holds mu.
*/
int seg_start_write(tkv_engine *e){
  tkv_segment *s;
  int rc;
  if( e->active && (e->active->end>=e->opts.max_file_size
                    || e->rotate_asap) ){
    e->rotate_asap = 0;
    rc = seg_seal_active(e);
    if( rc ) return rc;
  }
  if( !e->buf ){
    e->buf = tkv_mem_alloc(WRITE_BUF_SIZE);
    if( !e->buf ) return tkv_err_nomem();
    e->buf_cap = WRITE_BUF_SIZE;
  }
  if( e->active ) return TKV_OK;
  rc = seg_create(e, e->next_id, e->next_id, 0, ".seg", &s);
  if( rc ) return rc;
  if( e->opts.sync==TKV_SYNC_FULL ){
    rc = tkv_io_sync(s->fd, s->path);
    if( !rc ) rc = tkv_io_sync_dir(e->dir);
  }
  if( !rc ){
    seg_map(e, s);
    engine_wrlock(e);
    rc = seg_table_add(e, s);
    if( !rc ) e->active = s;
    engine_wrunlock(e);
  }
  if( rc ){
    tkv_io_unlink(s->path);
    seg_free(s);
    return rc;
  }
  e->buf_off = s->end;
  e->buf_len = 0;
  return TKV_OK;
}

/* The error for a record that fails its checks. */
static int corrupt_at(const tkv_segment *s, uint64_t off, const char *why){
  return tkv_err(TKV_CORRUPT, "corrupt record in %s at offset %llu: %s",
                 s->path, (unsigned long long)off, why);
}

/* Check a record read whole into rec (rlen bytes) against what the keydir
** says it holds. */
static int check_record(const tkv_segment *s, tkv_loc loc, const uint8_t *rec,
                        const void *key, size_t klen, const uint8_t *val){
  tkv_rec_hdr h;
  int zero;
  if( tkv_rec_hdr_decode(rec, &h, &zero) ){
    return corrupt_at(s, loc.off, "bad record header");
  }
  if( (h.type!=TKV_REC_PUT && h.type!=TKV_REC_TXPUT) || h.klen!=klen
   || h.vlen!=loc.vlen || memcmp(rec + TKV_REC_HDR, key, klen) ){
    return corrupt_at(s, loc.off, "record does not match the keydir");
  }
  if( tkv_rec_crc(rec, key, (uint32_t)klen, val, loc.vlen)!=h.crc ){
    return corrupt_at(s, loc.off, "checksum mismatch");
  }
  return TKV_OK;
}

/*
** Read and check the value at loc into a new buffer (NUL-terminated).
** Returns -2 (not a TKV code) when the record is still in the write
** buffer: the caller must flush and retry.  Caller holds rw (shared) or mu.
*/
int seg_read(tkv_engine *e, tkv_loc loc, const void *key, size_t klen,
             void **pval){
  tkv_segment *s = seg_find(e, loc.file);
  uint64_t size = tkv_rec_size((uint32_t)klen, loc.vlen);
  uint8_t small[SMALL_READ], *head = small, *val;
  int rc;
  if( !s ){
    return tkv_err(TKV_CORRUPT, "keydir points at missing segment %010u in %s",
                   loc.file, e->dir);
  }
  if( loc.off + size > atomic_load(&s->flushed) ) return -2;
  val = tkv_mem_alloc((size_t)loc.vlen + 1);
  if( !val ) return tkv_err_nomem();
  if( loc.off + size <= s->map_len ){
    /* Check the record in place, then copy out just the value. */
    const uint8_t *rec = s->map + loc.off;
    rc = check_record(s, loc, rec, key, klen, rec + TKV_REC_HDR + klen);
    if( !rc ) memcpy(val, rec + TKV_REC_HDR + klen, loc.vlen);
  }else{
    if( size<=SMALL_READ ){
      rc = tkv_io_pread(s->fd, s->path, small, size, loc.off, NULL);
      if( !rc ) memcpy(val, small + TKV_REC_HDR + klen, loc.vlen);
    }else{
      head = tkv_mem_alloc(TKV_REC_HDR + klen);
      rc = head ? TKV_OK : tkv_err_nomem();
      if( !rc ) rc = tkv_io_pread(s->fd, s->path, head, TKV_REC_HDR+klen,
                                  loc.off, NULL);
      if( !rc ) rc = tkv_io_pread(s->fd, s->path, val, loc.vlen,
                                  loc.off + TKV_REC_HDR + klen, NULL);
    }
    if( rc==TKV_CORRUPT ) rc = corrupt_at(s, loc.off, "file ends inside it");
    if( !rc ) rc = check_record(s, loc, head, key, klen, val);
    if( head!=small ) tkv_mem_free(head);
  }
  if( rc ){
    tkv_mem_free(val);
    return rc;
  }
  val[loc.vlen] = 0;
  *pval = val;
  return TKV_OK;
}

/* ------------------------------------------------------------ Scanning. */

/* A window of a file read sequentially. */
typedef struct scan_win {
  tkv_segment *s;
  uint64_t size;      /* bytes of the file to consider */
  uint8_t *buf;
  size_t cap;         /* bytes of buf: the whole file when it is small */
  uint64_t off;       /* file offset of buf[0] */
  size_t len;         /* valid bytes in buf */
} scan_win;

/* Point *pp at bytes [off, off+n) of the file.  n <= w->cap, and
** off+n <= w->size. */
static int win_get(scan_win *w, uint64_t off, size_t n, const uint8_t **pp){
  if( off<w->off || off + n > w->off + w->len ){
    uint64_t want = w->size - off;
    size_t got;
    int rc;
    if( want>w->cap ) want = w->cap;
    rc = tkv_io_pread(w->s->fd, w->s->path, w->buf, (size_t)want, off, &got);
    if( rc ) return rc;
    w->off = off;
    w->len = got;
    if( got<n ) return corrupt_at(w->s, off, "file shorter than expected");
  }
  *pp = w->buf + (off - w->off);
  return TKV_OK;
}

/* Set up a window on the first `size` bytes of s. */
static int win_open(scan_win *w, tkv_segment *s, uint64_t size){
  memset(w, 0, sizeof *w);
  w->s = s;
  w->size = size;
  w->cap = size<SCAN_WINDOW ? (size_t)size : SCAN_WINDOW;
  if( w->cap<4096 ) w->cap = 4096;
  w->buf = tkv_mem_alloc(w->cap);
  return w->buf ? TKV_OK : tkv_err_nomem();
}

/* Nonzero if bytes [off, size) are all zero. */
static int win_all_zero(scan_win *w, uint64_t off, int *pzero){
  while( off<w->size ){
    uint64_t n = w->size - off;
    const uint8_t *p;
    int rc;
    if( n>(1u<<20) ) n = 1u<<20;
    rc = win_get(w, off, (size_t)n, &p);
    if( rc ) return rc;
    for(uint64_t i=0; i<n; i++){
      if( p[i] ){ *pzero = 0; return TKV_OK; }
    }
    off += n;
  }
  *pzero = 1;
  return TKV_OK;
}

/*
** Check the record at off: header plausible, inside the file, CRC good.
** *pok is set; *pwhole says whether the header was plausible and the record
** fits in the file; *ph receives the header.
*/
static int win_check_record(scan_win *w, uint64_t off, tkv_rec_hdr *ph,
                            int *pok, int *pwhole){
  const uint8_t *p;
  uint8_t hdr[TKV_REC_HDR];
  uint64_t pos, left;
  uint32_t crc;
  int rc, zero;
  *pok = 0;
  *pwhole = 0;
  if( w->size - off < TKV_REC_HDR ) return TKV_OK;
  rc = win_get(w, off, TKV_REC_HDR, &p);
  if( rc ) return rc;
  memcpy(hdr, p, TKV_REC_HDR);
  if( tkv_rec_hdr_decode(hdr, ph, &zero) ) return TKV_OK;
  left = ph->klen + (uint64_t)ph->vlen;
  if( off + TKV_REC_HDR + left > w->size ) return TKV_OK;
  *pwhole = 1;
  crc = tkv_crc32c(0, hdr + 4, TKV_REC_HDR - 4);
  pos = off + TKV_REC_HDR;
  while( left ){
    size_t n = left > (1u<<20) ? (1u<<20) : (size_t)left;
    rc = win_get(w, pos, n, &p);
    if( rc ) return rc;
    crc = tkv_crc32c(crc, p, n);
    pos += n;
    left -= n;
  }
  *pok = crc==ph->crc;
  return TKV_OK;
}

#define INLINE_VALUE_MAX (1u << 20)

/* Report the record at pos (header h) to fn as committed. */
static int emit(scan_win *w, uint64_t pos, const tkv_rec_hdr *h, int type,
                seg_scan_fn fn, void *ctx){
  const uint8_t *p;
  int with_val = h->vlen<=INLINE_VALUE_MAX;
  int rc = win_get(w, pos + TKV_REC_HDR, h->klen + (with_val ? h->vlen : 0), &p);
  if( rc ) return rc;
  return fn(ctx, type, p, h->klen, (uint32_t)pos, h->vlen,
            with_val ? p + h->klen : NULL);
}

/* Report the records of [from, to), all known good, as committed. */
static int replay_group(scan_win *w, uint64_t from, uint64_t to,
                        seg_scan_fn fn, void *ctx){
  while( from<to ){
    const uint8_t *p;
    tkv_rec_hdr h;
    int zero, rc = win_get(w, from, TKV_REC_HDR, &p);
    if( rc ) return rc;
    tkv_rec_hdr_decode(p, &h, &zero);
    rc = emit(w, from, &h, h.type==TKV_REC_TXPUT ? TKV_REC_PUT : TKV_REC_DEL,
              fn, ctx);
    if( rc ) return rc;
    from += tkv_rec_size(h.klen, h.vlen);
  }
  return TKV_OK;
}

static int scan_loop(scan_win *w, uint64_t from, seg_scan_fn fn, void *ctx,
                     seg_scan_result *r){
  uint64_t pos = from, group = 0;
  uint32_t ngroup = 0;
  int in_group = 0, rc;
  r->committed_end = pos;
  r->why = SCAN_EOF;
  while( pos<w->size ){
    tkv_rec_hdr h;
    const uint8_t *p;
    int ok, whole, allzero;
    rc = win_check_record(w, pos, &h, &ok, &whole);
    if( rc ) return rc;
    if( !ok ){
      rc = win_all_zero(w, pos, &allzero);
      if( rc ) return rc;
      r->why = allzero ? SCAN_ZERO : whole ? SCAN_BAD : SCAN_SHORT;
      break;
    }
    switch( h.type ){
      case TKV_REC_PUT: case TKV_REC_DEL:
        in_group = 0;
        rc = emit(w, pos, &h, h.type, fn, ctx);
        if( rc ) return rc;
        r->committed_end = pos + tkv_rec_size(h.klen, h.vlen);
        break;
      case TKV_REC_TXPUT: case TKV_REC_TXDEL:
        if( !in_group ){ in_group = 1; group = pos; ngroup = 0; }
        ngroup++;
        break;
      case TKV_REC_COMMIT:
        rc = win_get(w, pos + TKV_REC_HDR, 4, &p);
        if( rc ) return rc;
        if( tkv_get32(p)!=(in_group ? ngroup : 0) ){
          r->why = SCAN_BAD;
          r->stop = pos;
          return TKV_OK;
        }
        if( in_group ){
          rc = replay_group(w, group, pos, fn, ctx);
          if( rc ) return rc;
        }
        in_group = 0;
        r->committed_end = pos + tkv_rec_size(0, 4);
        break;
    }
    pos += tkv_rec_size(h.klen, h.vlen);
  }
  r->stop = pos;
  return TKV_OK;
}

/*
** Scan bytes [header, size) of segment s, calling fn for every committed
** PUT or DEL (records of a transaction only once its COMMIT is seen), in
** file order.  The scan stops at the end, at a zero header (preallocated
** space), or at the first record that fails its checks; *r says which and
** where.  Returns a TKV code for I/O failures or fn's failure.
*/
int seg_scan(tkv_segment *s, uint64_t size, seg_scan_fn fn, void *ctx,
             seg_scan_result *r){
  return seg_scan_from(s, TKV_FILE_HDR, size, fn, ctx, r);
}

/*
** seg_scan starting at offset `from`, where a record is expected to begin
** (a merge resumes there after a record it could not read).
*/
int seg_scan_from(tkv_segment *s, uint64_t from, uint64_t size,
                  seg_scan_fn fn, void *ctx, seg_scan_result *r){
  scan_win w;
  int rc;
  memset(&w, 0, sizeof w);
  rc = win_open(&w, s, size);
  if( rc ) return rc;
  rc = scan_loop(&w, from, fn, ctx, r);
  tkv_mem_free(w.buf);
  return rc;
}

/*
** *pnext receives the offset of the first whole, checksum-valid record
** starting after `from`, or `size` if there is none.
*/
int seg_next_valid(tkv_segment *s, uint64_t from, uint64_t size,
                   uint64_t *pnext){
  scan_win w;
  int rc = TKV_OK, found = 0;
  uint64_t y;
  memset(&w, 0, sizeof w);
  rc = win_open(&w, s, size);
  if( rc ) return rc;
  for(y=from+1; y + TKV_REC_HDR <= size && !found; y++){
    tkv_rec_hdr h;
    int whole;
    rc = win_check_record(&w, y, &h, &found, &whole);
    if( rc ) break;
    if( found ) break;
  }
  tkv_mem_free(w.buf);
  *pnext = found ? y : size;
  return rc;
}

/*
** Is there any whole, checksum-valid record starting after `from`?  Used
** to tell a torn tail (nothing valid follows) from corruption.
*/
int seg_valid_record_after(tkv_segment *s, uint64_t from, uint64_t size,
                           int *pfound){
  uint64_t next = size;
  int rc = seg_next_valid(s, from, size, &next);
  *pfound = next<size;
  return rc;
}

/* ------------------------------------------------------------ Hints. */

typedef struct hint_buf {
  uint8_t *p;
  size_t len, cap;
  uint64_t count;
} hint_buf;

/* Make room for n more bytes. */
static int hint_grow(hint_buf *hb, size_t n){
  size_t cap = hb->cap ? hb->cap : 65536;
  uint8_t *p;
  if( hb->len + n <= hb->cap ) return TKV_OK;
  while( cap < hb->len + n ) cap *= 2;
  p = tkv_mem_realloc(hb->p, cap);
  if( !p ) return tkv_err_nomem();
  hb->p = p;
  hb->cap = cap;
  return TKV_OK;
}

static int hint_add(void *ctx, int type, const uint8_t *key, uint32_t klen,
                    uint32_t off, uint32_t vlen, const uint8_t *val){
  hint_buf *hb = ctx;
  int rc;
  (void)val;
  rc = hint_grow(hb, TKV_HINT_ENTRY_HDR + (size_t)klen);
  if( rc ) return rc;
  tkv_hint_entry_encode(hb->p + hb->len, type, klen, off, vlen);
  memcpy(hb->p + hb->len + TKV_HINT_ENTRY_HDR, key, klen);
  hb->len += TKV_HINT_ENTRY_HDR + (size_t)klen;
  hb->count++;
  return TKV_OK;
}

/*
** Write the hint file of sealed segment s (through a temporary name and a
** rename, so that a hint file is whole or absent).  Hints only speed up
** opening: a missing or bad one makes open scan the segment.
*/
int seg_write_hint(tkv_engine *e, tkv_segment *s){
  char path[4096], tmp[4096];
  hint_buf hb;
  tkv_file_hdr h;
  seg_scan_result r;
  int fd = -1, rc;
  memset(&hb, 0, sizeof hb);
  rc = seg_name(path, sizeof path, e->dir, s->id, ".hint");
  if( !rc ) rc = seg_name(tmp, sizeof tmp, e->dir, s->id, ".hint.tmp");
  if( rc ) return rc;
  rc = hint_grow(&hb, TKV_FILE_HDR);
  if( rc ) goto done;
  hb.len = TKV_FILE_HDR;
  rc = seg_scan(s, s->end, hint_add, &hb, &r);
  if( !rc && r.stop!=s->end ){
    rc = corrupt_at(s, r.stop, "segment does not scan cleanly");
  }
  if( !rc ) rc = hint_grow(&hb, TKV_HINT_TRAILER);
  if( rc ) goto done;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, TKV_MAGIC_HINT, 8);
  h.version = TKV_FORMAT_VERSION;
  h.file_id = s->id;
  h.base = s->base;
  h.flags = s->flags;
  tkv_file_hdr_encode(&h, hb.p);
  tkv_put64(hb.p + hb.len, hb.count);
  tkv_put32(hb.p + hb.len + 8, (uint32_t)s->end);
  tkv_put32(hb.p + hb.len + 12, tkv_crc32c(0, hb.p, hb.len + 12));
  hb.len += TKV_HINT_TRAILER;
  rc = tkv_io_open(tmp, O_WRONLY|O_CREAT|O_TRUNC, 0644, &fd);
  if( !rc ) rc = tkv_io_pwrite(fd, tmp, hb.p, hb.len, 0);
  if( !rc && e->opts.sync==TKV_SYNC_FULL ) rc = tkv_io_sync(fd, tmp);
  tkv_io_close(fd);
  if( !rc ) rc = tkv_io_rename(tmp, path);
  if( rc ) tkv_io_unlink(tmp);
  else{
    s->hint_bytes = hb.len;
    atomic_fetch_add(&e->bytes_written, hb.len);
  }
done:
  tkv_mem_free(hb.p);
  return rc;
}
