/*
** Merging: reclaim the space of stale records by copying the live records
** of some sealed segments into new segments, then deleting those.  This
** file is the mechanism and the background thread that runs it;
** mergepolicy.c decides which segments and when.
**
** Who merges.  One background thread per engine, started the first time a
** merge is due, and tkv_compact, which merges every segment at once.  One
** merge runs at a time (merge_state.run_mu).  Commits never do merge work:
** txn_finish calls merge_notify, which only wakes the thread.
**
** The steps, and what makes each one safe while writers and readers go on:
**  1. Under mu, briefly: the policy picks the inputs among the sealed
**     segments (tkv_compact seals the active segment and takes them all).
**     Sealed segments never change and only a merge removes segments, so
**     the inputs are read without locks from here on.
**  2. Scan each input in replay order, checking every record's CRC.  A put
**     is live if the keydir still points at it (looked up under rw shared,
**     one record at a time); it is noted with its entry's id.  A tombstone
**     is dropped if its key is live (a later put shadows every older one)
**     or if every segment before it in replay order is an input (no older
**     put survives the merge); otherwise it is copied.  A record that fails
**     its checks is reported once (file and offset) and the scan resumes at
**     the next valid record; live keys that point into the damage keep
**     their file, which the policy then leaves alone.
**  3. Copy the noted records, sorted by key (a scan in key order then reads
**     merged data sequentially), into new files *.seg.tmp whose header base
**     is the highest base among the inputs: they replay after every input
**     and before every segment written since the merge began (whose base is
**     its own, higher, id).  Each record is read again and checked before it
**     is written, so wrong data is never copied.  Sync the outputs.
**  4. Rename the outputs to *.seg and sync the directory: the commit
**     point.  Then add them to the segment table (nothing points at them
**     yet).  A crash before it leaves *.tmp files, which open removes;
**     after it, the inputs and the outputs both replay, harmlessly, since
**     the outputs hold the same values later in replay order.
**  5. Repoint the keydir a batch of entries at a time, holding mu and rw
**     (each batch is the only pause writers and readers see).  An entry
**     moves only if it still points at the record that was copied (its id
**     and location are compared), so a key written during the merge keeps
**     its newer value: the lost-update race of merges that overwrite.
**  6. Delete the inputs in replay order.  An input goes only when nothing
**     live is left in it and, if it relies on older segments being gone (it
**     had a tombstone dropped, or damage that may hide tombstones), only
**     when every segment before it went too.  Each unlink is followed by a
**     directory sync, so that deletions reach the disk in that order.
** Key ids never change: entries are repointed, never recreated.
**
** Several processes (share.c).  While others have the store open a merge
** holds the MERGE lock instead of having the store alone; its outputs take
** ids from the shared counter and are published as a new generation at
** step 4, which the other processes apply before their next read; at step
** 6 the inputs leave the table and wait in a list (merge_state.pend) until
** every process has caught up with that generation, then go in order.  A
** merge never takes the segment writers append to (the published one), and
** counts files on disk that its table lacks (inputs still waiting) as older
** segments that survive it, so that no tombstone is dropped too early.
*/
#include "engine.h"
#include "readtxn.h"
#include "err.h"
#include "io.h"
#include "mem.h"
#include "mergepolicy.h"
#include "crc32c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OUT_BUF_SIZE  (1u << 20)
#define SWITCH_BATCH  2048      /* entries repointed per lock hold */
#define MERGE_FLAGS   4         /* per-input flag arrays of a merge job */
#define PRESYNC_LEFT  8         /* presync when 1/8 of a segment is left */
#define RETRY_MS      200       /* pending deletions: how often to retry */

typedef struct merge_state merge_state;
struct merge_state {
  pthread_t thread;
  int started;              /* the thread exists */
  _Atomic int stop;         /* ask the thread to end (set holding mu) */
  int pending;              /* a merge may be due (mu) */
  int busy;                 /* the thread is working (mu) */
  pthread_cond_t wake;      /* pending or stop, with e->mu */
  pthread_cond_t idle;      /* busy went to 0, with e->mu */
  pthread_mutex_t run_mu;   /* held by the merge that runs */
  _Atomic int presync_due;  /* the active segment is nearly full: sync it
                            ** ahead of its sealing (see presync) */
  uint32_t presync_id;      /* the active segment last asked for (mu) */
  int retry;                /* deletions are pending: wake now and then
                            ** to try them again (mu) */
  /* Statistics, changed holding mu. */
  uint64_t copied;          /* record bytes written by merges */
  uint64_t reclaimed;       /* disk bytes freed by merges */
  uint64_t usec;            /* time spent merging */
  uint64_t damaged;         /* unreadable records found */
  uint64_t quiet_until;     /* stale bytes before a commit wakes the
                            ** thread again after a round found nothing */
  char note[160];           /* the last one, with file and offset */
  /* Inputs out of the table whose files wait for deletion (run_mu), in
  ** the order they must go: until every process caught up with the
  ** generation that made them obsolete (share.c). */
  struct pend_seg {
    tkv_segment *s;
    uint64_t gen;           /* the generation that made it obsolete */
    uint64_t rstamp;        /* read transactions begun by then (readtxn.h):
                            ** those still open may read it */
  } *pend;
  int npend, pend_cap;
};

/*
** Sync the active segment ahead of its sealing.  Sealing fdatasyncs the
** segment inside the commit that rotates it, holding mu (segment.c: a
** sealed segment is durable before any newer one exists); started every
** 4 MiB, writeback leaves that fdatasync little data, but it still waits
** for the pages in flight and for the journal to record where the data
** went, tens of milliseconds on a busy disk.  When the active segment is
** nearly full (merge_notify), this thread fdatasyncs it outside mu, and
** fsyncs the directory if the segment's name is not durable yet, so that
** the sync at sealing finds almost nothing left to do.  It only makes the
** sealing cheaper: nothing is marked synced here, sealing still syncs
** segment and directory itself, so no promise rests on it.  A failure
** breaks the engine (BROKEN_SYNC: the kernel may have dropped the pages
** and the sync at sealing could then wrongly succeed).  Called from the
** thread between merges and, every few thousand records, during one.
** Caller holds run_mu (no merge can free the segment meanwhile), not mu.
*/
static void presync(tkv_engine *e, merge_state *ms){
  tkv_segment *s;
  int dir, rc = TKV_OK;
  if( !atomic_load(&ms->presync_due) ) return;
  engine_lock(e);
  atomic_store(&ms->presync_due, 0);
  s = e->active;
  dir = e->dir_dirty;
  if( !s || s->id!=ms->presync_id || e->broken || seg_pin(s) ) s = NULL;
  engine_unlock(e);
  if( !s ) return;
  rc = tkv_io_sync(s->fd, s->path);
  seg_unpin(s);
  if( !rc && dir ) (void)tkv_io_sync_dir(e->dir);  /* sealing redoes it */
  if( rc ){
    engine_lock(e);
    if( !e->broken ) e->broken = BROKEN_SYNC;
    engine_unlock(e);
  }
}

/* ------------------------------------------------------ The outputs. */

typedef struct out_writer {
  tkv_engine *e;
  uint32_t base;
  tkv_segment **outs;       /* finished and current outputs */
  int nout, out_cap;
  uint8_t *buf;
  size_t len;
  uint64_t bytes;           /* record bytes written */
} out_writer;

static int out_flush(out_writer *w){
  tkv_segment *s = w->nout ? w->outs[w->nout-1] : NULL;
  int rc;
  if( !s || !w->len ) return TKV_OK;
  rc = tkv_io_pwrite(s->fd, s->path, w->buf, w->len, s->end - w->len);
  if( !rc ) atomic_fetch_add(&w->e->bytes_written, w->len);
  if( !rc ) seg_writeback(s, s->end);   /* the final sync has less to do */
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

/* Start a new output segment; its id comes from the engine (under mu). */
static int out_new(out_writer *w){
  tkv_engine *e = w->e;
  tkv_segment *s;
  uint32_t id;
  int rc;
  if( w->nout==w->out_cap ){
    int cap = w->out_cap ? w->out_cap*2 : 8;
    tkv_segment **p = tkv_mem_realloc(w->outs, cap * sizeof *p);
    if( !p ) return tkv_err_nomem();
    w->outs = p;
    w->out_cap = cap;
  }
  engine_lock(e);
  id = seg_new_id(e);
  engine_unlock(e);
  rc = seg_create(e, id, w->base, TKV_SEG_COMPACTED, TKV_SUFFIX_SEG_TMP, &s);
  if( rc ) return rc;
  s->sealed = 1;
  w->outs[w->nout++] = s;
  return TKV_OK;
}

/* Append a record to the outputs; *ploc receives where it went.  vlen is
** the value word and val the record's tail (value, then any expiry time,
** format.h), so a record is copied with its expiry time. */
static int out_put(out_writer *w, int type, const uint8_t *key, uint32_t klen,
                   const void *val, uint32_t vlen, tkv_loc *ploc){
  uint64_t size = tkv_rec_size(klen, vlen);
  uint64_t expire = tkv_rec_expire(val, vlen);
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
    tkv_rec_encode(rec, type, key, klen, val, tkv_vlen(vlen), expire);
    rc = tkv_io_pwrite(s->fd, s->path, rec, (size_t)size, s->end);
    tkv_mem_free(rec);
    if( rc ) return rc;
    atomic_fetch_add(&w->e->bytes_written, size);
  }else{
    tkv_rec_encode(w->buf + w->len, type, key, klen, val, tkv_vlen(vlen),
                   expire);
    w->len += (size_t)size;
  }
  ploc->file = s->id;
  ploc->off = (uint32_t)s->end;
  ploc->vlen = vlen;
  s->end += size;
  if( type==TKV_REC_DEL ) s->tomb_bytes += size;
  w->bytes += size;
  return TKV_OK;
}

/* Remove the outputs of a merge that did not reach its commit point. */
static void out_discard(out_writer *w){
  for(int i=0; i<w->nout; i++){
    tkv_segment *s = w->outs[i];
    char hint[4096];
    tkv_io_unlink(s->path);
    if( !seg_name(hint, sizeof hint, w->e->dir, s->id, TKV_SUFFIX_HINT) ){
      tkv_io_unlink(hint);
    }
    seg_free(s);
  }
  w->nout = 0;
}

/* ------------------------------------------------------- A merge job. */

/* A record to copy. */
typedef struct mrec {
  uint64_t id;          /* entry id (puts) */
  size_t koff;          /* the key, in job.keys */
  uint32_t klen, off, vlen;
  uint16_t src;         /* input index */
  uint8_t type;         /* TKV_REC_PUT or TKV_REC_DEL */
  uint8_t skip;         /* failed its second check: not copied */
  tkv_loc to;           /* where it was copied */
} mrec;

typedef struct merge_job {
  tkv_engine *e;
  merge_state *ms;
  tkv_segment **in;     /* inputs, in replay order */
  int nin;
  uint8_t *prefix;      /* every segment before in[i] is an input */
  uint8_t *relies;      /* in[i] may go only after every older one */
  uint8_t *damaged;     /* in[i] has a record that fails its checks */
  uint8_t *todo;        /* in[i] is to be deleted (step 6) */
  int prefix_broken;    /* an input before the current one is damaged */
  int cur;              /* input being scanned */
  unsigned polls;       /* records seen, to call presync now and then */
  size_t npend;         /* candidates at the end of r, not yet checked */
  mrec *r;
  size_t nr, rcap;
  uint8_t *keys;
  size_t klen_used, kcap;
  out_writer w;
  int shared;           /* other processes have the store open */
  uint64_t gen;         /* the generation the outputs were published in */
  uint64_t in_disk;     /* disk bytes of the inputs deleted */
  uint64_t in_data;     /* record bytes of the inputs deleted */
} merge_job;

/* Record a damaged record of input s: counted, the first one per merge
** kept with its file and offset for tkv_stats. */
static void note_damage(merge_job *j, tkv_segment *s, uint64_t off,
                        const char *why){
  tkv_engine *e = j->e;
  engine_lock(e);
  j->ms->damaged++;
  snprintf(j->ms->note, sizeof j->ms->note,
           "corrupt record in %s at offset %llu: %s (skipped by merge)",
           s->path, (unsigned long long)off, why);
  engine_unlock(e);
}

static int job_add(merge_job *j, int type, const uint8_t *key, uint32_t klen,
                   uint32_t off, uint32_t vlen, uint64_t id){
  mrec *m;
  if( j->nr==j->rcap ){
    size_t cap = j->rcap ? j->rcap*2 : 1024;
    mrec *p = tkv_mem_realloc(j->r, cap * sizeof *p);
    if( !p ) return tkv_err_nomem();
    j->r = p;
    j->rcap = cap;
  }
  if( j->klen_used + klen > j->kcap ){
    size_t cap = j->kcap ? j->kcap*2 : 65536;
    uint8_t *p;
    while( cap < j->klen_used + klen ) cap *= 2;
    p = tkv_mem_realloc(j->keys, cap);
    if( !p ) return tkv_err_nomem();
    j->keys = p;
    j->kcap = cap;
  }
  m = &j->r[j->nr++];
  memset(m, 0, sizeof *m);
  m->id = id;
  m->koff = j->klen_used;
  m->klen = klen;
  m->off = off;
  m->vlen = vlen;
  m->src = (uint16_t)j->cur;
  m->type = (uint8_t)type;
  if( klen ) memcpy(j->keys + j->klen_used, key, klen);
  j->klen_used += klen;
  return TKV_OK;
}

/*
** Step 2, the records of the input being scanned.  Which of them are still
** live is a keydir lookup each, a chain of cache misses, and each lookup
** under the shared keydir lock would also trade the lock with the writer
** record by record (every hand-over a futex wake).  So collect() only
** takes each record down, key copied, as a candidate, and every
** COLLECT_BATCH of them collect_flush() looks up together
** (kd_index_find_many, one lock hold) and drops those that are no longer
** live.  The check is as good later as at once: step 5 (switch_over)
** checks every copied record again against the keydir before it points an
** entry at the copy.
*/
#define COLLECT_BATCH 32

/* Decide the pending candidates (the last j->npend records of j->r): keep
** a put the keydir still points to, and a tombstone whose key is absent
** unless it can be dropped; compact the rest away, keys too. */
static void collect_flush(merge_job *j){
  tkv_engine *e = j->e;
  size_t n = j->npend, base = j->nr - n, w = base, kw;
  const void *keys[COLLECT_BATCH];
  size_t klens[COLLECT_BATCH];
  kd_entry *en[COLLECT_BATCH];
  uint64_t id[COLLECT_BATCH];
  uint8_t keep[COLLECT_BATCH];
  tkv_segment *s = j->in[j->cur];
  if( n==0 ) return;
  assert( n<=COLLECT_BATCH );
  kw = j->r[base].koff;
  for(size_t i=0; i<n; i++){
    keys[i] = j->keys + j->r[base+i].koff;
    klens[i] = j->r[base+i].klen;
  }
  engine_rdlock(e);
  kd_index_find_many(e->index, n, keys, klens, en);
  for(size_t i=0; i<n; i++){
    const mrec *m = &j->r[base+i];
    int live = en[i] && !(kd_entry_flags(en[i]) & ENTRY_NEW);
    keep[i] = 0;
    id[i] = 0;
    if( m->type==TKV_REC_PUT ){
      if( live ){
        tkv_loc loc = kd_entry_loc(en[i]);
        if( loc.file==s->id && loc.off==m->off ){
          keep[i] = 1;
          id[i] = kd_entry_id(en[i]);
        }
      }
    }else if( !live ){
      if( j->prefix[j->cur] && !j->prefix_broken ) j->relies[j->cur] = 1;
      else keep[i] = 1;
    }
  }
  engine_rdunlock(e);
  for(size_t i=0; i<n; i++){
    mrec m = j->r[base+i];
    if( !keep[i] ) continue;
    if( m.klen ) memmove(j->keys + kw, j->keys + m.koff, m.klen);
    m.koff = kw;
    m.id = id[i];
    kw += m.klen;
    j->r[w++] = m;
  }
  j->nr = w;
  j->klen_used = kw;
  j->npend = 0;
}

static int collect(void *arg, int type, const uint8_t *key, uint32_t klen,
                   uint32_t off, uint32_t vlen, const uint8_t *val,
                   uint64_t expire){
  merge_job *j = arg;
  int rc;
  (void)val;
  (void)expire;           /* copied from the record's tail in step 3 */
  if( (++j->polls & 4095)==0 ) presync(j->e, j->ms);
  rc = job_add(j, type, key, klen, off, vlen, 0);
  if( rc ) return rc;
  if( ++j->npend==COLLECT_BATCH ) collect_flush(j);
  return TKV_OK;
}

/*
** Step 2: scan every input; damaged stretches are reported and skipped.
** An input nothing live points into needs no scan when it holds no
** tombstone, or when every tombstone of it would be dropped anyway (every
** segment before it is an input, none damaged): it only has to go after
** the older inputs if it holds any.  That keeps the cost of a merge of
** many dead segments (a fast writer, small segments) to their deletion.
*/
static int scan_inputs(merge_job *j){
  tkv_engine *e = j->e;
  int rc = TKV_OK;
  for(j->cur=0; j->cur<j->nin && !rc; j->cur++){
    tkv_segment *s = j->in[j->cur];
    uint64_t pos = s->start, live, tomb;
    engine_lock(e);
    live = s->live_bytes;
    tomb = s->tomb_bytes;
    engine_unlock(e);
    if( live==0 && (tomb==0 || (j->prefix[j->cur] && !j->prefix_broken)) ){
      j->relies[j->cur] = tomb>0;
      continue;
    }
    for(;;){
      seg_scan_result r;
      rc = seg_scan_from(s, pos, s->end, collect, j, &r);
      collect_flush(j);        /* before the damage and the next input */
      if( rc || r.why==SCAN_EOF || r.why==SCAN_ZERO ) break;
      note_damage(j, s, r.stop, r.why==SCAN_BAD ? "checksum mismatch"
                                                : "bad header or length");
      j->damaged[j->cur] = 1;
      rc = seg_next_valid(s, r.stop, s->end, &pos);
      if( rc || pos>=s->end ) break;
    }
    if( j->damaged[j->cur] ){
      /* Its damage may hide tombstones: it can go only after every older
      ** segment, and tombstones after it must be kept. */
      j->relies[j->cur] = 1;
      j->prefix_broken = 1;
    }
  }
  return rc;
}

/* Order of copying: by key (bytewise, shorter first). */
static int mrec_cmp(const void *a, const void *b, void *arg){
  const uint8_t *sort_keys = arg;
  const mrec *x = a, *y = b;
  size_t n = x->klen<y->klen ? x->klen : y->klen;
  int c = n ? memcmp(sort_keys + x->koff, sort_keys + y->koff, n) : 0;
  if( c ) return c;
  if( x->klen!=y->klen ) return x->klen<y->klen ? -1 : 1;
  return x->src<y->src ? -1 : x->src>y->src;
}

/* Read record m from its input and check it against what the scan saw.
** *pval receives the value (in the map, or in *pbuf).  Caller has pinned
** the input (seg_pin), and keeps it pinned while it uses *pval. */
static int read_checked(merge_job *j, const mrec *m, const uint8_t **pval,
                        uint8_t **pbuf){
  tkv_segment *s = j->in[m->src];
  uint64_t size = tkv_rec_size(m->klen, m->vlen);
  const uint8_t *rec;
  tkv_rec_hdr h;
  int zero, rc;
  if( s->map && m->off + size <= s->map_len ){
    rec = s->map + m->off;
  }else{
    uint8_t *p = tkv_mem_realloc(*pbuf, (size_t)size);
    if( !p ) return tkv_err_nomem();
    *pbuf = p;
    rc = tkv_io_pread(s->fd, s->path, p, (size_t)size, m->off, NULL);
    if( rc ) return rc;
    rec = p;
  }
  if( tkv_rec_hdr_decode(rec, &h, &zero) || h.klen!=m->klen
   || h.vlen!=m->vlen
   || memcmp(rec + TKV_REC_HDR, j->keys + m->koff, m->klen)
   || tkv_rec_crc(rec, rec + TKV_REC_HDR, m->klen,
                  rec + TKV_REC_HDR + m->klen, m->vlen)!=h.crc ){
    return TKV_CORRUPT;
  }
  *pval = rec + TKV_REC_HDR + m->klen;
  return TKV_OK;
}

/* Step 3: copy the noted records in key order and sync the outputs.  The
** input being read is pinned (its descriptor and map stay open); the pin
** moves when the next record comes from another input. */
static int copy_records(merge_job *j){
  uint8_t *buf = NULL;
  tkv_segment *pinned = NULL;
  int rc = TKV_OK;
  if( j->nr>1 ) qsort_r(j->r, j->nr, sizeof *j->r, mrec_cmp, j->keys);
  for(size_t i=0; i<j->nr && !rc; i++){
    mrec *m = &j->r[i];
    const uint8_t *val;
    if( (i & 1023)==0 && atomic_load(&j->ms->stop) ){
      rc = tkv_err(TKV_BUSY, "merge stopped: the store is closing");
      break;
    }
    if( (i & 4095)==0 ) presync(j->e, j->ms);
    if( pinned!=j->in[m->src] ){
      if( pinned ) seg_unpin(pinned);
      pinned = NULL;
      rc = seg_pin(j->in[m->src]);
      if( rc ) break;
      pinned = j->in[m->src];
    }
    rc = read_checked(j, m, &val, &buf);
    if( rc==TKV_CORRUPT ){
      note_damage(j, j->in[m->src], m->off, "changed since it was scanned");
      j->damaged[m->src] = 1;
      m->skip = 1;
      rc = TKV_OK;
      continue;
    }
    if( !rc ){
      rc = out_put(&j->w, m->type, j->keys + m->koff, m->klen, val, m->vlen,
                   &m->to);
    }
  }
  if( pinned ) seg_unpin(pinned);
  tkv_mem_free(buf);
  if( !rc ) rc = out_finish(&j->w);
  return rc;
}

/*
** Step 4: outputs renamed, directory synced, then into the table.  They
** are renamed before they join the table, so that every name the table
** holds is final (a snapshot links files by those names under mu,
** snapshot.c) and no file operation happens under mu.  A renamed output
** outside the table is harmless: it only repeats values of the inputs,
** which stay in the table until step 6.
*/
static int commit_outputs(merge_job *j){
  tkv_engine *e = j->e;
  out_writer *w = &j->w;
  int rc = TKV_OK;
  for(int i=0; !rc && i<w->nout; i++){
    tkv_segment *s = w->outs[i];
    char path[4096];
    char *dup = NULL;
    rc = seg_name(path, sizeof path, e->dir, s->id, TKV_SUFFIX_SEG);
    if( !rc ){
      dup = tkv_mem_dup(path, strlen(path));
      if( !dup ) rc = tkv_err_nomem();
    }
    if( !rc ) rc = tkv_io_rename(s->path, path);
    if( rc ){
      tkv_mem_free(dup);
      break;
    }
    tkv_mem_free(s->path);
    s->path = dup;            /* out_discard removes it by this name */
  }
  if( !rc ) rc = tkv_io_sync_dir(e->dir);
  if( rc ) return rc;
  engine_lock(e);
  engine_wrlock(e);
  rc = seg_table_reserve(e, e->nseg + w->nout);
  for(int i=0; !rc && i<w->nout; i++){
    rc = seg_table_add(e, w->outs[i]);   /* cannot fail: room reserved */
  }
  if( !rc ) e->generation++;
  engine_wrunlock(e);
  if( !rc ) j->gen = share_merge_published(e);
  engine_unlock(e);
  if( rc ) return rc;
  for(int i=0; i<w->nout; i++) hint_write(e, w->outs[i]);
  return TKV_OK;
}

/* Step 5: repoint the entries whose record was copied and is still the
** latest, a batch at a time. */
static void switch_over(merge_job *j){
  tkv_engine *e = j->e;
  size_t i = 0;
  while( i<j->nr ){
    size_t end = i + SWITCH_BATCH < j->nr ? i + SWITCH_BATCH : j->nr;
    engine_lock(e);
    engine_wrlock(e);
    for(; i<end; i++){
      mrec *m = &j->r[i];
      kd_entry *en;
      tkv_loc loc;
      uint64_t size;
      if( m->type!=TKV_REC_PUT || m->skip ) continue;
      en = kd_entry_by_id(e->arena, m->id);
      if( !en || (kd_entry_flags(en) & ENTRY_NEW) || rtx_kept(e, en) ){
        continue;
      }
      loc = kd_entry_loc(en);
      if( loc.file!=j->in[m->src]->id || loc.off!=m->off ) continue;
      size = tkv_rec_size(m->klen, m->vlen);
      kd_entry_set_loc(en, m->to);
      j->in[m->src]->live_bytes -= size;
      seg_account(e, m->to, (int64_t)size);
    }
    engine_wrunlock(e);
    engine_unlock(e);
  }
}

/* Bytes on disk of a segment and its hint. */
static uint64_t seg_disk(const tkv_segment *s){
  return s->alloc + s->hint_bytes;
}

/*
** Before step 6: the records that made the inputs' dropped records stale
** are in other segments, and with sync=off may still be in the write
** buffer, or with sync=normal not yet on the disk.  Deleting an input
** before they are durable could lose a key's older value and its newer one
** at once.  Sealed segments were synced when sealed (seg_seal_active), so
** what is left is the active segment: its buffer is flushed under mu, and
** it is fdatasynced outside mu (pinned, so that its descriptor stays open
** even if it is sealed meanwhile), so that writers never wait for the
** disk here.  Then the directory.  Caller holds run_mu.
*/
static int make_rest_durable(merge_job *j){
  tkv_engine *e = j->e;
  tkv_segment *act;
  int rc;
  engine_lock(e);
  rc = seg_flush(e);
  act = e->active;
  if( !rc && act && e->opts.sync!=TKV_SYNC_FULL ) rc = seg_pin(act);
  else act = NULL;
  engine_unlock(e);
  if( act ){
    rc = tkv_io_sync(act->fd, act->path);
    seg_unpin(act);
    if( rc ){
      /* The next fdatasync of it might wrongly succeed (BROKEN_SYNC). */
      engine_lock(e);
      if( !e->broken ) e->broken = BROKEN_SYNC;
      engine_unlock(e);
    }
  }
  if( !rc ) rc = tkv_io_sync_dir(e->dir);
  return rc;
}

/*
** Delete the files of the pending inputs (ms->pend) that may go now, in
** order, each unlink made durable (directory sync) before the next: on a
** file system that keeps directory changes in any order, a younger
** input's removal (say, of a tombstone) must never last while an older
** one's (the value it deleted) is lost.  A file may go only once every
** process caught up with the generation that made it obsolete: until then
** another process may still read it (share_delete_begin).  After an I/O
** failure the rest go back into the table (a later merge takes them
** again).  Returns the disk bytes freed.  Caller holds run_mu, and the
** MERGE lock or the store alone, not mu.
*/
static uint64_t run_deletions(tkv_engine *e, merge_state *ms){
  int k, failed = 0, ok, held;
  uint64_t data = 0, disk = 0;
  if( ms->npend==0 ) return 0;
  engine_lock(e);
  /* A read transaction of this process that began before an input left
  ** the table may read it (its before-images): it goes after that one. */
  for(held=0; held<ms->npend && !rtx_holds(e, ms->pend[held].rstamp);
      held++){}
  ok = held>0 && share_delete_begin(e, ms->pend[0].gen);
  engine_unlock(e);
  if( !ok ) return 0;
  for(k=0; k<held; k++){
    tkv_segment *s = ms->pend[k].s;
    char hint[4096];
    if( k>0 && ms->pend[k].gen!=ms->pend[k-1].gen
     && !share_acked(e, ms->pend[k].gen) ){
      break;
    }
    if( tkv_io_unlink(s->path) ){ failed = 1; break; }
    if( !seg_name(hint, sizeof hint, e->dir, s->id, TKV_SUFFIX_HINT) ){
      tkv_io_unlink(hint);
    }
    /* A failed sync leaves the order unknown: the rest stay. */
    if( tkv_io_sync_dir(e->dir) ){ k++; failed = 1; break; }
  }
  engine_lock(e);
  engine_wrlock(e);
  for(int i=0; i<k; i++){
    tkv_segment *s = ms->pend[i].s;
    e->generation++;
    data += s->end - s->start;
    seg_limbo_remove(e, s);
  }
  e->total_bytes -= data;
  if( failed ){
    /* Their slots in the table were freed when they left: no allocation. */
    for(int i=k; i<ms->npend; i++){
      tkv_segment *s = ms->pend[i].s;
      seg_limbo_remove(e, s);
      if( seg_table_add(e, s) ) e->broken = BROKEN_UNDO;
      for(int r=0; r<e->nretired; r++){
        if( e->retired[r]==s->id ) e->retired[r] = e->retired[--e->nretired];
      }
    }
  }
  engine_wrunlock(e);
  share_delete_end(e, k>0);
  engine_unlock(e);
  for(int i=0; i<k; i++){
    disk += seg_disk(ms->pend[i].s);
    seg_free(ms->pend[i].s);
  }
  if( failed ){
    ms->npend = 0;
  }else{
    memmove(ms->pend, ms->pend + k, (size_t)(ms->npend - k) * sizeof *ms->pend);
    ms->npend -= k;
  }
  return disk;
}

/* Make the array *pa (capacity *pcap elements of `size` bytes) hold at
** least n.  0, or TKV_NOMEM (the array is unchanged). */
static int room_for(void **pa, int *pcap, int n, size_t size){
  void *p;
  if( n<=*pcap ) return TKV_OK;
  p = tkv_mem_realloc(*pa, (size_t)n * 2 * size);
  if( !p ) return tkv_err_nomem();
  *pa = p;
  *pcap = n * 2;
  return TKV_OK;
}

/*
** Step 6: the inputs that can go leave the table (together, under mu
** once) and join the pending deletions, which run_deletions carries out
** now or, while another process may still read them, later.
*/
static void delete_inputs(merge_job *j){
  tkv_engine *e = j->e;
  merge_state *ms = j->ms;
  int all_before_gone = 1;
  uint8_t *todo = j->todo;
  int rc = make_rest_durable(j);
  void *p;
  if( !rc ){
    p = ms->pend;
    rc = room_for(&p, &ms->pend_cap, ms->npend + j->nin, sizeof *ms->pend);
    ms->pend = p;
  }
  if( !rc ){
    engine_lock(e);
    p = e->retired;
    rc = room_for(&p, &e->retired_cap, e->nretired + j->nin,
                  sizeof *e->retired);
    e->retired = p;
    if( !rc ) rc = seg_limbo_reserve(e, j->nin);
    engine_unlock(e);
  }
  if( rc ){
    /* The inputs stay: they only repeat values the outputs hold. */
    engine_lock(e);
    e->last_compact_rc = rc;
    engine_unlock(e);
    return;
  }
  /* Which inputs go, decided and taken out of the table at once (under mu,
  ** as snapshot.c relies on: a segment in the table has its file).
  ** Nothing repoints into an input any more (only merges do, and one runs
  ** at a time), so their live_bytes cannot grow back. */
  engine_lock(e);
  engine_wrlock(e);
  for(int i=0; i<j->nin; i++){
    tkv_segment *s = j->in[i];
    int can = s->live_bytes==0
           && (!j->relies[i] || (j->prefix[i] && all_before_gone));
    if( can ) seg_table_remove(e, s);
    else all_before_gone = 0;
    if( !can && j->damaged[i] ) s->quarantined = 1;
    todo[i] = (uint8_t)can;
    if( can && (s->flags & TKV_SEG_COMPACTED) ){
      e->retired[e->nretired++] = s->id;
    }
    if( can ){
      ms->pend[ms->npend].s = s;
      ms->pend[ms->npend].gen = j->gen;
      ms->pend[ms->npend].rstamp = rtx_stamp(e);
      ms->npend++;
      seg_limbo_add(e, s);
    }
  }
  engine_wrunlock(e);
  engine_unlock(e);
  j->in_disk += run_deletions(e, ms);
}

static uint64_t now_usec(void){
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec*1000000u + (uint64_t)t.tv_nsec/1000u;
}

/*
** Run one merge of inputs in[0..nin) (replay order; taken from the table
** by the caller under mu).  prefix[i] tells whether every segment before
** in[i] in replay order is an input.  Caller holds ms->run_mu, not mu.
** *preclaimed receives the disk bytes freed, plus `sealed`: what sealing
** the active segment for this merge changed on disk (its reserved space
** given back, its hint written), which tkv_stats counted before.
*/
static int merge_run(tkv_engine *e, merge_state *ms, tkv_segment **in,
                     int nin, uint8_t *flags, int shared, int64_t sealed,
                     uint64_t *preclaimed){
  merge_job j;
  uint64_t start = now_usec(), out_disk = 0, out_data = 0;
  int rc;
  memset(&j, 0, sizeof j);
  j.e = e;
  j.ms = ms;
  j.in = in;
  j.nin = nin;
  j.prefix = flags;
  j.relies = flags + nin;
  j.damaged = flags + 2*(size_t)nin;
  j.todo = flags + 3*(size_t)nin;
  j.shared = shared;
  j.w.e = e;
  for(int i=0; i<nin; i++){
    if( in[i]->base>j.w.base ) j.w.base = in[i]->base;
  }
  j.w.buf = tkv_mem_alloc(OUT_BUF_SIZE);
  rc = j.w.buf ? TKV_OK : tkv_err_nomem();
  if( !rc ) rc = scan_inputs(&j);
  if( !rc ) rc = copy_records(&j);
  if( !rc ) rc = commit_outputs(&j);
  if( rc ){
    out_discard(&j.w);
  }else{
    for(int i=0; i<j.w.nout; i++){
      out_disk += seg_disk(j.w.outs[i]);
      out_data += j.w.outs[i]->end - j.w.outs[i]->start;
    }
    engine_lock(e);
    e->total_bytes += out_data;
    engine_unlock(e);
    switch_over(&j);
    delete_inputs(&j);
  }
  engine_lock(e);
  if( !rc ){
    int64_t net = (int64_t)j.in_disk - (int64_t)out_disk + sealed;
    uint64_t freed = net>0 ? (uint64_t)net : 0;
    e->compactions++;
    e->last_reclaimed = freed;
    ms->copied += j.w.bytes;
    ms->reclaimed += freed;
    if( preclaimed ) *preclaimed = freed;
  }
  ms->usec += now_usec() - start;
  engine_unlock(e);
  tkv_mem_free(j.w.outs);
  tkv_mem_free(j.w.buf);
  tkv_mem_free(j.r);
  tkv_mem_free(j.keys);
  return rc;
}

/* ------------------------------------------------ Choosing inputs. */

/* The merge state, made on first use.  Caller holds mu. */
static merge_state *state_of(tkv_engine *e){
  merge_state *ms = e->merge;
  if( ms ) return ms;
  ms = tkv_mem_calloc(1, sizeof *ms);
  if( !ms ) return NULL;
  pthread_cond_init(&ms->wake, NULL);
  pthread_cond_init(&ms->idle, NULL);
  pthread_mutex_init(&ms->run_mu, NULL);
  e->merge = ms;
  return ms;
}

/*
** Take the inputs of the next merge from the table: all sealed segments
** (full), or those the policy picks.  *pin and *pflags are new arrays
** (flags: MERGE_FLAGS*n bytes, prefix first); *pn = 0 when there is
** nothing to do.
** Caller holds mu.
*/
static int pick_inputs(tkv_engine *e, int full, int shared,
                       tkv_segment ***pin, uint8_t **pflags, int *pn){
  int n = 0, k = 0, all_before = 1, extra;
  uint32_t head = shared ? share_log_head(e) : 0, xbase = 0, xid = 0;
  tkv_segment **in = NULL;
  uint8_t *sel = NULL, *flags = NULL;
  mp_seg *ms = NULL;
  *pn = 0;
  for(int i=0; i<e->nseg; i++) if( e->segs[i]!=e->active ) n++;
  if( n==0 && (full || !e->active) ) return TKV_OK;
  sel = tkv_mem_calloc((size_t)n + 1, 1);
  if( !sel ) return tkv_err_nomem();
  if( full ){
    memset(sel, 1, (size_t)n);
    k = n;
  }else{
    mp_store st;
    mp_seg act;
    ms = tkv_mem_calloc((size_t)n + 1, sizeof *ms);
    if( !ms ){ tkv_mem_free(sel); return tkv_err_nomem(); }
    for(int i=0, x=0; i<e->nseg; i++){
      tkv_segment *s = e->segs[i];
      if( s==e->active ) continue;
      ms[x].size = s->end - s->start;
      ms[x].live = s->live_bytes;
      ms[x].tomb = s->tomb_bytes;
      ms[x].quarantined = s->quarantined;
      x++;
    }
    st.live = e->live_bytes;
    st.total = e->total_bytes;
    st.threshold = e->opts.compact_threshold;
    k = mp_pick(ms, n, &st, sel);
    if( k==0 && e->active && !e->writer && !shared ){
      memset(&act, 0, sizeof act);
      act.size = e->active->end - e->active->start;
      act.live = e->active->live_bytes;
      if( mp_rotate_active(&act, &st) && seg_seal_active(e)==TKV_OK ){
        /* It is sealed now: choose again with it among the candidates. */
        tkv_mem_free(ms);
        tkv_mem_free(sel);
        return pick_inputs(e, full, shared, pin, pflags, pn);
      }
    }else if( k==0 && e->active ){
      /* A transaction is open: the next one to begin seals it. */
      memset(&act, 0, sizeof act);
      act.size = e->active->end - e->active->start;
      act.live = e->active->live_bytes;
      if( mp_rotate_active(&act, &st) ) e->rotate_asap = 1;
    }
    tkv_mem_free(ms);
  }
  /* The segment other processes append to may look sealed here (a
  ** writer with a larger max_file_size goes on with it): never an input. */
  for(int i=0, x=0; head && i<e->nseg; i++){
    if( e->segs[i]==e->active ) continue;
    if( e->segs[i]->id==head && sel[x] ){ sel[x] = 0; k--; }
    x++;
  }
  /* Files not in the table (inputs of earlier merges waiting to be
  ** deleted) count as older segments that survive this merge. */
  extra = k>0 ? recover_oldest_extra(e, &xbase, &xid) : 0;
  if( k>0 ){
    in = tkv_mem_alloc((size_t)k * sizeof *in);
    flags = tkv_mem_calloc((size_t)k, MERGE_FLAGS);
    if( !in || !flags ){
      tkv_mem_free(in);
      tkv_mem_free(flags);
      tkv_mem_free(sel);
      return tkv_err_nomem();
    }
    for(int i=0, x=0, y=0; i<e->nseg; i++){
      tkv_segment *s = e->segs[i];
      if( s==e->active ) continue;
      if( extra && (xbase<s->base || (xbase==s->base && xid<s->id)) ){
        all_before = 0;
      }
      if( sel[x] ){
        flags[y] = (uint8_t)all_before;
        in[y++] = s;
      }else{
        all_before = 0;
      }
      x++;
    }
  }
  tkv_mem_free(sel);
  *pin = in;
  *pflags = flags;
  *pn = k;
  return TKV_OK;
}

/* ------------------------------------------------------ Entry points. */

/*
** Take the right to merge: the store alone (no other process has it open:
** the merge may seal the active segment, and deletes its inputs at once),
** or, while others have it open, the MERGE lock (waiting up to timeout_ms,
** < 0 not at all).  *pshared tells which.  Pending deletions of earlier
** merges go first, so that the table is what is on disk.  Caller holds
** run_mu and mu.
*/
static int merge_begin(tkv_engine *e, merge_state *ms, int timeout_ms,
                       int *pshared){
  int rc;
  *pshared = 0;
  if( share_compact_begin(e)!=TKV_OK ){
    rc = share_merge_begin(e, timeout_ms);
    if( rc ) return rc;
    *pshared = 1;
  }
  /* Files another process's merge deleted (one killed before it told the
  ** others so) are no inputs. */
  recover_drop_gone(e);
  if( ms->npend ){
    uint64_t freed;
    engine_unlock(e);
    freed = run_deletions(e, ms);
    engine_lock(e);
    ms->reclaimed += freed;
  }
  return TKV_OK;
}

static void merge_end(tkv_engine *e, int shared){
  if( shared ) share_merge_end(e);
  else share_compact_end(e);
}

/*
** tkv_compact: merge every segment now, dropping every stale record and
** tombstone.  Writers may go on meanwhile (their new segments are not
** inputs).  Refused while a transaction is open, as before: the active
** segment must be sealed first.  While other processes have the store open
** the caller sealed it (under the WRITE lock, store.c); the merge then
** waits up to timeout_ms for another process's merge.  Caller holds
** neither mu nor run_mu.
*/
int merge_all(tkv_engine *e, int timeout_ms, uint64_t *preclaimed){
  merge_state *ms;
  tkv_segment **in = NULL;
  uint8_t *flags = NULL;
  int64_t sealed = 0;
  int n = 0, rc, begun = 0, shared = 0;
  if( preclaimed ) *preclaimed = 0;
  engine_lock(e);
  ms = state_of(e);
  engine_unlock(e);
  if( !ms ) return tkv_err_nomem();
  pthread_mutex_lock(&ms->run_mu);
  engine_lock(e);
  if( e->writer ){
    rc = tkv_err(TKV_BUSY, "cannot compact %s: a transaction is open", e->dir);
  }else if( e->broken ){
    rc = tkv_err(TKV_BROKEN, "cannot compact %s: reopen the store", e->dir);
  }else if( (rc = merge_begin(e, ms, timeout_ms, &shared))==TKV_OK ){
    begun = 1;
    e->wrote = 1;
    if( !shared ){
      /* Alone on the store (share.c) until share_compact_end.  Disk use
      ** as tkv_stats saw it, before sealing gives back the active
      ** segment's reserved space and writes its hint. */
      tkv_segment *act = e->active;
      if( act ) sealed = (int64_t)seg_disk(act);
      rc = seg_seal_active(e);
      if( act && !rc ) sealed -= (int64_t)seg_disk(act);
    }
    if( !rc ) rc = pick_inputs(e, 1, shared, &in, &flags, &n);
  }
  engine_unlock(e);
  if( !rc && n>0 ){
    rc = merge_run(e, ms, in, n, flags, shared, sealed, preclaimed);
  }
  if( begun ){
    engine_lock(e);
    merge_end(e, shared);
    engine_unlock(e);
  }
  pthread_mutex_unlock(&ms->run_mu);
  tkv_mem_free(in);
  tkv_mem_free(flags);
  return rc;
}

/*
** Write the hint files of segments sealed since the last round (sealing
** leaves that to this thread, so that the commit that rotates a segment
** does not scan it).  Caller holds run_mu: no segment is freed meanwhile.
*/
static void write_due_hints(tkv_engine *e){
  for(;;){
    tkv_segment *s = NULL;
    engine_lock(e);
    for(int i=0; i<e->nseg && !s; i++){
      if( e->segs[i]->hint_due ){
        s = e->segs[i];
        s->hint_due = 0;
      }
    }
    engine_unlock(e);
    if( !s ) return;
    hint_write(e, s);     /* a failure only makes the next open scan */
  }
}

/* One round of the background thread: pick and run one merge.  Returns 1
** if a merge ran (there may be more to do), 0 if none was due. */
static int merge_once(tkv_engine *e, merge_state *ms){
  tkv_segment **in = NULL;
  uint8_t *flags = NULL;
  int n = 0, rc, begun = 0, shared = 0, left;
  pthread_mutex_lock(&ms->run_mu);
  presync(e, ms);
  write_due_hints(e);
  engine_lock(e);
  /* Another process merging (or a transaction of this one open while
  ** another merged): nothing is due now. */
  begun = !e->broken && merge_begin(e, ms, -1, &shared)==TKV_OK;
  rc = e->broken ? TKV_BROKEN : !begun ? TKV_OK
     : pick_inputs(e, 0, shared, &in, &flags, &n);
  engine_unlock(e);
  if( !rc && n>0 ) rc = merge_run(e, ms, in, n, flags, shared, 0, NULL);
  if( begun ){
    engine_lock(e);
    merge_end(e, shared);
    engine_unlock(e);
  }
  left = ms->npend;
  pthread_mutex_unlock(&ms->run_mu);
  tkv_mem_free(in);
  tkv_mem_free(flags);
  engine_lock(e);
  /* Nothing was due: commits need not wake the thread again until a
  ** quarter threshold more is stale (sealing a segment always does). */
  ms->quiet_until = (!rc && n==0) ? e->total_bytes - e->live_bytes
                                    + e->opts.compact_threshold/4 : 0;
  ms->retry = left>0;
  if( rc!=TKV_BROKEN || n>0 ){
    e->last_compact_rc = rc;
    /* After a failure, wait for another threshold of stale bytes. */
    e->compact_retry_at = rc ? e->total_bytes - e->live_bytes
                               + e->opts.compact_threshold : 0;
  }
  engine_unlock(e);
  return !rc && n>0;
}

static void *merge_thread(void *arg){
  tkv_engine *e = arg;
  merge_state *ms = e->merge;
  engine_lock(e);
  for(;;){
    while( !ms->pending && !ms->stop && !atomic_load(&ms->presync_due) ){
      if( ms->retry ){
        /* Deletions wait for other processes to catch up: look again
        ** now and then. */
        struct timespec at;
        clock_gettime(CLOCK_REALTIME, &at);
        at.tv_nsec += RETRY_MS * 1000000L;
        if( at.tv_nsec>=1000000000L ){ at.tv_sec++; at.tv_nsec -= 1000000000L; }
        if( engine_timedwait(e, &ms->wake, &at)==ETIMEDOUT ) ms->pending = 1;
      }else{
        engine_wait(e, &ms->wake);
      }
    }
    if( ms->stop ) break;
    ms->busy = 1;
    if( !ms->pending ){
      /* Only the active segment to sync ahead of its sealing. */
      engine_unlock(e);
      pthread_mutex_lock(&ms->run_mu);
      presync(e, ms);
      pthread_mutex_unlock(&ms->run_mu);
      engine_lock(e);
      ms->busy = 0;
      pthread_cond_broadcast(&ms->idle);
      continue;
    }
    ms->pending = 0;
    engine_unlock(e);
    while( merge_once(e, ms) ){
      int stop;
      engine_lock(e);
      stop = ms->stop;
      engine_unlock(e);
      if( stop ) break;
    }
    engine_lock(e);
    ms->busy = 0;
    pthread_cond_broadcast(&ms->idle);
  }
  ms->busy = 0;
  pthread_cond_broadcast(&ms->idle);
  engine_unlock(e);
  return NULL;
}

/* Start the merge thread if it is not running; 0 when it runs.  Caller
** holds mu. */
static int start_thread(tkv_engine *e, merge_state *ms, uint64_t stale){
  if( ms->stop ) return 1;
  if( !ms->started ){
    if( pthread_create(&ms->thread, NULL, merge_thread, e) ){
      e->last_compact_rc = TKV_NOMEM;
      e->compact_retry_at = stale + e->opts.compact_threshold;
      return 1;
    }
    ms->started = 1;
  }
  return 0;
}

/* Wake the merge thread, starting it the first time.  Caller holds mu. */
static void wake(tkv_engine *e, uint64_t stale){
  merge_state *ms;
  ms = state_of(e);
  if( !ms ){
    e->last_compact_rc = TKV_NOMEM;
    e->compact_retry_at = stale + e->opts.compact_threshold;
    return;
  }
  if( start_thread(e, ms, stale) ) return;
  if( !ms->pending ){
    ms->pending = 1;
    pthread_cond_signal(&ms->wake);
  }
}

/*
** Called after every commit (caller holds mu): wake the merge thread when
** stale bytes passed the threshold.  Costs a comparison otherwise; never
** merges itself.
*/
void merge_notify(tkv_engine *e){
  uint64_t stale = e->total_bytes - e->live_bytes;
  tkv_segment *a = e->active;
  if( e->opts.compact_threshold==UINT64_MAX || e->broken ) return;
  if( a && e->opts.sync!=TKV_SYNC_FULL
   && a->end >= e->opts.max_file_size - e->opts.max_file_size/PRESYNC_LEFT
   && (!e->merge || e->merge->presync_id!=a->id) ){
    merge_state *ms = state_of(e);
    /* Nearly full: have it synced ahead of its sealing (presync). */
    if( ms && !start_thread(e, ms, stale) ){
      ms->presync_id = a->id;
      atomic_store(&ms->presync_due, 1);
      pthread_cond_signal(&ms->wake);
    }
  }
  if( stale<e->opts.compact_threshold || stale<e->compact_retry_at ) return;
  if( e->merge && stale<e->merge->quiet_until ) return;
  wake(e, stale);
}

/*
** Segment s was just sealed (caller holds mu): its hint file is written by
** the merge thread, or here when automatic merging is off.
*/
void merge_sealed(tkv_engine *e, tkv_segment *s){
  if( e->opts.compact_threshold==UINT64_MAX ){
    hint_write(e, s);
    return;
  }
  s->hint_due = 1;
  wake(e, e->total_bytes - e->live_bytes);
}

/*
** Stop the merge thread (a merge under way stops before its commit point,
** or finishes if past it), write the hints still due, and free the merge
** state.  Called by the last close, holding no lock.
*/
void merge_stop(tkv_engine *e){
  merge_state *ms = e->merge;
  if( !ms ) return;
  engine_lock(e);
  ms->stop = 1;
  pthread_cond_signal(&ms->wake);
  engine_unlock(e);
  if( ms->started ) pthread_join(ms->thread, NULL);
  /* Hints still due make the next open faster; nobody else uses the
  ** engine any more. */
  pthread_mutex_lock(&ms->run_mu);
  write_due_hints(e);
  if( ms->npend ){
    /* A last try; what cannot go yet stays on disk, where a later merge
    ** (of any process, after its next open) finds it dead and takes it. */
    int begun, shared;
    engine_lock(e);
    begun = merge_begin(e, ms, -1, &shared)==TKV_OK;
    if( begun ) merge_end(e, shared);
    engine_unlock(e);
    /* No reader is left to look in the limbo. */
    e->nlimbo = 0;
    for(int i=0; i<ms->npend; i++) seg_free(ms->pend[i].s);
    ms->npend = 0;
  }
  tkv_mem_free(ms->pend);
  pthread_mutex_unlock(&ms->run_mu);
  pthread_cond_destroy(&ms->wake);
  pthread_cond_destroy(&ms->idle);
  pthread_mutex_destroy(&ms->run_mu);
  tkv_mem_free(ms);
  e->merge = NULL;
}

/*
** Wait until the merge thread has nothing left to do (tests and
** benchmarks use it through tkv_test_merge_wait).  Caller holds no lock.
*/
void merge_wait_idle(tkv_engine *e){
  merge_state *ms;
  engine_lock(e);
  ms = e->merge;
  while( ms && ms->started && (ms->pending || ms->busy) ){
    engine_wait(e, &ms->idle);
  }
  engine_unlock(e);
}

/* Fill the merge fields of *st.  Caller holds mu. */
void merge_stats(tkv_engine *e, tkv_stats *st){
  merge_state *ms = e->merge;
  uint64_t written = atomic_load(&e->bytes_written);
  st->merges = e->compactions;
  st->dead_ratio = e->total_bytes
      ? (double)(e->total_bytes - e->live_bytes) / (double)e->total_bytes : 0;
  st->bytes_written = written;
  st->user_bytes = e->user_bytes;
  st->write_amp = e->user_bytes ? (double)written / (double)e->user_bytes : 0;
  if( !ms ) return;
  st->merge_bytes_copied = ms->copied;
  st->merge_bytes_reclaimed = ms->reclaimed;
  st->merge_usec = ms->usec;
  st->merge_damaged = ms->damaged;
  memcpy(st->merge_note, ms->note, sizeof st->merge_note);
}

/* Test hook (testhook.h): wait until background merging is idle. */
void tkv_test_merge_wait(tkv_db *db){
  merge_wait_idle(db->e);
}
