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
#include "crc32c.h"
#include "err.h"
#include "io.h"
#include "mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Replay state: the engine and the segment being read. */
typedef struct replay {
  tkv_engine *e;
  uint32_t file;
} replay;

/* Apply one committed record to the keydir. */
static int apply_record(void *ctx, int type, const uint8_t *key, uint32_t klen,
                        uint32_t off, uint32_t vlen, const uint8_t *val){
  replay *rp = ctx;
  tkv_engine *e = rp->e;
  kd_entry *en = kd_index_find(e->index, key, klen);
  tkv_loc loc;
  (void)val;
  loc.file = rp->file;
  loc.off = off;
  loc.vlen = vlen;
  if( type==TKV_REC_DEL ){        /* for the merge policy's estimate */
    tkv_segment *s = seg_find(e, rp->file);
    if( s ) s->tomb_bytes += tkv_rec_size(klen, vlen);
  }
  if( en ){
    uint64_t old = entry_rec_size(en, kd_entry_loc(en));
    e->live_bytes -= old;
    seg_account(e, kd_entry_loc(en), -(int64_t)old);
    if( type==TKV_REC_DEL ){
      kd_index_remove(e->index, en);
      kd_entry_free(e->arena, en);
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
    e->keys++;
  }
  e->live_bytes += tkv_rec_size(klen, vlen);
  seg_account(e, loc, (int64_t)tkv_rec_size(klen, vlen));
  return TKV_OK;
}

/* Read a whole small file into a new buffer. */
static int read_file(const char *path, uint8_t **pbuf, uint64_t *psize){
  int fd, rc;
  uint64_t size;
  uint8_t *buf;
  rc = tkv_io_open(path, O_RDONLY, 0, &fd);
  if( rc ) return rc;
  rc = tkv_io_size(fd, path, &size);
  if( !rc && size>SIZE_MAX/2 ) rc = tkv_err(TKV_CORRUPT, "%s: too large", path);
  buf = rc ? NULL : tkv_mem_alloc((size_t)size + 1);
  if( !rc && !buf ) rc = tkv_err_nomem();
  if( !rc ) rc = tkv_io_pread(fd, path, buf, (size_t)size, 0, NULL);
  tkv_io_close(fd);
  if( rc ){ tkv_mem_free(buf); return rc; }
  *pbuf = buf;
  *psize = size;
  return TKV_OK;
}

/*
** Check a hint file whole against segment s (of `segsize` bytes).  0 if it
** can be trusted, -1 if not.
*/
static int hint_check(const uint8_t *p, uint64_t n, const tkv_segment *s,
                      uint64_t segsize){
  tkv_file_hdr h;
  const char *why;
  uint64_t pos = TKV_FILE_HDR, count = 0, end;
  if( n < TKV_FILE_HDR + TKV_HINT_TRAILER ) return -1;
  if( tkv_file_hdr_decode(p, TKV_MAGIC_HINT, &h, &why) ) return -1;
  if( h.file_id!=s->id ) return -1;
  end = n - TKV_HINT_TRAILER;
  if( tkv_get32(p + n - 4)!=tkv_crc32c(0, p, (size_t)n - 4) ) return -1;
  if( tkv_get32(p + end + 8)!=segsize ) return -1;
  while( pos<end ){
    int type;
    uint32_t klen, off, vlen;
    if( end - pos < TKV_HINT_ENTRY_HDR ) return -1;
    tkv_hint_entry_decode(p + pos, &type, &klen, &off, &vlen);
    if( (type!=TKV_REC_PUT && type!=TKV_REC_DEL) || klen>TKV_KEY_MAX ) return -1;
    if( off<TKV_FILE_HDR || off + tkv_rec_size(klen, vlen) > segsize ) return -1;
    pos += TKV_HINT_ENTRY_HDR + (uint64_t)klen;
    if( pos>end ) return -1;
    count++;
  }
  return count==tkv_get64(p + end) ? 0 : -1;
}

/* Load segment s from its hint file.  *ploaded = 0 when there is no hint
** that can be trusted (the caller then scans the segment). */
static int load_hint(tkv_engine *e, tkv_segment *s, uint64_t segsize,
                     int *ploaded){
  char path[4096];
  uint8_t *p = NULL;
  uint64_t n, pos = TKV_FILE_HDR;
  replay rp;
  int rc;
  *ploaded = 0;
  rc = seg_name(path, sizeof path, e->dir, s->id, ".hint");
  if( rc ) return rc;
  if( read_file(path, &p, &n) ) return TKV_OK;   /* absent or unreadable */
  if( hint_check(p, n, s, segsize) ){
    tkv_mem_free(p);
    tkv_io_unlink(path);
    return TKV_OK;
  }
  rp.e = e;
  rp.file = s->id;
  while( pos < n - TKV_HINT_TRAILER ){
    int type;
    uint32_t klen, off, vlen;
    tkv_hint_entry_decode(p + pos, &type, &klen, &off, &vlen);
    rc = apply_record(&rp, type, p + pos + TKV_HINT_ENTRY_HDR, klen, off, vlen,
                      NULL);
    if( rc ) break;
    pos += TKV_HINT_ENTRY_HDR + (uint64_t)klen;
  }
  tkv_mem_free(p);
  if( rc ) return rc;
  s->hint_bytes = n;
  *ploaded = 1;
  return TKV_OK;
}

/*
** Scan segment s.  For the last segment a bad or short record with nothing
** valid after it is a torn tail and is cut off, as is a transaction that
** never committed; anywhere else it is corruption.
*/
static int scan_segment(tkv_engine *e, tkv_segment *s, uint64_t size,
                        int last){
  seg_scan_result r;
  replay rp;
  int rc, found = 0;
  rp.e = e;
  rp.file = s->id;
  rc = seg_scan(s, size, apply_record, &rp, &r);
  if( rc ) return rc;
  if( r.why==SCAN_BAD || r.why==SCAN_SHORT ){
    if( last ) rc = seg_valid_record_after(s, r.stop, size, &found);
    if( rc ) return rc;
    if( !last || found ){
      return tkv_err(TKV_CORRUPT, "corrupt record in %s at offset %llu: %s",
                     s->path, (unsigned long long)r.stop,
                     r.why==SCAN_BAD ? "checksum mismatch"
                                     : "bad header or length");
    }
  }
  s->end = last ? r.committed_end : r.stop;
  s->alloc = size;
  if( last && (r.why!=SCAN_ZERO || r.stop!=r.committed_end) && size>s->end ){
    rc = tkv_io_truncate(s->fd, s->path, s->end);
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
static int open_segment(tkv_engine *e, uint32_t id, int newest){
  char path[4096];
  uint8_t hdr[TKV_FILE_HDR];
  tkv_file_hdr h;
  tkv_segment *s;
  const char *why = NULL;
  uint64_t size = 0;
  size_t got = 0;
  int rc = seg_name(path, sizeof path, e->dir, id, ".seg");
  if( rc ) return rc;
  s = tkv_mem_calloc(1, sizeof *s);
  if( !s ) return tkv_err_nomem();
  s->fd = -1;
  s->path = tkv_mem_dup(path, strlen(path));
  rc = s->path ? TKV_OK : tkv_err_nomem();
  if( !rc ) rc = tkv_io_open(path, O_RDWR, 0, &s->fd);
  if( !rc ) rc = tkv_io_size(s->fd, path, &size);
  if( !rc ) rc = tkv_io_pread(s->fd, path, hdr, sizeof hdr, 0, &got);
  if( rc ){ seg_free(s); return rc; }
  if( got<sizeof hdr || tkv_file_hdr_decode(hdr, TKV_MAGIC_SEG, &h, &why) ){
    static const uint8_t zero[TKV_FILE_HDR];
    if( newest && (got<sizeof hdr
                   || (!memcmp(hdr, zero, sizeof hdr) && file_is_zero(s))) ){
      seg_free(s);
      return tkv_io_unlink(path);
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
  s->end = s->alloc = size;
  rc = seg_table_add(e, s);
  if( rc ) seg_free(s);
  return rc;
}

/* Parse "%010u<suffix>"; 0 if name matches. */
static int parse_name(const char *name, const char *suffix, uint32_t *pid){
  char *end;
  unsigned long v;
  if( strlen(name)!=10 + strlen(suffix) || strcmp(name + 10, suffix) ) return -1;
  for(int i=0; i<10; i++) if( name[i]<'0' || name[i]>'9' ) return -1;
  errno = 0;
  v = strtoul(name, &end, 10);
  if( errno || end!=name+10 || v>0xffffffffUL || v==0 ) return -1;
  *pid = (uint32_t)v;
  return 0;
}

static int cmp_u32(const void *a, const void *b){
  uint32_t x = *(const uint32_t*)a, y = *(const uint32_t*)b;
  return x<y ? -1 : x>y;
}

/* List segment ids, remove temporary files and orphan hints. */
static int list_dir(tkv_engine *e, uint32_t **pids, int *pn){
  DIR *d = opendir(e->dir);
  struct dirent *de;
  uint32_t *ids = NULL, id;
  int n = 0, cap = 0, rc = TKV_OK;
  if( !d ) return tkv_err_sys(errno, "cannot list", e->dir);
  while( (de = readdir(d))!=NULL ){
    size_t len = strlen(de->d_name);
    if( len>4 && !strcmp(de->d_name + len - 4, ".tmp") ){
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", e->dir, de->d_name);
      rc = tkv_io_unlink(path);
      if( rc ) break;
      continue;
    }
    if( parse_name(de->d_name, ".seg", &id) ) continue;
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
    if( parse_name(de->d_name, ".hint", &id) || seg_find(e, id) ) continue;
    snprintf(path, sizeof path, "%s/%s", e->dir, de->d_name);
    tkv_io_unlink(path);
  }
  closedir(d);
}

/* Load one segment into the keydir; make it the active one when it is the
** last, written by appends and not yet full. */
static int load_segment(tkv_engine *e, tkv_segment *s, int last){
  uint64_t size = s->end;
  int loaded = 0, rc;
  rc = load_hint(e, s, size, &loaded);
  if( rc ) return rc;
  if( !loaded ){
    rc = scan_segment(e, s, size, last && !(s->flags & TKV_SEG_COMPACTED));
    if( rc ) return rc;
  }
  e->total_bytes += s->end - TKV_FILE_HDR;
  atomic_store(&s->flushed, s->end);
  s->sealed = !(last && !loaded && !(s->flags & TKV_SEG_COMPACTED)
                && s->end<e->opts.max_file_size);
  seg_map(e, s);
  if( last && !loaded && !(s->flags & TKV_SEG_COMPACTED)
   && s->end<e->opts.max_file_size ){
    e->active = s;
    e->buf_off = s->end;
    e->buf_len = 0;
    return TKV_OK;
  }
  s->sealed = 1;
  if( !loaded ) seg_write_hint(e, s);
  return TKV_OK;
}

/*
** Rebuild the engine's keydir from the files in e->dir.  The caller holds
** the store's lock and no other thread knows the engine yet.
*/
int recover_store(tkv_engine *e){
  uint32_t *ids = NULL;
  int n = 0, rc, i;
  rc = list_dir(e, &ids, &n);
  for(i=0; !rc && i<n; i++) rc = open_segment(e, ids[i], i==n-1);
  tkv_mem_free(ids);
  for(i=0; !rc && i<e->nseg; i++) rc = load_segment(e, e->segs[i], i==e->nseg-1);
  if( !rc ) remove_orphan_hints(e);
  return rc;
}
