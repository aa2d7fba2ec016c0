/*
** Opening a store: find its segments, rebuild the keydir from hint files
** (or by scanning segments without a good hint), cut a torn tail of the
** last segment, and clear what an interrupted compaction left behind.
**
** Segments are replayed in (base, id) order, so a compaction's output,
** whose base is the highest id it replaced, comes after every segment it
** replaced and before every segment written after it.  Replaying leftover
** old segments before the output is harmless: the output holds the latest
** value of each key as of the compaction.
*/
#include "engine.h"
#include "readtxn.h"
#include "err.h"
#include "io.h"
#include "mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Replay state: the engine and the segment being read. */
typedef struct replay {
  tkv_engine *e;
  uint32_t file;
  tkv_segment *seg;     /* the output being applied (apply_output) */
} replay;

/* Apply one committed record to the keydir (and its expiry time to the
** expiry table). */
static int apply_record(void *ctx, int type, const uint8_t *key, uint32_t klen,
                        uint32_t off, uint32_t vlen, const uint8_t *val,
                        uint64_t expire){
  replay *rp = ctx;
  tkv_engine *e = rp->e;
  kd_entry *en = kd_index_find(e->index, key, klen);
  tkv_loc loc;
  int rc;
  (void)val;
  loc.file = rp->file;
  loc.off = off;
  loc.vlen = vlen;
  if( type==TKV_REC_DEL ){        /* for the merge policy's estimate */
    tkv_segment *s = seg_find(e, rp->file);
    if( s ) s->tomb_bytes += tkv_rec_size(klen, vlen);
  }
  if( expire && (rc = exp_reserve(e, 1))!=TKV_OK ) return rc;
  if( en ){
    uint64_t old = entry_rec_size(en, kd_entry_loc(en));
    rtx_note(e, en, 0);     /* (following another process's commits) */
    e->live_bytes -= old;
    seg_account(e, kd_entry_loc(en), -(int64_t)old);
    if( tkv_vlen_expires(kd_entry_loc(en).vlen) ) exp_del(e, en);
    if( type==TKV_REC_DEL ){
      kd_index_remove(e->index, en);
      rtx_drop(e, en);
      e->keys--;
      return TKV_OK;
    }
    kd_entry_set_loc(en, loc);
  }else{
    if( type==TKV_REC_DEL ) return TKV_OK;
    en = kd_entry_new(e->arena, key, klen, loc, 0);
    if( !en ) return tkv_err_nomem();
    if( kd_index_insert(e->index, en) ){
      kd_entry_free(e->arena, en);
      return tkv_err_nomem();
    }
    rtx_note(e, en, 1);
    e->keys++;
  }
  if( expire ) exp_set(e, en, expire);
  e->live_bytes += tkv_rec_size(klen, vlen);
  seg_account(e, loc, (int64_t)tkv_rec_size(klen, vlen));
  return TKV_OK;
}

/*
** LOADING IN KEY ORDER.  A segment's records come in the order they were
** written, which for most workloads is random in key order, and each
** apply_record then walks the keydir's index from the root through nodes
** last touched long ago: at a million keys, several cache misses a record,
** most of an open's time.  So a segment's records are gathered into a
** load_batch (keys copied, since a scan's window moves on), sorted into
** key order (kd_sort, which keeps the records of one key in file order) and
** applied then: consecutive records share their path down the index.
** Applying records of different keys in another order changes nothing
** (each record touches only its key's entry, and the sums of live and dead
** bytes add up the same), and segments are still applied one after the
** other in replay order.  Only the ids the entries get differ, and those
** are not kept across opens anyway.  A batch is applied when it is full
** (LOAD_BATCH_MAX records or LOAD_BATCH_KEYS bytes, bounding the
** memory an open takes on top of the keydir), when it cannot grow, and at
** the end of the segment.
*/
#define LOAD_BATCH_MAX  ((size_t)1 << 20)
#define LOAD_BATCH_KEYS ((size_t)64 << 20)

/* In the batch's bytes each record is its offset in the segment (4 bytes),
** value word (4), type (1), then its key, then its expiry time (8) if the
** value word says it has one; v[] points at the keys. */
#define LOAD_REC_HDR 9
/* Records ahead whose key batch_apply asks the CPU to fetch. */
#define LOAD_PREFETCH 8

typedef struct load_batch {
  replay rp;            /* where the records go */
  kd_sortkey *v;        /* the keys; tag: the key's offset in bytes[] until
                        ** batch_apply points key at it */
  size_t n, cap;
  uint8_t *bytes;       /* the records, as above */
  size_t len, bcap;     /* bytes used, allocated */
} load_batch;

static void batch_free(load_batch *b){
  tkv_mem_free_big(b->v, b->cap * sizeof *b->v);
  tkv_mem_free_big(b->bytes, b->bcap);
  memset(b, 0, sizeof *b);
}

/* Apply the record whose key is at k (klen bytes) in a batch. */
static int batch_apply_one(replay *rp, const uint8_t *k, uint32_t klen){
  const uint8_t *h = k - LOAD_REC_HDR;
  uint32_t off = tkv_get32(h), vlen = tkv_get32(h + 4);
  uint64_t expire = tkv_vlen_expires(vlen) ? tkv_get64(k + klen) : 0;
  return apply_record(rp, h[8], k, klen, off, vlen, NULL, expire);
}

/*
** Apply the gathered records to the keydir, in key order (in file order
** if they cannot be sorted: only slower), and empty the batch.  The loop
** reads the records in key order, so each one is a cache miss away: the
** CPU is asked for the ones a few places ahead while it works.
*/
static int batch_apply(load_batch *b){
  int rc = TKV_OK;
  for(size_t i=0; i<b->n; i++) b->v[i].key = b->bytes + b->v[i].tag;
  if( b->n>1 ) (void)kd_sort(b->v, b->n);
  for(size_t i=0; !rc && i<b->n; i++){
#if defined(__GNUC__)
    if( i + LOAD_PREFETCH < b->n ){
      __builtin_prefetch(b->v[i + LOAD_PREFETCH].key - LOAD_REC_HDR);
    }
#endif
    rc = batch_apply_one(&b->rp, b->v[i].key, b->v[i].klen);
  }
  b->n = 0;
  b->len = 0;
  return rc;
}

/* Make room in b for one more record of `bytes` bytes: grow it, or apply
** what it holds when it is full or cannot grow.  Buffers are replaced
** rather than realloc'ed, to stay in huge pages (tkv_mem_alloc_big). */
static int batch_room(load_batch *b, size_t bytes){
  if( b->n==b->cap && b->cap<LOAD_BATCH_MAX ){
    size_t cap = b->cap ? b->cap*2 : 4096;
    kd_sortkey *p = tkv_mem_alloc_big(cap * sizeof *p);
    if( p ){
      if( b->n ) memcpy(p, b->v, b->n * sizeof *p);
      tkv_mem_free_big(b->v, b->cap * sizeof *p);
      b->v = p;
      b->cap = cap;
    }
  }
  if( b->len + bytes > b->bcap && b->len + bytes <= LOAD_BATCH_KEYS ){
    size_t cap = b->bcap ? b->bcap : 65536;
    uint8_t *p;
    while( cap < b->len + bytes ) cap *= 2;
    p = tkv_mem_alloc_big(cap);
    if( p ){
      if( b->len ) memcpy(p, b->bytes, b->len);
      tkv_mem_free_big(b->bytes, b->bcap);
      b->bytes = p;
      b->bcap = cap;
    }
  }
  if( (b->n<b->cap && b->len + bytes <= b->bcap) || b->n==0 ) return TKV_OK;
  return batch_apply(b);
}

/* A seg_scan_fn that gathers a committed record into the batch ctx (or
** applies it at once when there is no room for it even in an empty
** batch). */
static int batch_add(void *ctx, int type, const uint8_t *key, uint32_t klen,
                     uint32_t off, uint32_t vlen, const uint8_t *val,
                     uint64_t expire){
  load_batch *b = ctx;
  size_t bytes = LOAD_REC_HDR + (size_t)klen
               + (tkv_vlen_expires(vlen) ? TKV_EXPIRE_BYTES : 0);
  uint8_t *p;
  int rc = batch_room(b, bytes);
  if( rc ) return rc;
  if( b->n==b->cap || b->len + bytes > b->bcap ){
    return apply_record(&b->rp, type, key, klen, off, vlen, val, expire);
  }
  p = b->bytes + b->len;
  tkv_put32(p, off);
  tkv_put32(p + 4, vlen);
  p[8] = (uint8_t)type;
  if( klen ) memcpy(p + LOAD_REC_HDR, key, klen);
  if( tkv_vlen_expires(vlen) ) tkv_put64(p + LOAD_REC_HDR + klen, expire);
  b->v[b->n].key = NULL;
  b->v[b->n].klen = klen;
  b->v[b->n].tag = (uint32_t)(b->len + LOAD_REC_HDR);
  b->n++;
  b->len += bytes;
  return TKV_OK;
}

/* Why a scan stopped, for an error message. */
static const char *stop_reason(const seg_scan_result *r){
  switch( r->why ){
    case SCAN_BAD:  return "checksum mismatch";
    case SCAN_ZERO: return "zeros where records should be";
    case SCAN_SHORT: return "bad header or length";
  }
  return "transaction without its commit record";
}

/*
** Scan segment s (`size` bytes) into the keydir and decide where its log
** ends.  The rule (FORMAT.md, "Recovery"):
**   - Records count only as whole committed transactions: a PUT or DEL, or
**     TX records followed by their COMMIT, every one intact.  The scan
**     walks record by record by their lengths and never looks inside a
**     value, so its cost is linear in the bytes it reads.
**   - The durable part of a segment is what an fdatasync is known to have
**     covered: all of it for any segment but the newest appended one
**     (sealing syncs; compaction output is synced before it is named), and
**     for the newest one [0, D), D from its sync area.  Anything wrong in
**     the durable part is corruption, reported with file and offset.
**   - Past D in the newest segment, the first record that is not intact
**     ends the log: what follows the last whole transaction is a torn
**     tail of writes that never became durable.  It is cut off, and the
**     cut is synced before anything else is written.
*/
static int scan_segment(tkv_segment *s, uint64_t size, int last, int nowrite,
                        load_batch *b){
  seg_scan_result r;
  uint64_t durable = last ? s->durable : size;
  int rc;
  /* Nothing is durable before the first record; a newest segment shorter
  ** than its header and sync area was created and never synced. */
  if( durable<s->start ) durable = s->start < size ? s->start : size;
  if( durable>size ){
    return tkv_err(TKV_CORRUPT, "corrupt segment %s at offset %llu: the file "
                   "ends before its synced end %llu", s->path,
                   (unsigned long long)size, (unsigned long long)durable);
  }
  rc = seg_scan(s, size, batch_add, b, &r);
  if( rc ) return rc;
  if( !last ){
    /* Durable whole.  Zeros to the end are space a crash kept allocated
    ** after the seal's sync, before its truncate. */
    if( r.why==SCAN_BAD || r.why==SCAN_SHORT ){
      return seg_corrupt(s, r.stop, stop_reason(&r));
    }
    s->end = r.stop;
    s->alloc = size;
    return TKV_OK;
  }
  if( r.committed_end<durable ){
    uint64_t at = r.stop<durable ? r.stop : r.committed_end;
    return seg_corrupt(s, at, r.stop<durable ? stop_reason(&r)
                              : "transaction without its commit record");
  }
  s->end = r.committed_end;
  s->alloc = size;
  if( nowrite ) return TKV_OK;    /* the next writer cuts the tail (share.c) */
  if( size>s->end && (r.why!=SCAN_ZERO || r.stop!=r.committed_end) ){
    rc = tkv_io_truncate(s->fd, s->path, s->end);
    if( !rc ) rc = tkv_io_sync(s->fd, s->path);
    if( rc ) return rc;
    s->alloc = s->end;
  }
  return TKV_OK;
}

/* Nonzero if every byte of the file is zero (a segment created, extended,
** but never written: no committed data can be in it). */
static int file_is_zero(tkv_segment *s){
  uint8_t buf[65536];
  uint64_t off = 0;
  for(;;){
    size_t got = 0;
    if( tkv_io_pread(s->fd, s->path, buf, sizeof buf, off, &got) ) return 0;
    for(size_t i=0; i<got; i++) if( buf[i] ) return 0;
    if( got<sizeof buf ) return 1;
    off += got;
  }
}

/* Open segment file `name` (id) and add it to the table.  A last segment
** whose header never got written (a crash right after its creation) is
** removed instead. */
static int open_segment(tkv_engine *e, uint32_t id, int newest, int nowrite){
  char path[4096];
  uint8_t hdr[TKV_SEG_DATA];
  tkv_file_hdr h;
  tkv_segment *s;
  const char *why = NULL;
  uint64_t size = 0;
  size_t got = 0;
  int rc = seg_name(path, sizeof path, e->dir, id, TKV_SUFFIX_SEG);
  if( rc ) return rc;
  s = tkv_mem_calloc(1, sizeof *s);
  if( !s ) return tkv_err_nomem();
  s->fd = -1;
  s->path = tkv_mem_dup(path, strlen(path));
  rc = s->path ? TKV_OK : tkv_err_nomem();
  if( !rc && id>TKV_SEG_ID_MAX ){
    rc = tkv_err(TKV_CORRUPT, "bad segment %s: id %u is out of range (1 to "
                 "%u)", path, id, TKV_SEG_ID_MAX);
  }
  if( !rc ) rc = tkv_io_open_regular(path, O_RDWR, &s->fd);
  if( !rc ) rc = tkv_io_size(s->fd, path, &size);
  if( !rc && size>TKV_SEG_SIZE_LIMIT ){
    rc = tkv_err(TKV_CORRUPT, "bad segment %s at offset %llu: larger than "
                 "any segment (4 GiB)", path,
                 (unsigned long long)TKV_SEG_SIZE_LIMIT);
  }
  if( !rc ) rc = tkv_io_pread(s->fd, path, hdr, sizeof hdr, 0, &got);
  if( rc ){ seg_free(s); return rc; }
  if( got<TKV_FILE_HDR || tkv_file_hdr_decode(hdr, TKV_MAGIC_SEG, &h, &why) ){
    static const uint8_t zero[TKV_FILE_HDR];
    if( newest && (got<TKV_FILE_HDR
                   || (!memcmp(hdr, zero, TKV_FILE_HDR) && file_is_zero(s))) ){
      seg_free(s);
      return nowrite ? TKV_OK : tkv_io_unlink(path);
    }
    rc = tkv_err(TKV_CORRUPT, "bad segment header in %s at offset 0: %s",
                 path, why ? why : "file too short");
    seg_free(s);
    return rc;
  }
  if( h.file_id!=id || h.base>id ){
    seg_free(s);
    return tkv_err(TKV_CORRUPT, "bad segment header in %s at offset 0: "
                   "id does not match the file name", path);
  }
  s->id = id;
  s->base = h.base;
  s->flags = h.flags;
  s->version = h.version;
  s->start = tkv_seg_data_start(h.version);
  if( h.version>=2 ){
    uint32_t d;
    if( got<TKV_SEG_DATA ) memset(hdr + got, 0, TKV_SEG_DATA - got);
    tkv_sync_area_decode(hdr + TKV_FILE_HDR, &d, &s->sync_seq);
    s->durable = d;
  }
  s->end = s->alloc = s->written_hi = size;
  /* Closed until it is loaded: a store may have more segments than the
  ** process may have descriptors. */
  tkv_io_close(s->fd);
  s->fd = -1;
  s->parked = 1;
  rc = seg_table_add(e, s);
  if( rc ) seg_free(s);
  return rc;
}

static int cmp_u32(const void *a, const void *b){
  uint32_t x = *(const uint32_t*)a, y = *(const uint32_t*)b;
  return x<y ? -1 : x>y;
}

/*
** Whether segment file `id` of e->dir is a merge's output (a whole one:
** an output is written under a temporary name and renamed when complete),
** judged by its header: *pis.  A header that is short or bad is not; a
** file that cannot be opened or read is an error (TKV_IO).
*/
static int output_flag(tkv_engine *e, uint32_t id, int *pis){
  char path[4096];
  uint8_t hdr[TKV_FILE_HDR];
  tkv_file_hdr h;
  const char *why = NULL;
  size_t got = 0;
  int fd, rc;
  *pis = 0;
  rc = seg_name(path, sizeof path, e->dir, id, TKV_SUFFIX_SEG);
  if( !rc ) rc = tkv_io_open_regular(path, O_RDONLY, &fd);
  if( rc ) return rc;
  rc = tkv_io_pread(fd, path, hdr, sizeof hdr, 0, &got);
  if( !rc && got==sizeof hdr
   && tkv_file_hdr_decode(hdr, TKV_MAGIC_SEG, &h, &why)==0
   && h.file_id==id && (h.flags & TKV_SEG_COMPACTED) ){
    *pis = 1;
  }
  tkv_io_close(fd);
  return rc;
}

/* Nonzero if segment file `id` of e->dir is a whole merge output; anything
** unreadable is not. */
int recover_is_output(tkv_engine *e, uint32_t id){
  int is;
  return output_flag(e, id, &is)==TKV_OK && is;
}

/* List segment ids and remove tinkv's own temporary files (only names
** tinkv writes: a foreign *.tmp file is left alone). */
static int list_dir(tkv_engine *e, int nowrite, uint32_t **pids, int *pn){
  DIR *d = opendir(e->dir);
  struct dirent *de;
  uint32_t *ids = NULL, id;
  int n = 0, cap = 0, rc = TKV_OK;
  if( !d ) return tkv_err_sys(errno, "cannot list", e->dir);
  while( (de = readdir(d))!=NULL ){
    if( tkv_fmt_is_own_tmp(de->d_name) ){
      char path[4096];
      if( nowrite ) continue;
      snprintf(path, sizeof path, "%s/%s", e->dir, de->d_name);
      rc = tkv_io_unlink(path);
      if( rc ) break;
      continue;
    }
    if( tkv_fmt_parse_name(de->d_name, TKV_SUFFIX_SEG, &id) ) continue;
    if( n==cap ){
      uint32_t *p;
      cap = cap ? cap*2 : 64;
      p = tkv_mem_realloc(ids, cap * sizeof *ids);
      if( !p ){ rc = tkv_err_nomem(); break; }
      ids = p;
    }
    ids[n++] = id;
  }
  closedir(d);
  if( rc ){ tkv_mem_free(ids); return rc; }
  if( n ) qsort(ids, n, sizeof *ids, cmp_u32);
  *pids = ids;
  *pn = n;
  return TKV_OK;
}

/* Remove hint files whose segment is gone (a compaction removes the
** segment first). */
static void remove_orphan_hints(tkv_engine *e){
  DIR *d = opendir(e->dir);
  struct dirent *de;
  uint32_t id;
  if( !d ) return;
  while( (de = readdir(d))!=NULL ){
    char path[4096];
    if( tkv_fmt_parse_name(de->d_name, TKV_SUFFIX_HINT, &id) || seg_find(e, id) ) continue;
    snprintf(path, sizeof path, "%s/%s", e->dir, de->d_name);
    tkv_io_unlink(path);
  }
  closedir(d);
}

/* Load one segment into the keydir (through b, load_batch above); make it
** the active one when it is the last, written by appends and not yet full.
** With `upto` (not UINT64_MAX), the segment counts up to there: another
** process's published committed end, durable or not, with its writer maybe
** still appending after it. */
static int load_segment(tkv_engine *e, tkv_segment *s, int last, int nowrite,
                        uint64_t upto, load_batch *b){
  uint64_t size = s->end;
  int loaded = 0, reuse, rc;
  b->rp.e = e;
  b->rp.file = s->id;
  b->rp.seg = NULL;
  /* A merge output is never appended to, even as the newest segment; and
  ** sealed, seg_pin maps it, so that hint_load checks its records' headers
  ** and keys through the map, not with a pread each (a merged store of 1M
  ** keys, its newest segment an output, opened in 0.85 s instead of 0.3). */
  if( !last || (s->flags & TKV_SEG_COMPACTED) ) s->sealed = 1;
  if( upto<size ) size = upto;
  rc = seg_pin(s);          /* maps a sealed one: hint_load reads through it */
  if( rc ) return rc;
  rc = hint_load(e, s, size, batch_add, b, &loaded);
  if( !rc && !loaded ){
    /* A hint that failed its checks midway left nothing in the batch:
    ** hint_load reports entries only once the whole hint checks out. */
    rc = scan_segment(s, size, last && upto==UINT64_MAX
                                  && !(s->flags & TKV_SEG_COMPACTED), nowrite,
                      b);
    if( !rc && upto!=UINT64_MAX ) s->alloc = s->written_hi;
  }
  if( !rc ) rc = batch_apply(b);
  b->n = b->len = 0;
  if( rc ){
    seg_unpin(s);
    return rc;
  }
  e->total_bytes += s->end > s->start ? s->end - s->start : 0;
  atomic_store(&s->flushed, s->end);
  /* Appends go on in the newest segment only if it is of the format
  ** written now: an older one is sealed (synced first, as every seal is,
  ** since a segment after it will be created), so that new records, with
  ** expiry times, are in a file whose version says they may be there. */
  reuse = last && !loaded && !(s->flags & TKV_SEG_COMPACTED)
       && s->end<e->opts.max_file_size && s->version==TKV_FORMAT_VERSION;
  if( last && !loaded && !reuse ){
    rc = tkv_io_sync(s->fd, s->path);
    if( rc ){
      seg_unpin(s);
      return rc;
    }
  }
  s->sealed = !reuse;
  seg_map(e, s);
  if( reuse ){
    e->active = s;
    e->buf_off = e->commit_end = s->end;
    if( s->durable>s->end ) s->durable = s->end;
    s->synced_end = s->durable;
    s->written_hi = s->end;       /* zeros follow: allocated, never written */
    e->buf_len = 0;
    s->parked = 0;                /* the active segment stays open */
    seg_unpin(s);
    return TKV_OK;
  }
  s->sealed = 1;
  if( !loaded && !nowrite ) hint_write(e, s);
  seg_unpin(s);
  seg_lru_enter(e, s);
  return TKV_OK;
}

/* The segment ids in e->dir, sorted, for recover_store (which takes
** them); with RECOVER_NOWRITE no temporary file is removed. */
int recover_list(tkv_engine *e, int how, uint32_t **pids, int *pn){
  *pids = NULL;
  *pn = 0;
  return list_dir(e, (how & RECOVER_NOWRITE)!=0, pids, pn);
}

/*
** A process that opens while others have the store open lists the
** directory (recover_list) before it reads the published position (upto_id):
** segments of the log that writers made in between are added here from a
** second listing.  Not the merge outputs that appeared since: a merge that
** published them after the position was read may have known a later log;
** they are applied at the next read (share.c).  *pids stays sorted.
*/
int recover_list_more(tkv_engine *e, uint32_t **pids, int *pn,
                      uint32_t upto_id){
  uint32_t *more = NULL, *ids = *pids, *p;
  int n = *pn, m = 0, k = 0, rc;
  rc = list_dir(e, 1, &more, &m);
  if( rc ) return rc;
  for(int i=0; i<m; i++){
    if( more[i]>upto_id
     || (n>0 && bsearch(&more[i], ids, (size_t)n, sizeof *ids, cmp_u32))
     || recover_is_output(e, more[i]) ){
      continue;
    }
    more[k++] = more[i];
  }
  if( k==0 ){
    tkv_mem_free(more);
    return TKV_OK;
  }
  p = tkv_mem_realloc(ids, (size_t)(n + k) * sizeof *ids);
  if( !p ){
    tkv_mem_free(more);
    return tkv_err_nomem();
  }
  memcpy(p + n, more, (size_t)k * sizeof *p);
  n += k;
  qsort(p, (size_t)n, sizeof *p, cmp_u32);
  tkv_mem_free(more);
  *pids = p;
  *pn = n;
  return TKV_OK;
}

/*
** Rebuild the engine's keydir from the files in e->dir (`how`: engine.h),
** listed by recover_list (ids, n: freed here).  The caller holds the
** store's lock and no other thread knows the engine yet.
*/
int recover_store(tkv_engine *e, int how, uint32_t *ids, int n,
                  uint32_t upto_id, uint64_t upto_end){
  int rc = TKV_OK, i, last_log, nowrite = (how & RECOVER_NOWRITE)!=0;
  load_batch b;
  memset(&b, 0, sizeof b);
  if( !rc && (how & RECOVER_UPTO) ){
    /* Past the published segment: a writer's segment not published yet
    ** (or left by one that died), which does not count, or the output of a
    ** merge that ran while one process had the store alone, which does
    ** (its inputs are gone; it takes the next id, above the segment that
    ** process went on appending to). */
    int k = 0;
    for(i=0; i<n; i++){
      if( ids[i]<=upto_id || recover_is_output(e, ids[i]) ) ids[k++] = ids[i];
    }
    n = k;
  }
  /* The newest segment of the log: merge outputs may have higher ids (a
  ** merge beside a writer takes ids from the same counter), so it is the
  ** highest id that is not an output. */
  for(last_log = n - 1; !rc && !(how & RECOVER_UPTO) && last_log>0;
      last_log--){
    int is;
    rc = output_flag(e, ids[last_log], &is);
    if( !is ) break;
  }
  for(i=0; !rc && i<n; i++){
    int newest = (how & RECOVER_UPTO) ? ids[i]==upto_id : i==last_log;
    rc = open_segment(e, ids[i], newest, nowrite);
  }
  tkv_mem_free(ids);
  for(i=0; !rc && i<e->nseg; i++){
    tkv_segment *s = e->segs[i];
    uint64_t upto = (how & RECOVER_UPTO) && s->id==upto_id ? upto_end
                                                           : UINT64_MAX;
    rc = load_segment(e, s, i==e->nseg-1, nowrite, upto, &b);
  }
  batch_free(&b);
  if( !rc && !nowrite ) remove_orphan_hints(e);
  return rc;
}

/*
** FOLLOWING IN WINDOWS.  Another process's records arrive in the order it
** wrote them, random in key order, and each apply_record walks the index
** through nodes and to an entry that are cache misses in a big keydir.
** Unlike an open (LOADING IN KEY ORDER), following applies them in file
** order (ids of new keys are handed out in commit order, and a read
** transaction's notes follow the log), so the records are only gathered
** FOLLOW_WINDOW at a time, their keys looked up together once
** (kd_index_find_many, whose misses overlap) to bring the paths into the
** cache, and then applied one by one as before, each finding its entry
** again, now at cache speed.  A key over FOLLOW_KEY_MAX bytes is applied
** at once, after the window.
*/
#define FOLLOW_WINDOW  32
#define FOLLOW_KEY_MAX 256

typedef struct follow_win {
  replay rp;
  int n;
  struct {
    int type;
    uint32_t klen, off, vlen;
    uint64_t expire;
  } r[FOLLOW_WINDOW];
  uint8_t keys[FOLLOW_WINDOW][FOLLOW_KEY_MAX];
} follow_win;

/* Apply the gathered records, in order, after one batched lookup. */
static int follow_flush(follow_win *w){
  const void *keys[FOLLOW_WINDOW] = {0};   /* (gcc cannot see i<n) */
  size_t klens[FOLLOW_WINDOW] = {0};
  kd_entry *found[FOLLOW_WINDOW];
  int rc = TKV_OK, n = w->n;
  if( n==0 ) return TKV_OK;
  w->n = 0;
  for(int i=0; i<n; i++){
    keys[i] = w->keys[i];
    klens[i] = w->r[i].klen;
  }
  kd_index_find_many(w->rp.e->index, (size_t)n, keys, klens, found);
  for(int i=0; i<n && !rc; i++){
    rc = apply_record(&w->rp, w->r[i].type, w->keys[i], w->r[i].klen,
                      w->r[i].off, w->r[i].vlen, NULL, w->r[i].expire);
  }
  return rc;
}

/* seg_scan_fn of following: into the window. */
static int follow_record(void *ctx, int type, const uint8_t *key,
                         uint32_t klen, uint32_t off, uint32_t vlen,
                         const uint8_t *val, uint64_t expire){
  follow_win *w = ctx;
  int rc;
  if( klen>FOLLOW_KEY_MAX ){
    rc = follow_flush(w);
    return rc ? rc : apply_record(&w->rp, type, key, klen, off, vlen, val,
                                  expire);
  }
  w->r[w->n].type = type;
  w->r[w->n].klen = klen;
  w->r[w->n].off = off;
  w->r[w->n].vlen = vlen;
  w->r[w->n].expire = expire;
  if( klen ) memcpy(w->keys[w->n], key, klen);
  return ++w->n==FOLLOW_WINDOW ? follow_flush(w) : TKV_OK;
}

/*
** Read records of s from its end up to `to` (a published end, or the end
** of a segment another process sealed) into the keydir.  Every record
** there is committed; anything else is corruption.  Caller holds mu and
** rw exclusively.
*/
static int follow_segment(tkv_engine *e, tkv_segment *s, uint64_t to,
                          int exact){
  seg_scan_result r;
  follow_win *w;
  int rc, rc2;
  if( to<=s->end ) return TKV_OK;
  w = tkv_mem_alloc(sizeof *w);
  if( !w ) return tkv_err_nomem();
  w->rp.e = e;
  w->rp.file = s->id;
  w->rp.seg = NULL;
  w->n = 0;
  rc = seg_scan_from(s, s->end, to, follow_record, w, &r);
  rc2 = follow_flush(w);          /* what was read before any stop */
  tkv_mem_free(w);
  if( rc || rc2 ) return rc ? rc : rc2;
  if( r.why==SCAN_BAD || r.why==SCAN_SHORT || (exact && r.committed_end<to) ){
    return seg_corrupt(s, r.stop<to ? r.stop : r.committed_end,
                       r.stop<to ? stop_reason(&r)
                                 : "transaction without its commit record");
  }
  e->total_bytes += r.committed_end - s->end;
  s->end = r.committed_end;
  if( s->alloc<s->end ) s->alloc = s->end;
  if( s->written_hi<s->end ) s->written_hi = s->end;
  atomic_store(&s->flushed, s->end);
  return TKV_OK;
}

/*
** Catch the keydir up with another process's commits: the segment this
** keydir is current to (from, the id of the position it last followed or
** published; 0 for none) up to where it ends now, then each newer segment,
** the last one (id) up to `end`.  A segment that another process sealed is
** sealed here too; the published one becomes the active one while it has
** room.  Newer segments the table holds already are merge outputs loaded
** at open (recover_store): nothing to read.  Caller holds mu; no
** transaction of this process has written.
*/
int recover_follow(tkv_engine *e, uint32_t from, uint32_t id, uint64_t end){
  tkv_segment *s;
  uint32_t k;
  int rc = TKV_OK;
  ASSERT_MU(e);
  assert( e->buf_len==0 );
  engine_wrlock(e);
  s = from ? seg_find(e, from) : NULL;
  if( s ){
    if( s->id==id ){
      rc = follow_segment(e, s, end, 1);
    }else{
      uint64_t size = 0;
      rc = seg_pin(s);
      if( !rc ){
        rc = tkv_io_size(s->fd, s->path, &size);
        if( !rc ) rc = follow_segment(e, s, size, 0);
        seg_unpin(s);
      }
      if( !rc && !s->sealed ){
        s->sealed = 1;
        if( e->active==s ) e->active = NULL;
        seg_lru_enter(e, s);
      }
    }
  }
  /* From the segment after `from` (which a merge of this process may
  ** have removed since: then nothing of it is left to read). */
  for(k = from + 1; !rc && k<=id; k++){
    char path[4096];
    tkv_segment *n;
    int is = 0;
    if( seg_find(e, k) ) continue;
    rc = seg_name(path, sizeof path, e->dir, k, TKV_SUFFIX_SEG);
    if( rc || access(path, F_OK) ) continue;    /* ids may be skipped */
    /* A merge output among the log's ids: applied as such (by
    ** recover_apply_outputs), never read as if it were log.  One may be
    ** deleted right now (a merge took it, this process's among them):
    ** segments of the log past this keydir's position never are. */
    if( k!=id ){
      rc = output_flag(e, k, &is);
      if( rc && access(path, F_OK) && errno==ENOENT ){
        rc = TKV_OK;
        continue;
      }
      if( rc ) break;
      if( is ) continue;
    }
    rc = open_segment(e, k, 0, 1);
    n = rc ? NULL : seg_find(e, k);
    if( !n ) continue;
    rc = seg_pin(n);
    if( rc ) break;
    n->alloc = n->end;
    n->end = n->written_hi = n->start;
    atomic_store(&n->flushed, n->start);
    rc = follow_segment(e, n, k==id ? end : n->alloc, k==id);
    if( !rc && k==id && !(n->flags & TKV_SEG_COMPACTED)
     && n->end<e->opts.max_file_size ){
      n->parked = 0;          /* the active segment stays open */
      seg_map(e, n);
      e->active = n;
      n->synced_end = n->durable<n->end ? n->durable : n->end;
    }else if( !rc ){
      n->sealed = 1;
      seg_map(e, n);
      seg_lru_enter(e, n);
    }
    seg_unpin(n);
  }
  if( !rc && e->active && e->active->id==id ){
    e->buf_off = e->commit_end = e->active->end;
  }
  seg_map_grow(e);      /* another process's big transaction */
  atomic_fetch_add(&e->version, 1);
  engine_wrunlock(e);
  return rc;
}

/*
** The merge outputs in e->dir that the table does not hold: another
** process's merges since this one last looked (sorted ids in *pids, to
** free; *pn of them).  Not those this process's own merges retired (their
** content is in later outputs; applied again they would point entries back
** at older copies).  Caller holds mu.
*/
int recover_list_outputs(tkv_engine *e, uint32_t **pids, int *pn){
  uint32_t *ids = NULL;
  int n = 0, k = 0, rc;
  ASSERT_MU(e);
  *pids = NULL;
  *pn = 0;
  rc = list_dir(e, 1, &ids, &n);
  if( rc ) return rc;
  /* Retired outputs whose file is gone need not be remembered. */
  for(int r=0, x=0; r<e->nretired; r++){
    if( n>0
     && bsearch(&e->retired[r], ids, (size_t)n, sizeof *ids, cmp_u32) ){
      e->retired[x++] = e->retired[r];
    }
    if( r==e->nretired-1 ) e->nretired = x;
  }
  for(int i=0; i<n; i++){
    int was = 0;
    for(int r=0; r<e->nretired && !was; r++) was = e->retired[r]==ids[i];
    if( !was && !seg_find(e, ids[i]) && recover_is_output(e, ids[i]) ){
      ids[k++] = ids[i];
    }
  }
  *pids = ids;
  *pn = k;
  return TKV_OK;
}

/*
** One record of an output another process's merge wrote: a put takes the
** place of the entry's location if that lies in a segment before the
** output in replay order.  Why that is right: the merge copied a key's
** record only if its own keydir pointed at it, and this keydir is at least
** as current as the merger's was (recover_apply_outputs); so if this
** keydir's record of the key is older than the output, it is the record
** the merger copied (the merger read every input whole, and knew every
** older segment), and the copy holds the same value.  A record in a later
** segment is newer than the copy and stays.  A key this keydir does not
** hold was deleted since.  Tombstones change nothing here.  Caller holds
** mu and rw exclusively.
*/
static int apply_output(void *ctx, int type, const uint8_t *key,
                        uint32_t klen, uint32_t off, uint32_t vlen,
                        const uint8_t *val, uint64_t expire){
  replay *rp = ctx;
  tkv_engine *e = rp->e;
  tkv_segment *out = rp->seg, *old;
  kd_entry *en;
  tkv_loc was, loc;
  uint64_t size = tkv_rec_size(klen, vlen), before;
  (void)val;
  (void)expire;
  if( type==TKV_REC_DEL ){
    out->tomb_bytes += size;
    return TKV_OK;
  }
  en = kd_index_find(e->index, key, klen);
  if( !en || (kd_entry_flags(en) & ENTRY_NEW) ) return TKV_OK;
  was = kd_entry_loc(en);
  old = seg_find(e, was.file);
  if( !old || old==out ) return TKV_OK;
  if( old->base>out->base || (old->base==out->base && old->id>out->id) ){
    return TKV_OK;
  }
  before = entry_rec_size(en, was);
  loc.file = out->id;
  loc.off = off;
  loc.vlen = vlen;
  seg_account(e, was, -(int64_t)before);
  kd_entry_set_loc(en, loc);
  seg_account(e, loc, (int64_t)size);
  e->live_bytes += size - before;
  return TKV_OK;
}

/*
** Apply other processes' merge outputs ids[0..n) (recover_list_outputs,
** listed before the log was read up to its published end): each joins the
** table and takes over the entries whose records it holds copies of.  An
** output listed here is not deleted before this process acknowledges the
** generation after it (share.c), but one may be missing after all if it
** never was complete; it is skipped.  Caller holds mu.
*/
int recover_apply_outputs(tkv_engine *e, const uint32_t *ids, int n){
  int rc = TKV_OK;
  ASSERT_MU(e);
  if( n==0 ) return TKV_OK;
  engine_wrlock(e);
  for(int i=0; !rc && i<n; i++){
    char path[4096];
    tkv_segment *s;
    seg_scan_result r;
    replay rp;
    int loaded = 0;
    if( seg_find(e, ids[i]) ) continue;
    rc = seg_name(path, sizeof path, e->dir, ids[i], TKV_SUFFIX_SEG);
    if( rc || access(path, F_OK) ) continue;
    rc = open_segment(e, ids[i], 0, 1);
    s = rc ? NULL : seg_find(e, ids[i]);
    if( !s ) continue;
    rc = seg_pin(s);
    if( rc ) break;
    s->sealed = 1;
    rp.e = e;
    rp.file = s->id;
    rp.seg = s;
    rc = hint_load(e, s, s->end, apply_output, &rp, &loaded);
    if( !rc && !loaded ){
      rc = seg_scan(s, s->end, apply_output, &rp, &r);
      if( !rc && (r.why==SCAN_BAD || r.why==SCAN_SHORT) ){
        rc = seg_corrupt(s, r.stop, stop_reason(&r));
      }
      if( !rc ) s->end = r.stop;
    }
    if( !rc ){
      e->total_bytes += s->end > s->start ? s->end - s->start : 0;
      atomic_store(&s->flushed, s->end);
      seg_map(e, s);
    }
    seg_unpin(s);
    if( !rc ) seg_lru_enter(e, s);
  }
  e->generation++;
  atomic_fetch_add(&e->version, 1);
  engine_wrunlock(e);
  return rc;
}

/*
** Take out of the table the sealed segments another process's merge
** deleted: nothing of this keydir points into them (they hold no live
** record) and their file is gone.  Caller holds mu.
*/
void recover_drop_gone(tkv_engine *e){
  tkv_segment **gone = NULL;
  int n = 0;
  ASSERT_MU(e);
  for(int i=0; i<e->nseg; i++){
    tkv_segment *s = e->segs[i];
    if( s==e->active || !s->sealed || s->live_bytes || !access(s->path, F_OK)
     || errno!=ENOENT ){
      continue;
    }
    if( !gone ){
      gone = tkv_mem_alloc((size_t)e->nseg * sizeof *gone);
      if( !gone ) return;           /* they stay: harmless */
    }
    gone[n++] = s;
  }
  if( n==0 ) return;
  engine_wrlock(e);
  for(int i=0; i<n; i++){
    seg_table_remove(e, gone[i]);
    e->total_bytes -= gone[i]->end - gone[i]->start;
  }
  e->generation++;
  engine_wrunlock(e);
  for(int i=0; i<n; i++) seg_free(gone[i]);
  tkv_mem_free(gone);
}

/*
** The segment file of e->dir that comes first in replay order among those
** the table does not hold (a merge's inputs not deleted yet, by this or
** another process): *pbase and *pid, and 1; 0 if there is none.  A merge
** may drop a tombstone only if no segment before it on disk survives, so
** it must know of these too.  Unreadable ones count as the oldest.
** Caller holds mu.
*/
int recover_oldest_extra(tkv_engine *e, uint32_t *pbase, uint32_t *pid){
  uint32_t *ids = NULL;
  int n = 0, found = 0;
  ASSERT_MU(e);
  if( list_dir(e, 1, &ids, &n) ){
    *pbase = *pid = 0;
    return 1;
  }
  for(int i=0; i<n; i++){
    char path[4096];
    uint8_t hdr[TKV_FILE_HDR];
    tkv_file_hdr h;
    const char *why = NULL;
    size_t got = 0;
    uint32_t base = 0;
    int fd;
    if( seg_find(e, ids[i]) ) continue;
    if( !seg_name(path, sizeof path, e->dir, ids[i], TKV_SUFFIX_SEG)
     && !tkv_io_open_regular(path, O_RDONLY, &fd) ){
      if( tkv_io_pread(fd, path, hdr, sizeof hdr, 0, &got)==TKV_OK
       && got==sizeof hdr
       && tkv_file_hdr_decode(hdr, TKV_MAGIC_SEG, &h, &why)==0 ){
        base = h.base;
      }
      tkv_io_close(fd);
    }else if( access(path, F_OK) && errno==ENOENT ){
      continue;                       /* deleted since the listing */
    }
    if( !found || base<*pbase || (base==*pbase && ids[i]<*pid) ){
      *pbase = base;
      *pid = ids[i];
      found = 1;
    }
  }
  tkv_mem_free(ids);
  return found;
}
