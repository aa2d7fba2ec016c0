/*
** Scanning a segment front to back: the one reader of a segment's record
** stream as a whole (recovery, hint writing and merging use it).  It
** reads through a window, checks every record's CRC, and reports only
** committed records: a transaction's records once its COMMIT is seen.
*/
#include "engine.h"
#include "crc32c.h"
#include "err.h"
#include "io.h"
#include "mem.h"

#include <string.h>

#define SCAN_WINDOW     ((size_t)TKV_KEY_MAX + (4u << 20))

int seg_corrupt(const tkv_segment *s, uint64_t off, const char *why){
  return tkv_err(TKV_CORRUPT, "corrupt record in %s at offset %llu: %s",
                 s->path, (unsigned long long)off, why);
}

/* A window of a file read sequentially. */
typedef struct scan_win {
  tkv_segment *s;
  uint64_t size;      /* bytes of the file to consider */
  uint8_t *buf;
  size_t cap;         /* bytes of buf: all the scan reads when that is little */
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
    if( got<n ) return seg_corrupt(w->s, off, "file shorter than expected");
  }
  *pp = w->buf + (off - w->off);
  return TKV_OK;
}

/* Set up a window on the first `size` bytes of s, to be read from `from`
** on.  No read can be longer than the bytes from `from` to `size`, so the
** window is no larger: a follower reading the last few records of a big
** segment gets a small buffer, a scan of a whole segment a big one (in
** huge pages: fresh memory every scan). */
static int win_open(scan_win *w, tkv_segment *s, uint64_t from,
                    uint64_t size){
  uint64_t span = size>from ? size - from : 0;
  memset(w, 0, sizeof *w);
  w->s = s;
  w->size = size;
  w->cap = span<SCAN_WINDOW ? (size_t)span : SCAN_WINDOW;
  if( w->cap<4096 ) w->cap = 4096;
  w->buf = tkv_mem_alloc_big(w->cap);
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
  left = ph->klen + tkv_rec_tail(ph->vlen);
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
  uint32_t vlen = tkv_vlen(h->vlen);
  uint64_t expire = 0;
  int with_val = vlen<=INLINE_VALUE_MAX;
  int rc;
  if( tkv_vlen_expires(h->vlen) ){
    rc = win_get(w, pos + TKV_REC_HDR + h->klen + vlen, TKV_EXPIRE_BYTES, &p);
    if( rc ) return rc;
    expire = tkv_get64(p);
  }
  rc = win_get(w, pos + TKV_REC_HDR, h->klen + (with_val ? vlen : 0), &p);
  if( rc ) return rc;
  return fn(ctx, type, p, h->klen, (uint32_t)pos, h->vlen,
            with_val ? p + h->klen : NULL, expire);
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
        if( tkv_rec_commit_count(p)!=(in_group ? ngroup : 0) ){
          r->why = SCAN_BAD;
          r->stop = pos;
          return TKV_OK;
        }
        if( in_group ){
          rc = replay_group(w, group, pos, fn, ctx);
          if( rc ) return rc;
        }
        in_group = 0;
        r->committed_end = pos + tkv_rec_size(0, TKV_COMMIT_VLEN);
        break;
    }
    pos += tkv_rec_size(h.klen, h.vlen);
  }
  r->stop = pos;
  return TKV_OK;
}

/*
** Scan bytes [first record, size) of segment s, calling fn for every
** committed PUT or DEL (records of a transaction only once its COMMIT is
** seen), in file order.  The scan stops at the end, at a zero header
** (preallocated space), or at the first record that fails its checks; *r
** says which and where.  Returns a TKV code for I/O failures or fn's
** failure.
*/
int seg_scan(tkv_segment *s, uint64_t size, seg_scan_fn fn, void *ctx,
             seg_scan_result *r){
  return seg_scan_from(s, s->start, size, fn, ctx, r);
}

/*
** seg_scan starting at offset `from`, where a record is expected to begin:
** a merge resumes there after a stretch it could not read.
*/
int seg_scan_from(tkv_segment *s, uint64_t from, uint64_t size,
                  seg_scan_fn fn, void *ctx, seg_scan_result *r){
  scan_win w;
  int rc;
  memset(&w, 0, sizeof w);
  rc = seg_pin(s);
  if( rc ) return rc;
  rc = win_open(&w, s, from, size);
  if( !rc ) rc = scan_loop(&w, from, fn, ctx, r);
  tkv_mem_free_big(w.buf, w.cap);
  seg_unpin(s);
  return rc;
}

/*
** *pnext receives the offset of the first whole, checksum-valid record
** starting after `from`, or `size` if there is none: where a merge goes on
** reading a segment past a damaged record.
*/
int seg_next_valid(tkv_segment *s, uint64_t from, uint64_t size,
                   uint64_t *pnext){
  scan_win w;
  uint64_t y;
  int rc, found = 0;
  memset(&w, 0, sizeof w);
  rc = seg_pin(s);
  if( rc ) return rc;
  rc = win_open(&w, s, from, size);
  for(y=from+1; !rc && y + TKV_REC_HDR <= size; y++){
    tkv_rec_hdr h;
    int whole;
    rc = win_check_record(&w, y, &h, &found, &whole);
    if( found ) break;
  }
  tkv_mem_free_big(w.buf, w.cap);
  seg_unpin(s);
  *pnext = found ? y : size;
  return rc;
}
