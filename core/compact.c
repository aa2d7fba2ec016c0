/*
** Compaction: rewrite the live records into new segments, then drop the
** old ones.
**
** The order of steps is what makes it safe at every point of a crash:
**   1. seal the active segment; the old segments are now all of them;
**   2. copy every live record into output files named *.seg.tmp, whose
**      header base is the highest old id, and sync them; write their hints;
**   3. rename the outputs to *.seg and sync the directory (the commit
**      point: from here a reopen replays the outputs after the old
**      segments, and they hold the same latest values);
**   4. point the keydir at the outputs (one exclusive lock, brief);
**   5. delete the old segments in replay order and sync the directory.
** Before step 3 a reopen removes the *.tmp files.  Old segments are deleted
** oldest first, and the deletion stops at the first failure: a tombstone
** never disappears while an older value of its key is still on disk.
** Readers go on throughout, on the old files until step 4.
*/
#include "engine.h"
#include "err.h"
#include "io.h"
#include "mem.h"

#include <string.h>

#define OUT_BUF_SIZE (1u << 20)

/* An output segment being written. */
typedef struct out_writer {
  tkv_engine *e;
  uint32_t base;
  tkv_segment **outs;      /* finished and current outputs */
  int nout, out_cap;
  uint8_t *buf;
  size_t len;
} out_writer;

/* Where each live entry's record moves. */
typedef struct moved {
  kd_entry *en;
  tkv_loc loc;
} moved;

static int out_flush(out_writer *w){
  tkv_segment *s = w->nout ? w->outs[w->nout-1] : NULL;
  int rc;
  if( !s || !w->len ) return TKV_OK;
  rc = tkv_io_pwrite(s->fd, s->path, w->buf, w->len, s->end - w->len);
  w->len = 0;
  return rc;
}

/* Flush and sync the current output. */
static int out_finish(out_writer *w){
  int rc = out_flush(w);
  tkv_segment *s = w->nout ? w->outs[w->nout-1] : NULL;
  if( !rc && s ){
    rc = tkv_io_sync(s->fd, s->path);
    s->alloc = s->end;
    atomic_store(&s->flushed, s->end);
    seg_park(w->e, s);    /* reopened on demand: outputs may be many */
  }
  return rc;
}

/* Start a new output segment. */
static int out_new(out_writer *w){
  tkv_engine *e = w->e;
  tkv_segment *s;
  int rc;
  if( w->nout==w->out_cap ){
    int cap = w->out_cap ? w->out_cap*2 : 8;
    tkv_segment **p = tkv_mem_realloc(w->outs, cap * sizeof *p);
    if( !p ) return tkv_err_nomem();
    w->outs = p;
    w->out_cap = cap;
  }
  rc = seg_create(e, e->next_id, w->base, TKV_SEG_COMPACTED, TKV_SUFFIX_SEG_TMP, &s);
  if( rc ) return rc;
  e->next_id++;
  s->sealed = 1;
  w->outs[w->nout++] = s;
  return TKV_OK;
}

/* Append a PUT record to the outputs; *ploc receives where it went. */
static int out_put(out_writer *w, const uint8_t *key, uint32_t klen,
                   const void *val, uint32_t vlen, tkv_loc *ploc){
  uint64_t size = tkv_rec_size(klen, vlen);
  tkv_segment *s = w->nout ? w->outs[w->nout-1] : NULL;
  int rc;
  if( !s || (s->end>s->start
             && s->end + size > w->e->opts.max_file_size) ){
    rc = out_finish(w);
    if( !rc ) rc = out_new(w);
    if( rc ) return rc;
    s = w->outs[w->nout-1];
  }
  if( w->len + size > OUT_BUF_SIZE ){
    rc = out_flush(w);
    if( rc ) return rc;
  }
  if( size>OUT_BUF_SIZE ){
    uint8_t *rec = tkv_mem_alloc((size_t)size);
    if( !rec ) return tkv_err_nomem();
    tkv_rec_encode(rec, TKV_REC_PUT, key, klen, val, vlen);
    rc = tkv_io_pwrite(s->fd, s->path, rec, (size_t)size, s->end);
    tkv_mem_free(rec);
    if( rc ) return rc;
  }else{
    tkv_rec_encode(w->buf + w->len, TKV_REC_PUT, key, klen, val, vlen);
    w->len += (size_t)size;
  }
  ploc->file = s->id;
  ploc->off = (uint32_t)s->end;
  ploc->vlen = vlen;
  s->end += size;
  return TKV_OK;
}

/* Remove the outputs of a failed compaction.  An output already renamed
** that cannot be removed would replay stale values after later
** compactions, so then the engine refuses writes until reopened. */
static void out_discard(out_writer *w, int renamed){
  for(int i=0; i<w->nout; i++){
    tkv_segment *s = w->outs[i];
    char hint[4096];
    if( tkv_io_unlink(s->path) && i<renamed ) w->e->broken = 1;
    if( !seg_name(hint, sizeof hint, w->e->dir, s->id, TKV_SUFFIX_HINT) ){
      tkv_io_unlink(hint);
    }
    seg_free(s);
  }
  w->nout = 0;
}

/* State of the copy: the outputs, the moves so far, the segment read. */
typedef struct copy_ctx {
  tkv_engine *e;
  out_writer *w;
  moved *mv;
  size_t n;
  uint32_t file;
} copy_ctx;

/* Copy one record of an old segment if the keydir still points at it. */
static int copy_record(void *arg, int type, const uint8_t *key, uint32_t klen,
                       uint32_t off, uint32_t vlen, const uint8_t *val){
  copy_ctx *c = arg;
  kd_entry *en;
  tkv_loc loc;
  void *big = NULL;
  int rc;
  if( type!=TKV_REC_PUT ) return TKV_OK;
  en = kd_index_find(c->e->index, key, klen);
  if( !en ) return TKV_OK;
  loc = kd_entry_loc(en);
  if( loc.file!=c->file || loc.off!=off ) return TKV_OK;
  if( !val ){
    rc = seg_read(c->e, loc, key, klen, &big);
    if( rc ) return rc==-2 ? tkv_err(TKV_MISUSE, "unflushed record") : rc;
    val = big;
  }
  rc = out_put(c->w, key, klen, val, vlen, &c->mv[c->n].loc);
  tkv_mem_free(big);
  if( rc ) return rc;
  c->mv[c->n++].en = en;
  return TKV_OK;
}

/*
** Copy every live record into the outputs (step 2), reading the old
** segments front to back: the keydir says which records are live.
*/
static int copy_live(tkv_engine *e, out_writer *w, moved *mv, size_t *pn,
                     tkv_segment **old, int nold){
  copy_ctx c;
  int rc = TKV_OK;
  c.e = e;
  c.w = w;
  c.mv = mv;
  c.n = 0;
  for(int i=0; i<nold && !rc; i++){
    seg_scan_result r;
    c.file = old[i]->id;
    rc = seg_scan(old[i], old[i]->end, copy_record, &c, &r);
    if( !rc && r.why!=SCAN_EOF && r.why!=SCAN_ZERO ){
      rc = tkv_err(TKV_CORRUPT, "corrupt record in %s at offset %llu",
                   old[i]->path, (unsigned long long)r.stop);
    }
  }
  if( !rc ) rc = out_finish(w);
  *pn = c.n;
  return rc;
}

/* Rename the outputs into place and write their hints (step 3). */
static int install_outputs(tkv_engine *e, out_writer *w, int *prenamed){
  int rc = TKV_OK;
  *prenamed = 0;
  for(int i=0; i<w->nout && !rc; i++){
    tkv_segment *s = w->outs[i];
    char path[4096];
    char *dup = NULL;
    rc = seg_name(path, sizeof path, e->dir, s->id, TKV_SUFFIX_SEG);
    if( !rc ){
      dup = tkv_mem_dup(path, strlen(path));
      if( !dup ) rc = tkv_err_nomem();
    }
    if( !rc ) rc = tkv_io_rename(s->path, path);
    if( rc ){ tkv_mem_free(dup); break; }
    (*prenamed)++;
    tkv_mem_free(s->path);
    s->path = dup;
  }
  if( !rc ) rc = tkv_io_sync_dir(e->dir);
  for(int i=0; !rc && i<w->nout; i++) hint_write(e, w->outs[i]);
  return rc;
}

/* Bytes on disk of a segment and its hint. */
static uint64_t seg_disk(const tkv_segment *s){
  return s->alloc + s->hint_bytes;
}

/* Delete the replaced segments, oldest first (step 5).  Each unlink is
** made durable (directory sync) before the next: on a file system that
** keeps directory changes in any order, a younger segment's removal (say,
** of a tombstone) must never last while an older one's (the value it
** deleted) is lost.  Returns how many were deleted; the rest stay in the
** table for the next compaction. */
static int delete_old(tkv_engine *e, tkv_segment **old, int nold){
  int i;
  for(i=0; i<nold; i++){
    char hint[4096];
    if( tkv_io_unlink(old[i]->path) ) break;
    if( tkv_io_sync_dir(e->dir) ) break;
    if( !seg_name(hint, sizeof hint, e->dir, old[i]->id, TKV_SUFFIX_HINT) ){
      tkv_io_unlink(hint);
    }
  }
  return i;
}

/* Point the keydir at the outputs and swap the segment table (step 4). */
static void switch_over(tkv_engine *e, out_writer *w, moved *mv, size_t n,
                        tkv_segment **old, int nold){
  engine_wrlock(e);
  for(size_t i=0; i<n; i++) kd_entry_set_loc(mv[i].en, mv[i].loc);
  for(int i=0; i<nold; i++) seg_table_remove(e, old[i]);
  for(int i=0; i<w->nout; i++){
    if( seg_table_add(e, w->outs[i]) ) e->broken = 1;
  }
  engine_wrunlock(e);
}

/*
** Compact the store.  Caller holds mu and no transaction is open.
*/
int compact_locked(tkv_engine *e, uint64_t *preclaimed){
  out_writer w;
  moved *mv = NULL;
  tkv_segment **old = NULL;
  uint64_t before = 0, after = 0, data = 0;
  size_t n = 0;
  int nold, renamed = 0, deleted, rc;
  ASSERT_MU(e);
  if( preclaimed ) *preclaimed = 0;
  if( e->writer ){
    return tkv_err(TKV_BUSY, "cannot compact %s: a transaction is open", e->dir);
  }
  if( e->broken ){
    return tkv_err(TKV_BROKEN, "cannot compact %s: reopen the store", e->dir);
  }
  /* Disk use as tkv_stats saw it, before sealing writes the active
  ** segment's hint and gives back its reserved space. */
  for(int i=0; i<e->nseg; i++) before += seg_disk(e->segs[i]);
  rc = seg_seal_active(e);
  if( rc ) return rc;
  nold = e->nseg;
  if( nold==0 ) return TKV_OK;
  memset(&w, 0, sizeof w);
  w.e = e;
  old = tkv_mem_alloc(nold * sizeof *old);
  w.buf = tkv_mem_alloc(OUT_BUF_SIZE);
  mv = tkv_mem_alloc((kd_index_count(e->index) + 1) * sizeof *mv);
  if( !old || !w.buf || !mv ){ rc = tkv_err_nomem(); goto done; }
  memcpy(old, e->segs, nold * sizeof *old);
  for(int i=0; i<nold; i++){
    if( old[i]->id>w.base ) w.base = old[i]->id;
  }
  rc = copy_live(e, &w, mv, &n, old, nold);
  if( !rc ){
    /* Growing the table frees its old array: readers must be out. */
    engine_wrlock(e);
    rc = seg_table_reserve(e, e->nseg + w.nout);
    engine_wrunlock(e);
  }
  if( !rc ) rc = install_outputs(e, &w, &renamed);
  if( rc ){
    out_discard(&w, renamed);
    goto done;
  }
  switch_over(e, &w, mv, n, old, nold);
  deleted = delete_old(e, old, nold);
  engine_wrlock(e);
  for(int i=deleted; i<nold; i++){
    if( seg_table_add(e, old[i]) ) e->broken = 1;
  }
  engine_wrunlock(e);
  for(int i=0; i<deleted; i++) seg_free(old[i]);
  for(int i=0; i<e->nseg; i++){
    after += seg_disk(e->segs[i]);
    data += e->segs[i]->end - e->segs[i]->start;
  }
  e->total_bytes = data;
  e->compactions++;
  e->last_reclaimed = before>after ? before - after : 0;
  if( preclaimed ) *preclaimed = e->last_reclaimed;
done:
  tkv_mem_free(w.outs);
  tkv_mem_free(w.buf);
  tkv_mem_free(mv);
  tkv_mem_free(old);
  return rc;
}

/*
** Run an automatic compaction when stale bytes passed the threshold.  A
** failure is kept for tkv_stats and the next try waits until another
** threshold's worth of stale bytes has built up.  Caller holds mu.
*/
void compact_maybe(tkv_engine *e){
  static const uint64_t never = UINT64_MAX;
  uint64_t stale = e->total_bytes - e->live_bytes;
  uint64_t limit = e->opts.compact_threshold;
  if( limit==never || e->writer || e->broken || stale<limit ) return;
  if( stale < e->compact_retry_at ) return;
  e->last_compact_rc = compact_locked(e, NULL);
  e->compact_retry_at = e->last_compact_rc ? stale + limit : 0;
}
