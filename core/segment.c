/*
** Segment files: creation, the segment table, the buffered append path of
** the active segment, syncing, rewinding an uncommitted tail, sealing, and
** reading one record.  Byte layouts come from format.c; scanning a whole
** segment is scan.c's job, hint files hint.c's.
**
** The active segment grows into space reserved ahead of the writes
** (fallocate), so that a commit's fdatasync normally has no file size to
** update.  Space past `end` is all zeros; a scan stops at a zero header.
*/
#include "engine.h"
#include "err.h"
#include "io.h"
#include "mem.h"

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#define WRITE_BUF_SIZE  (1u << 20)     /* user-space write buffer */
#define PREALLOC_MIN    (1ull << 20)   /* first reservation step */
#define PREALLOC_MAX    (8ull << 20)   /* largest reservation step */
#define SEG_OFF_LIMIT   0xffffffffull  /* offsets are 32-bit in the keydir */
#define SMALL_READ      4096
#define WRITEBACK_STEP  (4ull << 20)   /* see seg_flush */

void seg_free(tkv_segment *s){
  if( !s ) return;
  assert( s->pins==0 );     /* in_lru only when its whole engine goes */
  tkv_io_unmap((void*)s->map, s->map_len);
  tkv_io_close(s->fd);
  tkv_mem_free(s->path);
  tkv_mem_free(s);
}

/* ------------------------------------------- Descriptors of sealed ones.
**
** A store may have thousands of segments; the process may not have that
** many descriptors (or mappings).  Sealed segments in the table are kept
** in an LRU list; at most SEG_OPEN_MAX of them have their descriptor and
** map open, and whoever uses a segment's fd or map pins it first
** (seg_pin), which reopens it if it was closed.  The active segment and
** a compaction's outputs being written are not in the list and stay open.
** fdmu guards the list, the pins and the opening and closing; it is the
** innermost lock, taken under rw (readers) or mu.
*/

static void lru_unlink(tkv_engine *e, tkv_segment *s){
  if( s->lru_prev ) s->lru_prev->lru_next = s->lru_next;
  else e->lru_head = s->lru_next;
  if( s->lru_next ) s->lru_next->lru_prev = s->lru_prev;
  else e->lru_tail = s->lru_prev;
  s->lru_prev = s->lru_next = NULL;
}

static void lru_push(tkv_engine *e, tkv_segment *s){
  s->lru_prev = NULL;
  s->lru_next = e->lru_head;
  if( e->lru_head ) e->lru_head->lru_prev = s;
  else e->lru_tail = s;
  e->lru_head = s;
}

/* Close s's map and descriptor, syncing first anything not yet synced
** (so a closed segment never needs a sync).  -1 if the sync failed, and
** then s stays open. */
static int seg_close_files(tkv_segment *s){
  if( s->fd<0 ) return 0;
  if( s->unsynced && tkv_io_sync(s->fd, s->path) ) return -1;
  s->unsynced = 0;
  tkv_io_unmap((void*)s->map, s->map_len);
  s->map = NULL;
  s->map_len = 0;
  tkv_io_close(s->fd);
  s->fd = -1;
  return 0;
}

/* Close least recently used, unpinned segments down to the bound.
** Caller holds fdmu. */
static void lru_trim(tkv_engine *e){
  tkv_segment *s = e->lru_tail;
  while( s && e->nopen>SEG_OPEN_MAX ){
    tkv_segment *prev = s->lru_prev;
    if( s->fd>=0 && s->pins==0 && seg_close_files(s)==0 ) e->nopen--;
    s = prev;
  }
}

/*
** Make s's descriptor (and, for a sealed segment, its map) usable until
** seg_unpin: reopen them if they were closed.  The file is reopened by
** its name, with the checks of every store file (regular, no link).
*/
int seg_pin(tkv_segment *s){
  tkv_engine *e = s->owner;
  int rc = TKV_OK;
  if( !e ) return s->fd>=0 ? TKV_OK : tkv_err(TKV_MISUSE, "segment closed");
  pthread_mutex_lock(&e->fdmu);
  if( s->fd<0 ){
    rc = tkv_io_open_regular(s->path, O_RDWR, &s->fd);
    if( !rc && s->sealed ) seg_map(e, s);
    if( !rc && s->in_lru ) e->nopen++;
  }
  if( !rc ){
    s->pins++;
    if( s->in_lru && e->lru_head!=s ){
      lru_unlink(e, s);
      lru_push(e, s);
    }
    if( s->in_lru ) lru_trim(e);
  }
  pthread_mutex_unlock(&e->fdmu);
  return rc;
}

void seg_unpin(tkv_segment *s){
  tkv_engine *e = s->owner;
  if( !e ) return;
  pthread_mutex_lock(&e->fdmu);
  assert( s->pins>0 );
  s->pins--;
  if( s->in_lru ) lru_trim(e);
  /* Parked (not in the table yet): nobody keeps it open. */
  else if( s->pins==0 && s->parked ) (void)seg_close_files(s);
  pthread_mutex_unlock(&e->fdmu);
}

/* A sealed segment joins the LRU list (idempotent). */
void seg_lru_enter(tkv_engine *e, tkv_segment *s){
  pthread_mutex_lock(&e->fdmu);
  if( !s->in_lru && s->sealed && s!=e->active ){
    s->in_lru = 1;
    s->parked = 0;
    lru_push(e, s);
    if( s->fd>=0 ) e->nopen++;
    lru_trim(e);
  }
  pthread_mutex_unlock(&e->fdmu);
}

/* Leave the LRU list (the segment leaves the table). */
static void seg_lru_leave(tkv_engine *e, tkv_segment *s){
  pthread_mutex_lock(&e->fdmu);
  if( s->in_lru ){
    lru_unlink(e, s);
    s->in_lru = 0;
    if( s->fd>=0 ) e->nopen--;
  }
  pthread_mutex_unlock(&e->fdmu);
}

/* Close a segment not (yet) in the table whose descriptor is not needed
** now, such as a finished compaction output: seg_pin reopens it. */
void seg_park(tkv_engine *e, tkv_segment *s){
  pthread_mutex_lock(&e->fdmu);
  if( !s->in_lru ){
    s->parked = 1;
    if( s->pins==0 ) (void)seg_close_files(s);
  }
  pthread_mutex_unlock(&e->fdmu);
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
** The active segment outgrew its map: one transaction may run past
** max_file_size, since a segment rotates only between transactions, and
** a bulk load of a million rows is one segment of some 130 MB.  Map it
** again whole, so that reads of those records are a copy from the page
** cache rather than a pread each (a full scan through SQL of a store
** loaded so ran three times as fast).  If the new map cannot be had the old one stays, and records
** past it are read with pread as before.  Caller holds mu and rw
** exclusively, so no reader is inside the old map; only seg_read reads the
** map of the active segment (merges and hint writing read sealed ones).
*/
void seg_map_grow(tkv_engine *e){
  tkv_segment *s = e->active;
  uint64_t len;
  const uint8_t *p;
  ASSERT_MU(e);
  ASSERT_TABLE_LOCKED(e);
  if( !s || s->end<=s->map_len || s->map_len>=SEG_OFF_LIMIT ) return;
  len = s->end<SEG_OFF_LIMIT ? s->end : SEG_OFF_LIMIT;
  p = tkv_io_map(s->fd, s->path, (size_t)len);
  if( !p ) return;
  tkv_io_unmap((void*)s->map, s->map_len);
  s->map = p;
  s->map_len = (size_t)len;
}

/*
** Create a new segment file (name: id + suffix) holding just its header
** and an empty sync area.  The caller syncs the directory when the file's
** existence must last.  Ids past TKV_SEG_ID_MAX are refused, so that the
** id after the highest can never wrap around to an older one.
*/
int seg_create(tkv_engine *e, uint32_t id, uint32_t base, uint32_t flags,
               const char *suffix, tkv_segment **pseg){
  char path[4096];
  uint8_t hdr[TKV_SEG_DATA];
  tkv_file_hdr h;
  tkv_segment *s;
  int rc;
  if( id==0 || id>TKV_SEG_ID_MAX ){
    return tkv_err(TKV_TOOBIG, "no segment id left in %s (ids run to %u): "
                   "the store cannot grow", e->dir, TKV_SEG_ID_MAX);
  }
  rc = seg_name(path, sizeof path, e->dir, id, suffix);
  if( rc ) return rc;
  s = tkv_mem_calloc(1, sizeof *s);
  if( !s ) return tkv_err_nomem();
  s->fd = -1;
  s->path = tkv_mem_dup(path, strlen(path));
  if( !s->path ){ seg_free(s); return tkv_err_nomem(); }
  rc = tkv_io_open(path, O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW, 0644, &s->fd);
  if( rc ){ seg_free(s); return rc; }
  memset(hdr, 0, sizeof hdr);
  tkv_file_hdr_init(&h, TKV_MAGIC_SEG, id, base, flags);
  tkv_file_hdr_encode(&h, hdr);
  rc = tkv_io_pwrite(s->fd, path, hdr, sizeof hdr, 0);
  if( rc ){
    seg_free(s);
    tkv_io_unlink(path);
    return rc;
  }
  s->id = id;
  s->owner = e;
  s->base = base;
  s->flags = flags;
  s->version = TKV_FORMAT_VERSION;
  s->start = TKV_SEG_DATA;
  s->end = s->alloc = s->written_hi = s->durable = TKV_SEG_DATA;
  s->unsynced = 1;
  atomic_store(&s->flushed, TKV_SEG_DATA);
  *pseg = s;
  return TKV_OK;
}

/*
** The id of a new segment (of the log, or a merge output): unique among
** every process on the store, since all take the next value of the shared
** counter (engine.id_top), which never goes back.  Caller holds mu.
*/
uint32_t seg_new_id(tkv_engine *e){
  uint32_t cur, want;
  ASSERT_MU(e);
  if( !e->id_top ) return e->next_id++;
  cur = atomic_load(e->id_top);
  do{
    want = (cur>=e->next_id ? cur : e->next_id - 1) + 1;
  }while( !atomic_compare_exchange_weak(e->id_top, &cur, want) );
  e->next_id = want + 1;
  return want;
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
  s->owner = e;
  seg_lru_enter(e, s);
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
  seg_lru_leave(e, s);
}

/* The segment with this file id, or NULL.  Caller holds mu or rw. */
tkv_segment *seg_find(tkv_engine *e, uint32_t id){
  int i;
  ASSERT_READER(e);
  /* The active segment is the usual answer; then a linear walk (stores
  ** have tens of segments, and the table is in replay order, not id order). */
  if( e->active && e->active->id==id ) return e->active;
  for(i=e->nseg-1; i>=0; i--){
    if( e->segs[i]->id==id ) return e->segs[i];
  }
  return NULL;
}

/*
** The limbo: segments that left the table but whose files stay (a merge's
** inputs waiting for deletion).  Nothing in the keydir points into them,
** but a read transaction's before-images may (readtxn.h), and seg_read
** finds them here.  Changed holding mu and rw exclusively; room is
** reserved first so that adding never fails.
*/
int seg_limbo_reserve(tkv_engine *e, int n){
  tkv_segment **p;
  int cap;
  ASSERT_MU(e);
  if( e->nlimbo + n<=e->limbo_cap ) return TKV_OK;
  cap = (e->nlimbo + n) * 2;
  engine_wrlock(e);     /* readers walk the array */
  p = tkv_mem_realloc(e->limbo, (size_t)cap * sizeof *p);
  if( p ){
    e->limbo = p;
    e->limbo_cap = cap;
  }
  engine_wrunlock(e);
  return p ? TKV_OK : tkv_err_nomem();
}

void seg_limbo_add(tkv_engine *e, tkv_segment *s){
  ASSERT_TABLE_LOCKED(e);
  assert( e->nlimbo<e->limbo_cap );
  e->limbo[e->nlimbo++] = s;
}

void seg_limbo_remove(tkv_engine *e, tkv_segment *s){
  ASSERT_TABLE_LOCKED(e);
  for(int i=0; i<e->nlimbo; i++){
    if( e->limbo[i]==s ){
      e->limbo[i] = e->limbo[--e->nlimbo];
      return;
    }
  }
}

/* seg_find, then the limbo: where a record that a read may point at is.
** Caller holds mu or rw. */
static tkv_segment *seg_find_any(tkv_engine *e, uint32_t id){
  tkv_segment *s = seg_find(e, id);
  for(int i=0; !s && i<e->nlimbo; i++){
    if( e->limbo[i]->id==id ) s = e->limbo[i];
  }
  return s;
}

/*
** Ask the CPU to start fetching the record at loc (its first two cache
** lines), for a cursor that will read it a few rows later.  Only a hint:
** the map may be closed right after fdmu is let go, and a prefetch of an
** address no longer mapped does nothing.  Caller holds rw or mu.
*/
void seg_prefetch(tkv_engine *e, tkv_loc loc){
  tkv_segment *s = seg_find_any(e, loc.file);
  const uint8_t *p = NULL;
  if( !s ) return;
  pthread_mutex_lock(&e->fdmu);
  if( s->map && loc.off<s->map_len ) p = s->map + loc.off;
  pthread_mutex_unlock(&e->fdmu);
  if( p ){
    __builtin_prefetch(p);
    __builtin_prefetch(p + 64);
  }
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

/*
** Every WRITEBACK_STEP bytes written to s, start writing them back to the
** disk.  With sync=normal or off nothing else would before the segment is
** sealed, and sealing fdatasyncs it (in every mode) inside the commit that
** rotates: that commit would then wait for up to max_file_size bytes to
** reach the disk.  Started early, at most one step is left for it.
*/
void seg_writeback(tkv_segment *s, uint64_t upto){
  if( upto<s->wb_start + WRITEBACK_STEP ) return;
  tkv_io_writeback(s->fd, s->wb_start, upto - s->wb_start);
  s->wb_start = upto;
}

/* Write the buffer to the active segment. Caller holds mu. */
int seg_flush(tkv_engine *e){
  tkv_segment *s = e->active;
  int rc;
  ASSERT_MU(e);
  if( !s || e->buf_len==0 ) return TKV_OK;
  rc = seg_reserve(e, s, e->buf_off + e->buf_len);
  if( rc ) return rc;
  /* A write that fails part-way may leave some of its bytes in the file:
  ** seg_rewind must then cut up to here. */
  if( e->buf_off + e->buf_len > s->written_hi ){
    s->written_hi = e->buf_off + e->buf_len;
  }
  s->unsynced = 1;
  rc = tkv_io_pwrite(s->fd, s->path, e->buf, e->buf_len, e->buf_off);
  if( rc ) return rc;
  atomic_fetch_add(&e->bytes_written, e->buf_len);
  e->buf_off += e->buf_len;
  e->buf_len = 0;
  atomic_store(&s->flushed, e->buf_off);
  seg_writeback(s, e->buf_off);
  return TKV_OK;
}

/* Write a record too large for the buffer straight to the file (vword:
** its value word). */
static int seg_append_direct(tkv_engine *e, int type, const void *key,
                             uint32_t klen, const void *val, uint32_t vword,
                             uint64_t expire){
  tkv_segment *s = e->active;
  uint64_t off = e->buf_off, size = tkv_rec_size(klen, vword);
  uint32_t vlen = tkv_vlen(vword);
  uint8_t *head = tkv_mem_alloc(TKV_REC_HDR + (size_t)klen);
  uint8_t x[TKV_EXPIRE_BYTES];
  int rc;
  if( !head ) return tkv_err_nomem();
  tkv_rec_head_encode(head, type, key, klen, val, vlen, expire);
  rc = seg_reserve(e, s, off + size);
  if( off + size > s->written_hi ) s->written_hi = off + size;
  s->unsynced = 1;
  if( !rc ) rc = tkv_io_pwrite(s->fd, s->path, head, TKV_REC_HDR + klen, off);
  if( !rc ) rc = tkv_io_pwrite(s->fd, s->path, val, vlen, off+TKV_REC_HDR+klen);
  if( !rc && expire ){
    tkv_rec_expire_encode(x, expire);
    rc = tkv_io_pwrite(s->fd, s->path, x, sizeof x,
                       off + TKV_REC_HDR + klen + vlen);
  }
  tkv_mem_free(head);
  if( rc ){
    /* Leave no partial record behind the end (zeros follow `end`). */
    if( tkv_io_truncate(s->fd, s->path, off)==TKV_OK ){
      s->alloc = s->written_hi = off;
    }else{
      e->broken = 1;
    }
    return rc;
  }
  e->buf_off = off + size;
  atomic_fetch_add(&e->bytes_written, size);
  atomic_store(&s->flushed, e->buf_off);
  seg_writeback(s, e->buf_off);
  return TKV_OK;
}

/*
** Append one record to the active segment (with expiry time `expire`
** when it is not 0: a PUT or TXPUT only); *ploc receives its location,
** whose vlen is the value word.  Nothing of it is written when this
** fails.  Caller holds mu and has called seg_start_write.
*/
int seg_append(tkv_engine *e, int type, const void *key, uint32_t klen,
               const void *val, uint32_t vlen, uint64_t expire,
               tkv_loc *ploc){
  tkv_segment *s = e->active;
  uint32_t vword = vlen | (expire ? TKV_VLEN_EXPIRES : 0);
  uint64_t size = tkv_rec_size(klen, vword);
  uint64_t off = e->buf_off + e->buf_len;
  int rc;
  assert( vlen<=TKV_VLEN_MASK );
  assert( !expire || type==TKV_REC_PUT || type==TKV_REC_TXPUT );
  if( off + size > SEG_OFF_LIMIT ){
    return tkv_err(TKV_TOOBIG, "transaction too large: segment %s would pass "
                   "4 GiB", s->path);
  }
  if( e->buf_len + size > e->buf_cap ){
    rc = seg_flush(e);
    if( rc ) return rc;
  }
  if( size>e->buf_cap ){
    rc = seg_append_direct(e, type, key, klen, val, vword, expire);
  }else{
    tkv_rec_encode(e->buf + e->buf_len, type, key, klen, val, vlen, expire);
    e->buf_len += size;
    rc = TKV_OK;
  }
  if( rc ) return rc;
  s->end = off + size;
  if( type==TKV_REC_DEL || type==TKV_REC_TXDEL ) s->tomb_bytes += size;
  ploc->file = s->id;
  ploc->off = (uint32_t)off;
  ploc->vlen = vword;
  return TKV_OK;
}

/*
** fdatasync segment s.  With `mark`, for the active segment, first record
** in its sync area the committed end the previous successful sync made
** durable (synced_end), so that this fdatasync carries it to the disk as
** well: a slot only ever states an end that was already durable when it
** was written.  A failed slot write is a failed write (nothing synced);
** a failed fdatasync sets e->sync_failed.  Caller holds mu and has flushed
** the buffer.
*/
/* The sync-area half of seg_sync: write the slot that states the end
** the previous successful sync made durable, for the next fdatasync to
** carry.  Caller holds mu and may write the area (it is the writer). */
static int seg_mark_durable(tkv_engine *e, tkv_segment *s){
  if( s==e->active && s->version>=2 && s->synced_end>s->durable ){
    uint8_t slot[TKV_SYNC_SLOT];
    uint64_t off;
    int rc;
    tkv_sync_slot_encode(slot, (uint32_t)s->synced_end, s->sync_seq + 1, &off);
    rc = tkv_io_pwrite(s->fd, s->path, slot, sizeof slot, off);
    if( rc ) return rc;
    s->sync_seq++;
    s->durable = s->synced_end;
  }
  return TKV_OK;
}

static int seg_sync(tkv_engine *e, tkv_segment *s, int mark){
  uint64_t end = e->commit_end;
  int rc;
  if( mark ){
    rc = seg_mark_durable(e, s);
    if( rc ) return rc;
  }
  rc = tkv_io_sync(s->fd, s->path);
  if( rc ){
    e->sync_failed = 1;
    return rc;
  }
  s->unsynced = 0;
  if( s==e->active && end>s->synced_end ) s->synced_end = end;
  return TKV_OK;
}

/*
** A commit's records are all appended: they are committed from here on.
** Make them as durable as the sync mode promises.  Caller holds mu.
*/
int seg_commit_sync(tkv_engine *e){
  int rc;
  e->sync_failed = 0;
  if( !e->active ) return TKV_OK;
  e->commit_end = e->buf_off + e->buf_len;
  if( e->opts.sync==TKV_SYNC_OFF ) return TKV_OK;
  rc = seg_flush(e);
  if( rc || e->opts.sync!=TKV_SYNC_FULL ) return rc;
  return seg_sync(e, e->active, 1);
}

/*
** Make everything committed so far durable, in every sync mode: the
** active segment (sealed ones were synced when sealed) and the names of
** the directory.  With `closing`, sync once more so that the active
** segment's sync area lasts too.  With closing < 0, leave the sync area
** alone (another process is writing the segment: share.c).  Caller holds
** mu.
*/
int seg_sync_all(tkv_engine *e, int closing){
  tkv_segment *s = e->active;
  int rc = seg_flush(e);
  for(int i=0; !rc && i<e->nseg; i++){
    tkv_segment *x = e->segs[i];
    if( x==s ) continue;
    pthread_mutex_lock(&e->fdmu);     /* a closed one was synced first */
    if( x->fd>=0 && x->unsynced ){
      rc = tkv_io_sync(x->fd, x->path);
      if( !rc ) x->unsynced = 0;
    }
    pthread_mutex_unlock(&e->fdmu);
  }
  if( !rc && s && s->unsynced ) rc = seg_sync(e, s, closing>=0);
  /* Closing: once more, so that the sync area says all of it. */
  if( !rc && closing>0 && s && s->synced_end>s->durable ){
    rc = seg_sync(e, s, 1);
  }
  if( !rc && e->dir_dirty ){
    rc = tkv_io_sync_dir(e->dir);
    if( !rc ) e->dir_dirty = 0;
  }
  return rc;
}

/*
** seg_sync_begin and seg_sync_end split a sync of everything committed so
** far around an fdatasync that runs without mu (tkv_sync_concurrent), so
** that writers go on appending and committing while the disk works.
**
** Begin (caller holds mu and may write the sync area, or `mark` is 0):
** flush the buffer, record the previous durable end in the sync area, sync
** the directory if a segment name is not durable yet (rare: once per new
** segment), and open a descriptor of the caller's own on the active
** segment.  A descriptor of its own, not the engine's: Linux reports a
** writeback error once per open file description, so a shared one could
** hand this sync's error to a concurrent fdatasync and report success
** here.  Sealed segments need nothing: sealing synced them.  t->fd is -1
** when there is nothing to sync.
**
** End (caller holds mu again, after fdatasync(t->fd) gave `rc`): record
** the synced end if the segment is still the active one (looked up by its
** id: the struct may be gone), or break the engine on failure
** (BROKEN_SYNC: the kernel may have dropped the pages, and a later sync
** could wrongly succeed).  Returns the outcome.
*/
int seg_sync_begin(tkv_engine *e, int mark, seg_sync_ticket *t){
  tkv_segment *s = e->active;
  int rc;
  ASSERT_MU(e);
  t->fd = -1;
  t->id = 0;
  t->end = e->commit_end;
  t->rewinds = e->rewinds;
  t->path[0] = 0;
  rc = seg_flush(e);
  if( !rc && s && mark ) rc = seg_mark_durable(e, s);
  if( !rc && e->dir_dirty ){
    rc = tkv_io_sync_dir(e->dir);
    if( !rc ) e->dir_dirty = 0;
  }
  if( rc || !s ) return rc;
  if( (size_t)snprintf(t->path, sizeof t->path, "%s", s->path)
      >=sizeof t->path ){
    return tkv_err(TKV_INVALID, "segment path too long: %s", s->path);
  }
  rc = tkv_io_open_regular(s->path, O_RDWR, &t->fd);
  if( rc ){
    t->fd = -1;
    return rc;
  }
  t->id = s->id;
  return TKV_OK;
}

int seg_sync_end(tkv_engine *e, seg_sync_ticket *t, int rc){
  tkv_segment *s = e->active;
  ASSERT_MU(e);
  if( rc ){
    e->sync_failed = 1;
    if( !e->broken ) e->broken = BROKEN_SYNC;
    return rc;
  }
  /* After a rewind, bytes below t->end may have been taken out (a failed
  ** commit rolled back) and written again since: not what was synced. */
  if( s && t->fd>=0 && s->id==t->id && t->rewinds==e->rewinds
      && t->end>s->synced_end ){
    s->synced_end = t->end;
  }
  return TKV_OK;
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
** bytes may include a commit record that was synced.  That includes the
** bytes a failed write left past the buffer's start (written_hi): nothing
** of a rolled-back write stays in the file for a later commit to hide
** behind.  If even that fails the engine refuses writes until reopened.
*/
int seg_rewind(tkv_engine *e, uint64_t off){
  tkv_segment *s = e->active;
  uint64_t written, cut;
  int rc;
  if( !s ) return TKV_OK;
  e->rewinds++;
  if( e->commit_end>off ) e->commit_end = off;
  if( off<s->durable ){
    /* A prepared transaction rolled back: its records were synced and the
    ** sync area says so.  Lower that first, and sync it in every mode, so
    ** the area never claims bytes the file no longer has. */
    uint8_t slot[TKV_SYNC_SLOT];
    uint64_t at;
    tkv_sync_slot_encode(slot, (uint32_t)off, s->sync_seq + 1, &at);
    rc = tkv_io_pwrite(s->fd, s->path, slot, sizeof slot, at);
    if( !rc ) rc = tkv_io_sync(s->fd, s->path);
    if( rc ){ e->broken = 1; return rc; }
    s->sync_seq++;
    s->durable = off;
  }
  if( s->synced_end>off ) s->synced_end = off;
  written = s->written_hi > e->buf_off ? s->written_hi : e->buf_off;
  if( off>=e->buf_off ){
    e->buf_len = (size_t)(off - e->buf_off);
    s->end = off;
    if( s->written_hi<=e->buf_off ) return TKV_OK;
    cut = e->buf_off;         /* a failed flush left bytes past buf_off */
  }else{
    e->buf_len = 0;
    e->buf_off = off;
    s->end = off;
    atomic_store(&s->flushed, off);
    cut = off;
  }
  rc = tkv_io_truncate(s->fd, s->path, cut);
  if( rc==TKV_OK ) s->alloc = cut;
  else rc = seg_zero(s, cut, written);
  if( !rc && e->opts.sync==TKV_SYNC_FULL ) rc = tkv_io_sync(s->fd, s->path);
  if( rc ) e->broken = 1;
  else s->written_hi = cut;
  return rc;
}

/*
** Seal the active segment: flush, sync, give back the reserved space, and
** have its hint file written (by the merge thread, so that the commit that
** rotates does not scan the segment).  A missing hint is not an error: the
** next open scans the segment instead.  The sync happens in every sync
** mode: a sealed segment is durable whole before any newer segment exists,
** which is what lets recovery treat a bad record in any segment but the
** newest as corruption (FORMAT.md, "Recovery"), and what lets a merge
** delete its inputs without syncing the sealed segments again.
*/
int seg_seal_active(tkv_engine *e){
  tkv_segment *s = e->active;
  int rc;
  if( !s ) return TKV_OK;
  assert( e->commit_end<=e->buf_off + e->buf_len );
  rc = seg_flush(e);
  if( !rc && s->unsynced ) rc = seg_sync(e, s, 0);
  if( !rc && e->dir_dirty ){
    /* Its name too: a newer segment must never outlive it. */
    rc = tkv_io_sync_dir(e->dir);
    if( !rc ) e->dir_dirty = 0;
  }
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
  seg_lru_enter(e, s);
  merge_sealed(e, s);
  return TKV_OK;
}

/*
** Called when a writer takes the slot: rotate a full active segment and
** make sure there is one to append to.  Caller holds mu.
*/
int seg_start_write(tkv_engine *e){
  tkv_segment *s;
  uint32_t id;
  int rc;
  ASSERT_MU(e);
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
  id = seg_new_id(e);
  rc = seg_create(e, id, id, 0, TKV_SUFFIX_SEG, &s);
  if( rc ) return rc;
  /* Its header is synced in every mode before any record goes in: a
  ** newest segment whose header is zeros while records follow is then
  ** corruption, never an unsynced creation. */
  rc = tkv_io_sync(s->fd, s->path);
  if( !rc ) s->unsynced = 0;
  if( !rc && e->opts.sync==TKV_SYNC_FULL ) rc = tkv_io_sync_dir(e->dir);
  else e->dir_dirty = 1;      /* tkv_sync, close and the seal sync it */
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
  e->buf_off = e->commit_end = s->end;
  s->synced_end = s->durable = s->end;
  e->buf_len = 0;
  return TKV_OK;
}

/* Check a record read whole into rec (rlen bytes) against what the keydir
** says it holds. */
static int check_record(const tkv_segment *s, tkv_loc loc, const uint8_t *rec,
                        const void *key, size_t klen, const uint8_t *val){
  tkv_rec_hdr h;
  int zero;
  if( tkv_rec_hdr_decode(rec, &h, &zero) ){
    return seg_corrupt(s, loc.off, "bad record header");
  }
  if( (h.type!=TKV_REC_PUT && h.type!=TKV_REC_TXPUT) || h.klen!=klen
   || h.vlen!=loc.vlen || memcmp(rec + TKV_REC_HDR, key, klen) ){
    return seg_corrupt(s, loc.off, "record does not match the keydir");
  }
  if( tkv_rec_crc(rec, key, (uint32_t)klen, val, loc.vlen)!=h.crc ){
    return seg_corrupt(s, loc.off, "checksum mismatch");
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
  tkv_segment *s = seg_find_any(e, loc.file);
  uint64_t size = tkv_rec_size((uint32_t)klen, loc.vlen);
  size_t tail = (size_t)tkv_rec_tail(loc.vlen), vlen = tkv_vlen(loc.vlen);
  uint8_t small[SMALL_READ], *head = small, *val;
  int rc;
  if( !s ){
    return tkv_err(TKV_CORRUPT, "keydir points at missing segment %010u in %s",
                   loc.file, e->dir);
  }
  if( loc.off + size > atomic_load(&s->flushed) ) return -2;
  /* The tail (value and any expiry time) is read and checked; the caller
  ** gets the value, NUL-terminated. */
  val = tkv_mem_alloc(tail + 1);
  if( !val ) return tkv_err_nomem();
  rc = seg_pin(s);
  if( rc ){
    tkv_mem_free(val);
    return rc;
  }
  if( loc.off + size <= s->map_len ){
    /* Check the record in place, then copy out just the value. */
    const uint8_t *rec = s->map + loc.off;
    rc = check_record(s, loc, rec, key, klen, rec + TKV_REC_HDR + klen);
    if( !rc ) memcpy(val, rec + TKV_REC_HDR + klen, vlen);
  }else{
    if( size<=SMALL_READ ){
      rc = tkv_io_pread(s->fd, s->path, small, size, loc.off, NULL);
      if( !rc ) memcpy(val, small + TKV_REC_HDR + klen, tail);
    }else{
      head = tkv_mem_alloc(TKV_REC_HDR + klen);
      rc = head ? TKV_OK : tkv_err_nomem();
      if( !rc ) rc = tkv_io_pread(s->fd, s->path, head, TKV_REC_HDR+klen,
                                  loc.off, NULL);
      if( !rc ) rc = tkv_io_pread(s->fd, s->path, val, tail,
                                  loc.off + TKV_REC_HDR + klen, NULL);
    }
    if( rc==TKV_CORRUPT ) rc = seg_corrupt(s, loc.off, "file ends inside it");
    if( !rc ) rc = check_record(s, loc, head, key, klen, val);
    if( head!=small ) tkv_mem_free(head);
  }
  seg_unpin(s);
  if( rc ){
    tkv_mem_free(val);
    return rc;
  }
  val[vlen] = 0;
  *pval = val;
  return TKV_OK;
}
