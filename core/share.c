/*
** Several processes on one store.  Each process has its own engine (keydir,
** segment table); what they share is the directory's files and a small
** area at the start of LOCK, mapped by every process that has the store
** open.  The area says where the committed log ends (the position: newest
** segment id and the end of its committed records), which every writer
** updates after each transaction, and which process is writing now.
**
** Locks (open-file-description byte-range locks on LOCK, which the kernel
** drops when the process dies, so a crash blocks nobody):
**   OPEN byte   held shared by every open engine for its whole life.  Held
**               exclusively for a moment by the first process to open
**               (it alone recovers the store from its files and writes
**               the area), and by a merge that finds no other process
**               (it then deletes its inputs at once, as before sharing).
**   WRITE byte  held exclusively for the length of one write transaction.
**               The taker first catches up with what others committed and
**               then appends at the published end, so one log serves all.
**   MERGE byte  held exclusively by the merge that runs while others have
**               the store open: one at a time per store.
**   LOAD byte   shared while a process lists and loads the directory to
**               open the store; exclusively while a merge deletes files.
**   generation  2^32 + g, held shared by each process whose table is
**               current to merge generation g ("acknowledged").
** Readers take no lock at all: before a read, a cursor or a transaction
** they compare the published position (and generation) with the ones
** their keydir is current to and, when the log moved, read the records
** appended since (recover_follow): only whole committed transactions, at a
** cost in proportion to what changed.
**
** Merges.  Segment ids come from one counter in the area (segment.c,
** seg_new_id), so a merge's outputs and the log's segments never collide.
** A merge renames its outputs into place and publishes a new generation;
** the others, before their next read, list the new outputs, then read the
** log up to the position published after that, then apply the outputs
** (recover_apply_outputs).  The merge's inputs are deleted only when no
** process holds an older generation's lock (every keydir has moved off
** them) and none is loading the directory: until then they wait in the
** merger's list (merge.c).  So no process ever reads a deleted file.
**
** A writer that died in the middle of a transaction left its pid in the
** area and maybe bytes past the published end (or a new segment past the
** published one): the next writer cuts them off (takeover) before it
** appends.  The position only ever names bytes that were written to the
** file with every record before them, so a reader never sees a
** transaction in part.
*/
#include "engine.h"
#include "readtxn.h"
#include "err.h"
#include "io.h"
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SHARE_MAGIC    "tinkvSHM"
#define SHARE_VERSION  2
#define SHARE_SIZE     4096          /* LOCK is this long; the area is first */
#define LOCK_OPEN_BYTE  4096         /* byte-range lock offsets (past the area) */
#define LOCK_WRITE_BYTE 4097
#define LOCK_MERGE_BYTE 4098
#define LOCK_LOAD_BYTE  4099
#define LOCK_ACK_BASE   ((off_t)1 << 32)  /* + a generation: its readers */

/* The area at offset 0 of LOCK (FORMAT.md, "The lock file"). */
struct share_area {
  char magic[8];
  uint32_t version;
  _Atomic uint32_t top;       /* highest segment id handed out */
  _Atomic uint64_t pos;       /* SHARE_POS(newest segment id, committed end) */
  _Atomic uint64_t gen;       /* bumped by each change of the segment set
                              ** that a merge makes */
  _Atomic uint32_t writer;    /* pid in a write transaction, or 0 */
};

#define SHARE_POS(id, end) (((uint64_t)(id) << 32) | (uint64_t)(uint32_t)(end))
#define POS_ID(p)  ((uint32_t)((p) >> 32))
#define POS_END(p) ((uint64_t)(uint32_t)(p))

/* Set (F_WRLCK, F_RDLCK) or release (F_UNLCK) the lock on bytes
** [at, at+len) without waiting (cmd F_OFD_SETLK), or waiting (F_OFD_SETLKW):
** 0, or the errno (EAGAIN when another process has it). */
static int lock_bytes(int fd, int cmd, short type, off_t at, off_t len){
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = at;
  fl.l_len = len;
  while( fcntl(fd, cmd, &fl) ){
    if( errno==EINTR ) continue;
    return errno==EACCES ? EAGAIN : errno;
  }
  return 0;
}

/* The one-byte lock at `at`, without waiting. */
static int range_lock(int fd, short type, off_t at){
  return lock_bytes(fd, F_OFD_SETLK, type, at, 1);
}

static uint64_t now_ms(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec*1000 + (uint64_t)ts.tv_nsec/1000000;
}

/* Sleep a little longer each time, up to 2 ms (a waiter polls: the locks
** have no timed wait). */
static void nap(unsigned *us){
  struct timespec ts = { 0, (long)*us * 1000 };
  nanosleep(&ts, NULL);
  if( *us<2000 ) *us *= 2;
}

/* Take the one-byte lock at `at` exclusively, polling (from us
** microseconds, doubling) up to timeout_ms (<= 0: one try).  mu is let go
** while waiting.  0, or the errno (EAGAIN: another process has it).
** Caller holds mu. */
static int lock_waiting(tkv_engine *e, off_t at, int timeout_ms, unsigned us){
  int err = range_lock(e->lock_fd, F_WRLCK, at);
  if( err==EAGAIN && timeout_ms>0 ){
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    engine_unlock(e);
    do{
      nap(&us);
      err = range_lock(e->lock_fd, F_WRLCK, at);
    }while( err==EAGAIN && now_ms()<deadline );
    engine_lock(e);
  }
  return err;
}

/* Where this engine's log ends, as other processes should see it.  Caller
** holds mu (or is recovering). */
static uint64_t engine_pos(tkv_engine *e){
  tkv_segment *s = e->active;
  uint32_t id = 0;
  uint64_t end = 0;
  if( s ) return SHARE_POS(s->id, e->commit_end);
  for(int i=0; i<e->nseg; i++){
    /* The log's newest segment: a merge output (outputs may take higher
    ** ids) is never the one writers append to. */
    if( e->segs[i]->flags & TKV_SEG_COMPACTED ) continue;
    if( e->segs[i]->id>=id ){
      id = e->segs[i]->id;
      end = e->segs[i]->end;
    }
  }
  return SHARE_POS(id, end);
}

/*
** Map the area (once).  Mapping a LOCK shorter than the area would fault
** on access: a LOCK that short is one the first opener has not extended
** yet, or a foreign file.  0, or a TKV_* error.
*/
static int area_map(tkv_engine *e){
  uint64_t size;
  void *p;
  if( e->sh ) return TKV_OK;
  if( tkv_io_size(e->lock_fd, e->dir, &size) ) return TKV_IO;
  if( size<SHARE_SIZE ) return TKV_BUSY;
  p = mmap(NULL, SHARE_SIZE, PROT_READ|PROT_WRITE, MAP_SHARED, e->lock_fd, 0);
  if( p==MAP_FAILED ){
    return tkv_err_sys(errno, "cannot map the lock file of", e->dir);
  }
  e->sh = p;
  e->id_top = &e->sh->top;    /* segment.c hands out ids from it */
  return TKV_OK;
}

/* 1 if the area was published by a first opener that finished its
** recovery (share_opened), 0 if not (yet), -1 if it is of another
** version. */
static int area_ready(tkv_engine *e){
  uint32_t v;
  if( memcmp(e->sh->magic, SHARE_MAGIC, 8) ) return 0;
  v = __atomic_load_n(&e->sh->version, __ATOMIC_ACQUIRE);
  return v==SHARE_VERSION ? 1 : v==0 ? 0 : -1;
}

/*
** Take the OPEN lock: exclusively if no other process has the store open
** (*palone = 1), else shared.  An exclusive holder (a first open still
** recovering, a compaction) makes us wait up to timeout_ms.  Taking it
** shared is trusted only once the area says a first opener finished (it
** may have died recovering, after clearing the area, between our two
** tries): else we let go and try again, to become the first opener
** ourselves.  Then the area is mapped.  Caller holds LOCK's flock (shared)
** and e->lock_fd.
*/
int share_attach(tkv_engine *e, int timeout_ms, int *palone){
  uint64_t deadline = now_ms() + (uint64_t)(timeout_ms>0 ? timeout_ms : 0);
  unsigned us = 50;
  int err, rc, ready = 0, fd = e->lock_fd;
  for(;;){
    err = range_lock(fd, F_WRLCK, LOCK_OPEN_BYTE);
    if( !err ){ *palone = 1; break; }
    if( err==EAGAIN ) err = range_lock(fd, F_RDLCK, LOCK_OPEN_BYTE);
    if( !err ){
      rc = area_map(e);
      if( rc && rc!=TKV_BUSY ) return rc;
      ready = rc ? 0 : area_ready(e);
      if( ready>0 ){ *palone = 0; break; }
      range_lock(fd, F_UNLCK, LOCK_OPEN_BYTE);
      err = EAGAIN;
    }
    if( err!=EAGAIN ) return tkv_err_sys(err, "cannot lock", e->dir);
    if( now_ms()>=deadline ){
      if( ready<0 ){
        return tkv_err(TKV_CORRUPT, "the lock file of %s does not hold a "
                       "shared area of version %d", e->dir, SHARE_VERSION);
      }
      return tkv_err(TKV_BUSY, "store %s is being recovered or compacted by "
                     "another process", e->dir);
    }
    nap(&us);
  }
  if( *palone ){
    uint64_t size;
    if( tkv_io_size(fd, e->dir, &size) ) return TKV_IO;
    if( size<SHARE_SIZE && ftruncate(fd, SHARE_SIZE) ){
      return tkv_err_sys(errno, "cannot extend the lock file of", e->dir);
    }
    rc = area_map(e);
    if( rc ) return rc==TKV_BUSY ? tkv_err(TKV_IO, "the lock file of %s is "
                                           "too short", e->dir) : rc;
    /* The first one in: whatever the area says is from processes that
    ** are gone.  It is cleared now and published by share_opened, after
    ** recovery; until then a process that takes OPEN shared (after we
    ** died) does not trust it. */
    __atomic_store_n(&e->sh->version, 0, __ATOMIC_RELEASE);
    memset((void*)e->sh, 0, sizeof *e->sh);
    memcpy(e->sh->magic, SHARE_MAGIC, 8);
  }
  return TKV_OK;
}

/*
** Hold the read lock of generation g (its "acknowledgement": this process
** reads no segment that a merge of generation g or earlier made obsolete,
** so those may be deleted once no process holds an older one).  0, or a
** TKV_* error.  Caller holds mu (or is opening).
*/
static int ack_set(tkv_engine *e, uint64_t g){
  int err;
  if( e->acked && e->ack_gen==g ) return TKV_OK;
  err = range_lock(e->lock_fd, F_RDLCK, LOCK_ACK_BASE + (off_t)g);
  if( err ) return tkv_err_sys(err, "cannot lock", e->dir);
  if( e->acked ) range_lock(e->lock_fd, F_UNLCK,
                            LOCK_ACK_BASE + (off_t)e->ack_gen);
  e->ack_gen = g;
  e->acked = 1;
  return TKV_OK;
}

/* Nonzero if no other process holds the read lock of a generation before
** g (each has caught up with generation g or later). */
static int acked_by_all(tkv_engine *e, uint64_t g){
  struct flock fl;
  if( g==0 ) return 1;
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = LOCK_ACK_BASE;
  fl.l_len = (off_t)g;
  if( fcntl(e->lock_fd, F_OFD_GETLK, &fl) ) return 0;
  return fl.l_type==F_UNLCK;
}

/*
** A process that opens while others have the store open: take the merge
** generation it starts from (acknowledged, so that nothing it may read is
** deleted) and the LOAD lock, shared, for as long as it lists and loads
** the directory: a merge deletes files only holding LOAD exclusively, so
** the files it lists stay there until it has read them.  The wait is a
** merge's unlinks.  Caller is opening (no other thread knows e).
*/
int share_load_begin(tkv_engine *e){
  uint64_t g = atomic_load(&e->sh->gen);
  int rc = ack_set(e, g), err;
  if( rc ) return rc;
  atomic_store(&e->seen_gen, g);
  err = lock_bytes(e->lock_fd, F_OFD_SETLKW, F_RDLCK, LOCK_LOAD_BYTE, 1);
  return err ? tkv_err_sys(err, "cannot lock", e->dir) : TKV_OK;
}

void share_load_end(tkv_engine *e){
  range_lock(e->lock_fd, F_UNLCK, LOCK_LOAD_BYTE);
}

/* The position a process that opens after the first one recovers up to. */
void share_position(tkv_engine *e, uint32_t *pid, uint64_t *pend){
  uint64_t pos = atomic_load(&e->sh->pos);
  *pid = POS_ID(pos);
  *pend = POS_END(pos);
  atomic_store(&e->seen, pos);
}

/*
** Recovery is done.  The first process publishes where the log ends and
** lets the others in (the OPEN lock becomes shared).  `owns_tail` says
** that its recovery cut whatever followed the log (a read-only first open
** leaves that to the next writer).
*/
int share_opened(tkv_engine *e, int alone, int owns_tail){
  if( alone ){
    uint64_t pos = engine_pos(e);
    atomic_store(&e->sh->pos, pos);
    atomic_store(&e->seen, pos);
    e->own = owns_tail ? pos : 0;
    atomic_store(&e->sh->top, e->next_id - 1);
    atomic_store(&e->seen_gen, 0);
    if( ack_set(e, 0) ) return TKV_IO;
    __atomic_store_n(&e->sh->version, SHARE_VERSION, __ATOMIC_RELEASE);
    if( range_lock(e->lock_fd, F_RDLCK, LOCK_OPEN_BYTE) ){
      return tkv_err_sys(errno, "cannot lock", e->dir);
    }
  }
  return TKV_OK;
}

/* Unmap the area (the locks go with the descriptor). */
void share_detach(tkv_engine *e){
  if( e->sh ) munmap((void*)e->sh, SHARE_SIZE);
  e->sh = NULL;
  e->id_top = NULL;
}

/* Nonzero when another process committed since this keydir was current.
** Needs no lock: a reader calls share_follow under mu when it says so. */
int share_stale(tkv_engine *e){
  return e->sh && (atomic_load(&e->sh->pos)!=atomic_load(&e->seen)
                   || atomic_load(&e->sh->gen)!=atomic_load(&e->seen_gen));
}

/* What tkv_data_version returns: the published position the keydir is
** current to.  Every commit (of this or another process) and every
** compaction publishes a later one, and it never goes back.  Caller holds
** mu. */
uint64_t share_version(tkv_engine *e){
  ASSERT_MU(e);
  return atomic_load(&e->seen);
}

/* Read what other processes committed up to the published position. */
static int follow_log(tkv_engine *e){
  uint64_t pos = atomic_load(&e->sh->pos);
  int rc;
  if( pos==atomic_load(&e->seen) ) return TKV_OK;
  rc = recover_follow(e, POS_ID(atomic_load(&e->seen)), POS_ID(pos),
                      POS_END(pos));
  if( !rc ) atomic_store(&e->seen, pos);
  return rc;
}

/*
** Catch up with the log and, when `gens`, with the merges other processes
** made (a new generation): their outputs are listed first, then the log
** is read up to the position published after that, and only then are the
** outputs applied, so the keydir is at least as current as the merge that
** wrote them was (recover_apply_outputs says why that matters).  Segments
** merges deleted leave the table.  Caller holds mu; no transaction of this
** process has written.
*/
static int follow(tkv_engine *e, int gens){
  uint64_t g = atomic_load(&e->sh->gen);
  uint32_t *ids = NULL;
  int n = 0, rc;
  ASSERT_MU(e);
  if( !gens || g==atomic_load(&e->seen_gen) ) return follow_log(e);
  rc = recover_list_outputs(e, &ids, &n);
  if( !rc ) rc = follow_log(e);
  if( !rc ) rc = recover_apply_outputs(e, ids, n);
  tkv_mem_free(ids);
  if( !rc ) recover_drop_gone(e);
  /* While a read transaction is open, the merge's inputs must stay: its
  ** before-images may point into them.  The acknowledgement waits for the
  ** last one to end (share_ack_seen). */
  if( !rc && !rtx_any(e) ) rc = ack_set(e, g);
  if( !rc ) atomic_store(&e->seen_gen, g);
  return rc;
}

/* The last read transaction ended: acknowledge the generation the table
** is current to, so that the merges it held back may delete their inputs.
** A failure leaves the older one held, which only delays them.  Caller
** holds mu. */
void share_ack_seen(tkv_engine *e){
  ASSERT_MU(e);
  if( e->sh && e->acked ) (void)ack_set(e, atomic_load(&e->seen_gen));
}

/* Catch the keydir up with what other processes committed and merged.
** While a transaction of this process is open (it holds the WRITE lock,
** so the log cannot move) merges are applied later.  Caller holds mu. */
int share_follow(tkv_engine *e){
  ASSERT_MU(e);
  if( !e->sh ) return TKV_OK;
  return follow(e, !e->wlocked);
}

/*
** Make the active segment this process's to append to, after another
** process wrote it (or died writing it): its size, its sync area, the
** buffer position, and no bytes past the published end (a dead writer's
** unfinished transaction, or a commit it synced but never published:
** neither was ever visible, so neither counts).  A newer segment that a
** dead writer created and never published is removed.  Caller holds mu,
** the WRITE lock, and has followed to the published position.
*/
static int takeover(tkv_engine *e){
  uint64_t pos = atomic_load(&e->sh->pos);
  tkv_segment *s = e->active;
  char path[4096];
  int rc;
  ASSERT_MU(e);
  if( e->next_id<=POS_ID(pos) ) e->next_id = POS_ID(pos) + 1;
  /* A writer that died may have made a segment past the published one:
  ** its id is among those handed out since (the counter), beside the ids
  ** of merge outputs, which count, and of merges still writing theirs
  ** (*.seg.tmp), which are not looked at. */
  for(uint32_t k = POS_ID(pos) + 1;
      atomic_load(&e->sh->writer)!=0 && k<=atomic_load(&e->sh->top); k++){
    if( seg_find(e, k)
     || seg_name(path, sizeof path, e->dir, k, TKV_SUFFIX_SEG)
     || access(path, F_OK)!=0 || recover_is_output(e, k) ){
      continue;
    }
    rc = tkv_io_unlink(path);
    if( rc ) return rc;
    e->dir_dirty = 1;
  }
  if( s ){
    uint8_t area[TKV_SEG_DATA], head[TKV_REC_HDR];
    static const uint8_t zero[TKV_REC_HDR];
    uint64_t size, end = POS_END(pos);
    size_t got = 0;
    uint32_t d;
    assert( s->id==POS_ID(pos) && e->buf_len==0 );
    rc = seg_pin(s);
    if( rc ) return rc;
    rc = tkv_io_size(s->fd, s->path, &size);
    if( !rc && s->version>=2 ){
      rc = tkv_io_pread(s->fd, s->path, area, sizeof area, 0, &got);
      if( !rc && got==sizeof area ){
        tkv_sync_area_decode(area + TKV_FILE_HDR, &d, &s->sync_seq);
        s->durable = d;
      }
    }
    got = 0;
    if( !rc && size>end ){
      rc = tkv_io_pread(s->fd, s->path, head, sizeof head, end, &got);
    }
    seg_unpin(s);
    if( rc ) return rc;
    s->alloc = size;
    s->end = end;
    s->synced_end = s->durable<end ? s->durable : end;
    s->unsynced = 0;
    e->buf_off = e->commit_end = end;
    atomic_store(&s->flushed, end);
    /* Zeros follow the data unless a writer died past it. */
    s->written_hi = (got && memcmp(head, zero, got)) || s->durable>end
                  ? size : end;
    if( s->written_hi>end || s->durable>end ){
      rc = seg_rewind(e, end);
      if( rc ) return rc;
    }
  }
  e->own = pos;
  return TKV_OK;
}

/*
** Take the WRITE lock for a transaction of this process (whose handle holds
** the writer slot), waiting up to timeout_ms (< 0: not at all) while
** another process has it; then catch up and take over the log's end.
** TKV_BUSY names the process that holds it.  Caller holds mu, which is let
** go while waiting.
*/
int share_write_begin(tkv_engine *e, int timeout_ms){
  int err, rc;
  ASSERT_MU(e);
  if( !e->sh || e->wlocked ) return TKV_OK;
  err = lock_waiting(e, LOCK_WRITE_BYTE, timeout_ms, 20);
  if( err==EAGAIN ){
    return tkv_err(TKV_BUSY, "store %s is locked by a write transaction of "
                   "process %u (waited %d ms)", e->dir,
                   (unsigned)atomic_load(&e->sh->writer),
                   timeout_ms>0 ? timeout_ms : 0);
  }
  if( err ) return tkv_err_sys(err, "cannot lock", e->dir);
  e->wlocked = 1;
  rc = follow(e, 1);        /* nothing of the transaction is written yet */
  if( !rc && (atomic_load(&e->sh->pos)!=e->own
              || atomic_load(&e->sh->writer)!=0) ){
    rc = takeover(e);
  }
  if( rc ){
    range_lock(e->lock_fd, F_UNLCK, LOCK_WRITE_BYTE);
    e->wlocked = 0;
    return rc;
  }
  atomic_store(&e->sh->writer, (uint32_t)getpid());
  return TKV_OK;
}

/*
** The transaction is over (committed or rolled back): hand everything
** committed to the OS, publish the new end and let the next writer in.
** Caller holds mu.
*/
void share_write_end(tkv_engine *e){
  uint64_t pos;
  ASSERT_MU(e);
  if( !e->sh || !e->wlocked ) return;
  if( e->buf_len && seg_flush(e) ){
    /* Committed here but not in the file: others would append over it. */
    e->broken = BROKEN_UNDO;
  }
  pos = engine_pos(e);
  atomic_store(&e->sh->pos, pos);
  atomic_store(&e->seen, pos);
  e->own = pos;
  atomic_store(&e->sh->writer, 0);
  range_lock(e->lock_fd, F_UNLCK, LOCK_WRITE_BYTE);
  e->wlocked = 0;
}

/*
** Make everything committed so far durable (tkv_sync, the last close).
** The active segment's sync area may only be written by the writer, so
** this takes the WRITE lock if no other process has it; if one has, it
** syncs what this process wrote without touching the sync area (the
** writer's own syncs keep that current).  Caller holds mu.
*/
int share_sync_all(tkv_engine *e, int closing){
  int rc, here = 0;
  ASSERT_MU(e);
  if( !e->sh || e->wlocked ) return seg_sync_all(e, closing);
  if( share_write_begin(e, -1)==TKV_OK ) here = 1;
  rc = seg_sync_all(e, here ? closing : -1);
  if( here ) share_write_end(e);
  return rc;
}

/*
** A compaction rewrites every segment, so it runs only while no other
** process has the store open: upgrade the OPEN lock, or fail with
** TKV_BUSY.  Processes that had it open before may have written since
** this one last looked: catch up and take the log's end first.
** share_compact_end publishes the result.  Caller holds mu.
*/
int share_compact_begin(tkv_engine *e){
  int rc;
  ASSERT_MU(e);
  if( !e->sh ) return TKV_OK;
  if( range_lock(e->lock_fd, F_WRLCK, LOCK_OPEN_BYTE) ){
    return tkv_err(TKV_BUSY, "cannot compact %s while other processes have "
                   "it open", e->dir);
  }
  if( e->wlocked ) return TKV_OK;   /* this process writes: it is current */
  rc = share_follow(e);
  if( !rc && (atomic_load(&e->sh->pos)!=e->own
              || atomic_load(&e->sh->writer)!=0) ){
    rc = takeover(e);
  }
  if( rc ) range_lock(e->lock_fd, F_RDLCK, LOCK_OPEN_BYTE);
  return rc;
}

void share_compact_end(tkv_engine *e){
  tkv_segment *a = e->active;
  uint64_t pos;
  ASSERT_MU(e);
  if( !e->sh ) return;
  /* Publish where the log ends now, even while a transaction of this
  ** process is open (its records lie past commit_end, which is in the
  ** file: the last commit flushed): the merge may have removed the segment
  ** the old position named, and the next process to open must find the
  ** outputs beside the segment it names (recover_store). */
  if( !a || atomic_load(&a->flushed)>=e->commit_end ){
    pos = engine_pos(e);
    atomic_store(&e->sh->pos, pos);
    atomic_store(&e->seen, pos);
    e->own = pos;
  }
  pos = atomic_fetch_add(&e->sh->gen, 1) + 1;
  /* (A read transaction of this process holds the acknowledgement back.) */
  if( rtx_any(e) || ack_set(e, pos)==TKV_OK ) atomic_store(&e->seen_gen, pos);
  range_lock(e->lock_fd, F_RDLCK, LOCK_OPEN_BYTE);
}

/*
** Merges while other processes have the store open.  One runs at a time
** store-wide (the MERGE lock, waited for up to timeout_ms, < 0 not at
** all).  The merger first catches up with the log and with earlier merges
** (unless a transaction of its own process is open: then only if no merge
** happened since it last looked, its table being current otherwise), so
** that its table holds every segment merged so far and nothing deleted.
** Caller holds mu, which is let go while waiting.
*/
int share_merge_begin(tkv_engine *e, int timeout_ms){
  int err, rc;
  ASSERT_MU(e);
  if( !e->sh || e->mlocked ) return TKV_OK;
  err = lock_waiting(e, LOCK_MERGE_BYTE, timeout_ms, 50);
  if( err==EAGAIN ){
    return tkv_err(TKV_BUSY, "store %s is being merged by another process "
                   "(waited %d ms)", e->dir, timeout_ms>0 ? timeout_ms : 0);
  }
  if( err ) return tkv_err_sys(err, "cannot lock", e->dir);
  e->mlocked = 1;
  if( e->writer ){
    rc = atomic_load(&e->sh->gen)==atomic_load(&e->seen_gen) ? TKV_OK
       : tkv_err(TKV_BUSY, "cannot merge %s now: a transaction is open and "
                 "another process merged since", e->dir);
  }else{
    rc = follow(e, 1);
  }
  if( rc ) share_merge_end(e);
  return rc;
}

void share_merge_end(tkv_engine *e){
  ASSERT_MU(e);
  if( !e->sh || !e->mlocked ) return;
  range_lock(e->lock_fd, F_UNLCK, LOCK_MERGE_BYTE);
  e->mlocked = 0;
}

/*
** A merge renamed its outputs into place and added them to its table:
** a new generation, which other processes apply before they read again.
** Returns it.  Caller holds mu and the MERGE lock (or has the store
** alone).
*/
uint64_t share_merge_published(tkv_engine *e){
  uint64_t g;
  ASSERT_MU(e);
  if( !e->sh ) return 0;
  g = atomic_fetch_add(&e->sh->gen, 1) + 1;
  if( rtx_any(e) || ack_set(e, g)==TKV_OK ) atomic_store(&e->seen_gen, g);
  return g;
}

/* The id of the segment writers append to (the published position's),
** which a merge never takes, whatever this process thinks of it. */
uint32_t share_log_head(tkv_engine *e){
  return e->sh ? POS_ID(atomic_load(&e->sh->pos)) : 0;
}

/*
** May the segments that generation g made obsolete be deleted now?  Only
** once every process has caught up with g (acked_by_all) and none is
** listing the directory to open the store (LOAD, taken here exclusively
** until share_delete_end).  Nonzero when so.  Caller holds mu.
*/
int share_delete_begin(tkv_engine *e, uint64_t g){
  ASSERT_MU(e);
  if( !e->sh ) return 1;
  if( !acked_by_all(e, g) ) return 0;
  return range_lock(e->lock_fd, F_WRLCK, LOCK_LOAD_BYTE)==0;
}

/* Nonzero if every process caught up with generation g. */
int share_acked(tkv_engine *e, uint64_t g){
  return !e->sh || acked_by_all(e, g);
}

/* Deleting is over: let openers in, and tell the others (a generation)
** that segments went, so that they take them out of their tables. */
void share_delete_end(tkv_engine *e, int deleted){
  ASSERT_MU(e);
  if( !e->sh ) return;
  range_lock(e->lock_fd, F_UNLCK, LOCK_LOAD_BYTE);
  if( deleted ) (void)share_merge_published(e);
}

/* Nonzero if another process has the store open (a test of the OPEN
** lock, which every open process holds shared). */
int share_others(tkv_engine *e){
  struct flock fl;
  if( !e->sh ) return 0;
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = LOCK_OPEN_BYTE;
  fl.l_len = 1;
  if( fcntl(e->lock_fd, F_OFD_GETLK, &fl) ) return 1;
  return fl.l_type!=F_UNLCK;
}

/*
** Nonzero if this process alone has the store open and was the last to
** write it, so that its idea of the active segment is the file's (the
** last close of a broken engine cuts bytes past it).  The OPEN lock stays
** exclusive until share_alone_end.  Caller holds mu.
*/
int share_alone_begin(tkv_engine *e){
  if( !e->sh ) return 1;
  if( range_lock(e->lock_fd, F_WRLCK, LOCK_OPEN_BYTE) ) return 0;
  if( atomic_load(&e->sh->pos)==e->own ) return 1;
  range_lock(e->lock_fd, F_RDLCK, LOCK_OPEN_BYTE);
  return 0;
}

void share_alone_end(tkv_engine *e){
  if( e->sh ) range_lock(e->lock_fd, F_RDLCK, LOCK_OPEN_BYTE);
}
