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
**               the area) and by a compaction, which rewrites segments
**               and so runs only while no other process has the store open.
**   WRITE byte  held exclusively for the length of one write transaction.
**               The taker first catches up with what others committed and
**               then appends at the published end, so one log serves all.
** Readers take no lock at all: before a read, a cursor or a transaction
** they compare the published position with the one their keydir is
** current to and, when it moved, read the records appended since
** (recover_follow): only whole committed transactions, at a cost in
** proportion to what changed.
**
** A writer that died in the middle of a transaction left its pid in the
** area and maybe bytes past the published end (or a new segment past the
** published one): the next writer cuts them off (takeover) before it
** appends.  A merge's outputs may also lie past the published segment (a
** merge runs while its process has the store alone and numbers outputs
** from the next id, while that process goes on appending to its active
** segment): those count, and a process that opens loads them
** (recover_store), so they are in its table before it can write.  The
** position only ever names bytes that were written to the file with every
** record before them, so a reader never sees a transaction in part.
*/
#include "engine.h"
#include "err.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SHARE_MAGIC    "tinkvSHM"
#define SHARE_VERSION  1
#define SHARE_SIZE     4096          /* LOCK is this long; the area is first */
#define LOCK_OPEN_BYTE  4096         /* byte-range lock offsets (past the area) */
#define LOCK_WRITE_BYTE 4097

/* The area at offset 0 of LOCK (FORMAT.md, "The lock file"). */
struct share_area {
  char magic[8];
  uint32_t version;
  uint32_t reserved;
  _Atomic uint64_t pos;       /* SHARE_POS(newest segment id, committed end) */
  _Atomic uint64_t gen;       /* bumped by each compaction */
  _Atomic uint32_t writer;    /* pid in a write transaction, or 0 */
};

#define SHARE_POS(id, end) (((uint64_t)(id) << 32) | (uint64_t)(uint32_t)(end))
#define POS_ID(p)  ((uint32_t)((p) >> 32))
#define POS_END(p) ((uint64_t)(uint32_t)(p))

/* Set (F_WRLCK, F_RDLCK) or release (F_UNLCK) the one-byte lock at `at`
** without waiting: 0, or the errno (EAGAIN when another process has it). */
static int range_lock(int fd, short type, off_t at){
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = at;
  fl.l_len = 1;
  while( fcntl(fd, F_OFD_SETLK, &fl) ){
    if( errno==EINTR ) continue;
    return errno==EACCES ? EAGAIN : errno;
  }
  return 0;
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

/* Where this engine's log ends, as other processes should see it.  Caller
** holds mu (or is recovering). */
static uint64_t engine_pos(tkv_engine *e){
  tkv_segment *s = e->active;
  uint32_t id = 0;
  uint64_t end = 0;
  if( s ) return SHARE_POS(s->id, e->commit_end);
  for(int i=0; i<e->nseg; i++){
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
}

/* Nonzero when another process committed since this keydir was current.
** Needs no lock: a reader calls share_follow under mu when it says so. */
int share_stale(tkv_engine *e){
  return e->sh && atomic_load(&e->sh->pos)!=atomic_load(&e->seen);
}

/* What tkv_data_version returns: the published position the keydir is
** current to.  Every commit (of this or another process) and every
** compaction publishes a later one, and it never goes back.  Caller holds
** mu. */
uint64_t share_version(tkv_engine *e){
  ASSERT_MU(e);
  return atomic_load(&e->seen);
}

/* Catch the keydir up with what other processes committed.  Caller holds
** mu. */
int share_follow(tkv_engine *e){
  uint64_t pos;
  int rc;
  ASSERT_MU(e);
  if( !e->sh ) return TKV_OK;
  pos = atomic_load(&e->sh->pos);
  if( pos==atomic_load(&e->seen) ) return TKV_OK;
  rc = recover_follow(e, POS_ID(atomic_load(&e->seen)), POS_ID(pos),
                      POS_END(pos));
  if( !rc ) atomic_store(&e->seen, pos);
  return rc;
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
  if( !seg_find(e, e->next_id)
   && !seg_name(path, sizeof path, e->dir, e->next_id, TKV_SUFFIX_SEG)
   && access(path, F_OK)==0 ){
    if( recover_is_output(e, e->next_id) ){
      /* Every merge output is in the table since open: never remove one. */
      assert( 0 );
      return tkv_err(TKV_CORRUPT, "%s is a merge output this process never "
                     "loaded: reopen the store", path);
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
  uint64_t deadline;
  unsigned us = 20;
  int err, rc;
  ASSERT_MU(e);
  if( !e->sh || e->wlocked ) return TKV_OK;
  err = range_lock(e->lock_fd, F_WRLCK, LOCK_WRITE_BYTE);
  if( err==EAGAIN && timeout_ms>0 ){
    deadline = now_ms() + (uint64_t)timeout_ms;
    engine_unlock(e);
    do{
      nap(&us);
      err = range_lock(e->lock_fd, F_WRLCK, LOCK_WRITE_BYTE);
    }while( err==EAGAIN && now_ms()<deadline );
    engine_lock(e);
  }
  if( err==EAGAIN ){
    return tkv_err(TKV_BUSY, "store %s is locked by a write transaction of "
                   "process %u (waited %d ms)", e->dir,
                   (unsigned)atomic_load(&e->sh->writer),
                   timeout_ms>0 ? timeout_ms : 0);
  }
  if( err ) return tkv_err_sys(err, "cannot lock", e->dir);
  e->wlocked = 1;
  rc = share_follow(e);
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
  atomic_fetch_add(&e->sh->gen, 1);
  range_lock(e->lock_fd, F_RDLCK, LOCK_OPEN_BYTE);
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
