/*
** Walking a possibly damaged segment image (see walk.h).
**
** Resynchronising after damage: a record's header gives its length, so a
** bad record (or a length that was itself damaged) leaves no trustworthy
** way to the next one.  The walk tries every later offset until one holds
** a plausible header whose record fits and whose CRC-32C matches.  A false
** match needs a 32-bit checksum to agree by chance, so a resumed walk is
** reading records that were really written.
*/
#include "walk.h"
#include "format.h"
#include "mem.h"
#include "tinkv.h"

#include <string.h>

#define PROGRESS_STEP (4u << 20)

/* A valid record at img[off]: 0 and *h, else -1. */
static int valid_at(const uint8_t *img, uint64_t size, uint64_t off,
                    tkv_rec_hdr *h){
  int zero;
  if( size - off < TKV_REC_HDR ) return -1;
  if( tkv_rec_hdr_decode(img + off, h, &zero) ) return -1;
  if( tkv_rec_size(h->klen, h->vlen) > size - off ) return -1;
  if( tkv_rec_crc(img + off, img + off + TKV_REC_HDR, h->klen,
                  img + off + TKV_REC_HDR + h->klen, h->vlen)!=h->crc ){
    return -1;
  }
  return 0;
}

/* The first offset >= from holding a valid record, or size. */
static uint64_t next_valid(const uint8_t *img, uint64_t size, uint64_t from){
  tkv_rec_hdr h;
  for(uint64_t off=from; off + TKV_REC_HDR <= size; off++){
    if( valid_at(img, size, off, &h)==0 ) return off;
  }
  return size;
}

/* The first non-zero byte at or after from, or size. */
static uint64_t next_nonzero(const uint8_t *img, uint64_t size, uint64_t from){
  while( from<size && img[from]==0 ) from++;
  return from;
}

static void damage(const walk_cb *cb, walk_result *res, uint64_t off,
                   uint64_t len, const char *why){
  res->damaged++;
  if( cb->damage ) cb->damage(cb->ctx, off, len, why);
}

/*
** The open transaction: the offsets of its readable records (damage may
** have cut holes in it), waiting for the COMMIT that makes them committed.
*/
typedef struct group {
  uint64_t *off;
  uint64_t n, cap;
  uint64_t first, end;      /* first byte and end of its records */
  int broken;               /* damage was found inside it */
} group;

static int group_add(group *g, uint64_t off, uint64_t end){
  if( g->n==g->cap ){
    uint64_t ncap = g->cap ? g->cap*2 : 64;
    uint64_t *p = tkv_mem_realloc(g->off, (size_t)ncap * sizeof *p);
    if( !p ) return TKV_NOMEM;
    g->off = p;
    g->cap = ncap;
  }
  if( g->n==0 ) g->first = off;
  g->off[g->n++] = off;
  g->end = end;
  return 0;
}

/* Hand the records of g to the committed callback. */
static int group_emit(const uint8_t *img, const group *g, const walk_cb *cb){
  for(uint64_t i=0; i<g->n; i++){
    walk_rec r;
    tkv_rec_hdr h;
    int z, rc;
    (void)tkv_rec_hdr_decode(img + g->off[i], &h, &z);
    r.type = h.type; r.off = g->off[i];
    r.key = img + g->off[i] + TKV_REC_HDR; r.klen = h.klen;
    r.val = r.key + h.klen; r.vlen = h.vlen;
    r.expire = tkv_rec_expire(r.val, h.vlen);
    if( cb->committed && (rc = cb->committed(cb->ctx, &r))!=0 ) return rc;
  }
  return 0;
}

/* A group that no COMMIT ends: reported, dropped. */
static void group_drop(const walk_cb *cb, walk_result *res, group *g,
                       const char *why){
  if( g->n ) damage(cb, res, g->first, g->end - g->first, why);
  g->n = 0;
  g->broken = 0;
}

int walk_image(const uint8_t *img, uint64_t size, uint64_t start,
               int tail_txn_ok, const walk_cb *cb, walk_result *res){
  uint64_t pos = start, next_progress = PROGRESS_STEP;
  group g;
  int rc = 0;
  memset(res, 0, sizeof *res);
  memset(&g, 0, sizeof g);
  res->committed_end = res->data_end = start;
  while( pos<size && rc==0 ){
    tkv_rec_hdr h;
    int zero = 0;
    if( cb->progress && pos>=next_progress ){
      cb->progress(cb->ctx, pos);
      next_progress = pos + PROGRESS_STEP;
    }
    if( size - pos >= TKV_REC_HDR ){
      (void)tkv_rec_hdr_decode(img + pos, &h, &zero);
    }else{
      zero = next_nonzero(img, size, pos)==size;
    }
    if( zero ){
      /* The end of the data, if only zeros follow. */
      uint64_t nz = next_nonzero(img, size, pos);
      uint64_t nv;
      if( nz==size ){ res->zero_tail = 1; break; }
      nv = next_valid(img, size, nz);
      g.broken = g.n>0;
      damage(cb, res, nz, nv - nz, nv<size
             ? "records after the end-of-data marker (zero bytes): the open "
               "of the store ignores them"
             : "non-zero bytes after the end of the data");
      pos = nv;
      continue;
    }
    if( valid_at(img, size, pos, &h) ){
      uint64_t nv = next_valid(img, size, pos + 1);
      const char *why;
      int z;
      if( size - pos < TKV_REC_HDR ){
        why = "a record header cut short (torn write)";
      }else if( tkv_rec_hdr_decode(img + pos, &h, &z) ){
        why = "bad record header (type or length)";
      }else if( tkv_rec_size(h.klen, h.vlen) > size - pos ){
        why = "a record runs past the end of the file (torn write)";
      }else{
        why = "record checksum mismatch";
      }
      g.broken = g.n>0;
      damage(cb, res, pos, nv - pos, why);
      pos = nv;
      continue;
    }
    res->records++;
    res->data_end = pos + tkv_rec_size(h.klen, h.vlen);
    switch( h.type ){
      case TKV_REC_PUT: case TKV_REC_DEL: {
        walk_rec r;
        group_drop(cb, res, &g, "a transaction without its COMMIT (the open "
                   "of the store discards it)");
        r.type = h.type; r.off = pos;
        r.key = img + pos + TKV_REC_HDR; r.klen = h.klen;
        r.val = r.key + h.klen; r.vlen = h.vlen;
        r.expire = tkv_rec_expire(r.val, h.vlen);
        if( cb->committed ) rc = cb->committed(cb->ctx, &r);
        res->committed_end = res->data_end;
        break;
      }
      case TKV_REC_TXPUT: case TKV_REC_TXDEL:
        if( group_add(&g, pos, res->data_end) ) rc = TKV_NOMEM;
        break;
      case TKV_REC_COMMIT: {
        uint32_t count = tkv_get32(img + pos + TKV_REC_HDR);
        if( !g.broken && count!=g.n ){
          damage(cb, res, g.n ? g.first : pos,
                 res->data_end - (g.n ? g.first : pos),
                 "a COMMIT whose count does not match its transaction's "
                 "records (the open of the store discards them)");
        }else{
          /* A whole group; or one with damage inside (reported already),
          ** whose readable records are still committed data. */
          rc = group_emit(img, &g, cb);
        }
        g.n = 0;
        g.broken = 0;
        res->committed_end = res->data_end;
        break;
      }
    }
    pos = res->data_end;
  }
  if( rc==0 && g.n && !(tail_txn_ok && !g.broken) ){
    group_drop(cb, res, &g, "a transaction without its COMMIT at the end (a "
               "crash; the open of the store discards it)");
  }
  tkv_mem_free(g.off);
  if( rc==0 && cb->progress ) cb->progress(cb->ctx, size);
  return rc;
}
