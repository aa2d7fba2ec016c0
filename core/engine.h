/*
** Internals shared by the engine's modules: the engine (one per store
** directory and process), its segments, and the handle.
**
** Locking.  Three levels, always taken in this order:
**   tkv_db.mu      one handle's transaction and cursors;
**   tkv_engine.mu  everything that writes: the active segment, its buffer,
**                  the writer slot, segment creation and removal, stats;
**   tkv_engine.rw  read side of the keydir and segment table.  Readers hold
**                  it shared; changes to either (the table's array being
**                  grown included) are made holding mu and rw exclusively,
**                  through engine_wrlock().  A holder of mu may read both
**                  without rw, since nobody else can change them.  rw
**                  prefers writers: once a writer waits, new readers queue
**                  behind it, and the readers already waiting go first when
**                  it is done, so neither side waits for more than the
**                  other side's current critical sections (readers hold rw
**                  for one record's read at most; writers for one change).
**                  A thread never takes rw shared twice (that could
**                  deadlock behind a waiting writer).
** One transaction is open per engine at a time (the writer slot).  Entries
** it adds are in the committed index with ENTRY_NEW, invisible to other
** handles; its changes to committed entries live in the transaction's
** overlay (ENTRY_CHANGED marks them), so others keep reading the committed
** locations until commit.
*/
#ifndef TKV_ENGINE_H
#define TKV_ENGINE_H

#include "tinkv.h"
#include "keydir.h"
#include "format.h"
#include "err.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

typedef struct share_area share_area;

#define ENTRY_NEW     KD_SHADOW      /* added by the open transaction */
#define ENTRY_CHANGED KD_TOMBSTONE   /* has a pending state in the overlay */

typedef struct tkv_engine tkv_engine;
typedef struct tkv_txn tkv_txn;
typedef struct exp_table exp_table;

typedef struct tkv_segment {
  uint32_t id;              /* file id: the name is %010u.seg */
  uint32_t base;            /* replay position (see format.h) */
  uint32_t flags;           /* TKV_SEG_COMPACTED */
  uint32_t version;         /* format version of the file */
  uint32_t start;           /* offset of the first record */
  uint64_t durable;         /* what its sync area says is durable */
  uint64_t synced_end;      /* committed end at its last fdatasync */
  uint32_t sync_seq;        /* sequence of the last sync slot written */
  int unsynced;             /* written since its last fdatasync */
  uint64_t written_hi;      /* highest offset a write may have reached */
  uint64_t wb_start;        /* writeback started up to here (seg_flush) */
  tkv_engine *owner;        /* the engine whose table it is (or will be) in */
  int fd;                   /* -1 while closed (see seg_pin) */
  int pins;                 /* users of fd and map right now (fdmu) */
  int in_lru;               /* sealed and in the table: may be closed */
  int parked;               /* not in the table yet, closed when unpinned */
  struct tkv_segment *lru_prev, *lru_next;
  char *path;               /* the segment file */
  uint64_t end;             /* header plus whole records */
  uint64_t alloc;           /* file size, preallocated space included */
  _Atomic uint64_t hint_bytes; /* size of its hint file, 0 if none */
  _Atomic uint64_t flushed; /* bytes handed to the OS (readers check it) */
  int sealed;               /* never appended to again */
  const uint8_t *map;       /* read-only map of the file, or NULL */
  size_t map_len;
  /* Merge bookkeeping (merge.c, mergepolicy.c).  Changed holding mu and rw
  ** exclusively, read holding either. */
  uint64_t live_bytes;      /* record bytes the keydir points at */
  uint64_t tomb_bytes;      /* bytes of tombstones in it: counted when
                            ** appended (rolled-back ones too, so never
                            ** less than the truth), loaded or copied */
  int quarantined;          /* a merge found a record it cannot read and
                            ** kept the file; the policy leaves it alone */
  int hint_due;             /* sealed; the merge thread writes its hint */
} tkv_segment;

struct tkv_engine {
  char *dir;                  /* canonical directory path */
  int refs;                   /* open handles (registry lock) */
  int closing;                /* the last close runs (registry lock) */
  unsigned gen;               /* fork generation it was opened in */
  tkv_engine *next;           /* registry list */
  tkv_options opts;
  int lock_fd;
  /* Other processes on the store (share.c). */
  share_area *sh;             /* LOCK's shared area, mapped */
  _Atomic uint64_t seen;      /* published position the keydir is current to */
  uint64_t own;               /* position this process last published (mu) */
  _Atomic uint64_t seen_gen;  /* merge generation the table is current to */
  uint64_t ack_gen;           /* generation this process holds a read lock
                              ** for (share.c, "acknowledged") (mu) */
  int acked;                  /* ack_gen is held (mu) */
  int mlocked;                /* holds the MERGE lock (mu) */
  uint32_t *retired;          /* merge outputs this process's merges took
                              ** out of its table, while their files wait
                              ** for deletion: never applied again (mu) */
  int nretired, retired_cap;
  int wlocked;                /* holds the WRITE lock (mu) */
  int wrote;                  /* this process wrote the store (mu) */
  /* Operations run on the open store (tkv_check_db, tkv_backup); mu. */
  uint64_t checks, last_check_usec, backups, last_backup_usec;

  pthread_mutex_t mu;
  pthread_cond_t idle;        /* signalled when the writer slot frees */
  pthread_rwlock_t rw;
  pthread_t mu_holder;        /* who holds mu, when mu_held (for assert()) */
  int mu_held;
  int rw_excl;                /* rw is held exclusively (for assert()) */
  int opening;                /* recovery: no other thread sees the engine */

  kd_arena *arena;
  kd_index *index;
  exp_table *expires;         /* expiry times of entries (expire.c) */

  /* Open descriptors and maps of sealed segments: at most SEG_OPEN_MAX,
  ** least recently used closed first (segment.c, seg_pin). */
  pthread_mutex_t fdmu;       /* leaf lock: pins, fd, map of sealed ones */
  tkv_segment *lru_head, *lru_tail;
  int nopen;                  /* LRU members with an open descriptor */

  tkv_segment **segs;         /* in replay order */
  int nseg, nseg_alloc;
  tkv_segment *active;        /* appended to; NULL until the next write */
  uint32_t next_id;
  _Atomic uint32_t *id_top;   /* the shared area's counter of segment ids
                              ** handed out (share.c maps it), or NULL */

  uint8_t *buf;               /* write buffer of the active segment */
  size_t buf_len, buf_cap;
  uint64_t buf_off;           /* file offset of buf[0] */
  uint64_t commit_end;        /* active segment: end of committed records */
  int dir_dirty;              /* names changed since the last dir sync */
  int sync_failed;            /* the last commit's fdatasync failed */
  uint64_t rewinds;           /* seg_rewind calls: a sync outside mu
                              ** (seg_sync_begin) that saw one may not
                              ** record its end as synced */

  tkv_db *writer;             /* handle holding the writer slot */
  pthread_t writer_thread;    /* thread that last used it */

  uint64_t keys;              /* committed live keys */
  uint64_t live_bytes;        /* record bytes of committed live keys */
  uint64_t total_bytes;       /* record bytes in all segments */
  uint64_t compactions;       /* merges run since open */
  uint64_t last_reclaimed;
  int last_compact_rc;
  uint64_t compact_retry_at;  /* stale bytes before retrying a failed one */
  uint64_t generation;        /* bumped at every change of the segment
                              ** list (merge.c); see merge.c's header */
  uint64_t user_bytes;        /* key+value bytes committed since open */
  _Atomic uint64_t bytes_written; /* bytes written to files since open */
  struct merge_state *merge;  /* background merge thread, or NULL */
  int rotate_asap;            /* seal the active segment at the next
                              ** transaction's start (merge.c asks) */
  int broken;                 /* BROKEN_*: refuse writes until reopened */
  _Atomic uint64_t version;   /* bumped when the index gains or loses
                              ** entries; cursors then seek again */
  /* Read transactions (readtxn.c). */
  struct tkv_rtx *rtxs;       /* the open ones (mu) */
  uint64_t rtx_clock;         /* read transactions begun since open (mu) */
  struct rtx_grave *grave;    /* entries kept for them, oldest death first
                              ** (mu and rw exclusively) */
  size_t ngrave, grave_cap;
  tkv_segment **limbo;        /* segments out of the table whose files a
                              ** read transaction may still read: merge
                              ** inputs waiting for deletion (mu and rw
                              ** exclusively; read under rw) */
  int nlimbo, limbo_cap;
};

/*
** Why an engine refuses writes until it is reopened (tkv_engine.broken).
**   BROKEN_UNDO  bytes that are not part of any commit could not be taken
**                out of a segment (a failed rollback, or the cleanup of a
**                failed write or compaction): only recovery can say where
**                the log ends now.
**   BROKEN_SYNC  an fdatasync of the active segment failed.  The kernel may
**                have dropped the pages it could not write and report the
**                next fdatasync as a success, so no later commit could be
**                made durable: a retry would be acknowledged and then lost.
*/
#define BROKEN_UNDO 1
#define BROKEN_SYNC 2

struct tkv_db {
  tkv_engine *e;
  pthread_mutex_t mu;
  tkv_txn *txn;               /* open transaction, or NULL */
  tkv_txn *spare;             /* a finished one kept for reuse */
  struct tkv_rtx *rtx;        /* open read transaction, or NULL */
  int readonly;               /* opened with TKV_OPEN_READONLY semantics */
  int busy_ms;                /* wait for the write lock (< 0: not at all) */
};

/*
** The locks are taken through these helpers, which note who holds them so
** that "caller holds ..." comments are assert()s:
**   engine_lock/unlock      mu; mu_holder and mu_held are written by the
**                           holder only, so a holder reading them is no race
**                           (a thread that wrongly reads them without mu is
**                           one, and ThreadSanitizer says so);
**   engine_rdlock/unlock    rw shared; engine_rd_depth counts this thread's
**                           shared holds (at most one: rw is not recursive);
**   engine_wrlock/unlock    rw exclusively, by a holder of mu.
*/
extern _Thread_local int engine_rd_depth;

#define ENGINE_MU_HELD(e) \
  ((e)->mu_held && pthread_equal((e)->mu_holder, pthread_self()))
/* Caller holds mu (or the engine is being recovered, by one thread). */
#define ASSERT_MU(e) assert( (e)->opening || ENGINE_MU_HELD(e) )
/* Caller holds rw shared, or mu. */
#define ASSERT_READER(e) \
  assert( engine_rd_depth>0 || (e)->opening || ENGINE_MU_HELD(e) )

static inline void engine_lock(tkv_engine *e){
  pthread_mutex_lock(&e->mu);
  e->mu_holder = pthread_self();
  e->mu_held = 1;
}
static inline void engine_unlock(tkv_engine *e){
  assert( ENGINE_MU_HELD(e) );
  e->mu_held = 0;
  pthread_mutex_unlock(&e->mu);
}
/* Wait on cond, giving mu up meanwhile. */
static inline void engine_wait(tkv_engine *e, pthread_cond_t *cond){
  assert( ENGINE_MU_HELD(e) );
  e->mu_held = 0;
  pthread_cond_wait(cond, &e->mu);
  e->mu_holder = pthread_self();
  e->mu_held = 1;
}
/* The same with a deadline (0 or ETIMEDOUT). */
static inline int engine_timedwait(tkv_engine *e, pthread_cond_t *cond,
                                   const struct timespec *deadline){
  int rc;
  assert( ENGINE_MU_HELD(e) );
  e->mu_held = 0;
  rc = pthread_cond_timedwait(cond, &e->mu, deadline);
  e->mu_holder = pthread_self();
  e->mu_held = 1;
  return rc;
}

/* Tries of engine_wrlock before it sleeps (a few microseconds). */
#define ENGINE_WRLOCK_SPIN 200
static inline void engine_cpu_relax(void){
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static inline void engine_rdlock(tkv_engine *e){
  assert( engine_rd_depth==0 );
  pthread_rwlock_rdlock(&e->rw);
  engine_rd_depth++;
}
static inline void engine_rdunlock(tkv_engine *e){
  assert( engine_rd_depth==1 );
  engine_rd_depth--;
  pthread_rwlock_unlock(&e->rw);
}

/*
** Take rw exclusively (caller holds mu) and give it back.  rw_excl is only
** written by holders of mu, so a holder of mu may read it in assert()s of
** "caller holds rw exclusively".
*/
static inline void engine_wrlock(tkv_engine *e){
  ASSERT_MU(e);
  /* Readers hold rw for a lookup each (a merge's scan takes it once per
  ** record): spin briefly before sleeping, since a writer that sleeps may
  ** find its CPU taken when woken and wait a scheduler slice. */
  for(int i=0; pthread_rwlock_trywrlock(&e->rw); i++){
    if( i==ENGINE_WRLOCK_SPIN ){
      pthread_rwlock_wrlock(&e->rw);
      break;
    }
    engine_cpu_relax();
  }
  e->rw_excl = 1;
}
static inline void engine_wrunlock(tkv_engine *e){
  assert( e->rw_excl );
  e->rw_excl = 0;
  pthread_rwlock_unlock(&e->rw);
}
/* The check of "caller holds mu and rw exclusively, or the engine is still
** being recovered and no other thread can see it". */
#define ASSERT_TABLE_LOCKED(e) assert( (e)->rw_excl || (e)->opening )

/* Path of file `id` + suffix (TKV_SUFFIX_*) in dir, into out. */
static inline int seg_name(char *out, size_t n, const char *dir, uint32_t id,
                           const char *suffix){
  if( tkv_fmt_name(out, n, dir, id, suffix) ){
    return tkv_err(TKV_INVALID, "path too long: %s", dir);
  }
  return TKV_OK;
}

/* ---- store.c */
/* Read the identity file of the store in dir, its flags into *pflags (may
** be NULL).  TKV_NOTSTORE when there is none, TKV_CORRUPT when damaged. */
int identity_read(const char *dir, uint32_t *pflags);

/* ---- segment.c: segment files and the write buffer. */
int seg_create(tkv_engine *e, uint32_t id, uint32_t base, uint32_t flags,
               const char *suffix, tkv_segment **pseg);
void seg_free(tkv_segment *s);
void seg_map(tkv_engine *e, tkv_segment *s);
/* Map the active segment whole if a transaction made it outgrow its map.
** Caller holds mu and rw exclusively. */
void seg_map_grow(tkv_engine *e);
int seg_pin(tkv_segment *s);
void seg_unpin(tkv_segment *s);
void seg_park(tkv_engine *e, tkv_segment *s);
void seg_lru_enter(tkv_engine *e, tkv_segment *s);
/* Sealed segments whose descriptor and map stay open at once, at most. */
#define SEG_OPEN_MAX 32
tkv_segment *seg_find(tkv_engine *e, uint32_t id);
int seg_table_reserve(tkv_engine *e, int n);
int seg_table_add(tkv_engine *e, tkv_segment *s);
uint32_t seg_new_id(tkv_engine *e);
void seg_table_remove(tkv_engine *e, tkv_segment *s);
int seg_limbo_reserve(tkv_engine *e, int n);
void seg_limbo_add(tkv_engine *e, tkv_segment *s);
void seg_limbo_remove(tkv_engine *e, tkv_segment *s);
int seg_append(tkv_engine *e, int type, const void *key, uint32_t klen,
               const void *val, uint32_t vlen, uint64_t expire,
               tkv_loc *ploc);
int seg_flush(tkv_engine *e);
void seg_writeback(tkv_segment *s, uint64_t upto);
int seg_commit_sync(tkv_engine *e);
int seg_rewind(tkv_engine *e, uint64_t off);
int seg_start_write(tkv_engine *e);
int seg_seal_active(tkv_engine *e);
int seg_sync_all(tkv_engine *e, int closing);
/* A sync of the active segment with its fdatasync outside mu (segment.c,
** seg_sync_begin): what begin captured for end. */
typedef struct seg_sync_ticket {
  int fd;                   /* own descriptor of the segment, or -1 */
  uint32_t id;              /* its id */
  uint64_t end;             /* committed end the fdatasync covers */
  uint64_t rewinds;         /* e->rewinds at the start */
  char path[4096];          /* its path, for messages */
} seg_sync_ticket;
int seg_sync_begin(tkv_engine *e, int mark, seg_sync_ticket *t);
int seg_sync_end(tkv_engine *e, seg_sync_ticket *t, int rc);
/* Hint the CPU to fetch the record at loc (a cursor's read-ahead).
** Caller holds rw or mu. */
void seg_prefetch(tkv_engine *e, tkv_loc loc);
int seg_read(tkv_engine *e, tkv_loc loc, const void *key, size_t klen,
             void **pval);

/* Committed records found by a segment scan.  vlen is the value word
** (format.h: the value's length, and TKV_VLEN_EXPIRES); val points at the
** value when it is small enough to be in the scan's window (up to 1 MiB),
** else NULL; expire is the record's expiry time, 0 if none. */
typedef int (*seg_scan_fn)(void *ctx, int type, const uint8_t *key,
                           uint32_t klen, uint32_t off, uint32_t vlen,
                           const uint8_t *val, uint64_t expire);
typedef struct seg_scan_result {
  uint64_t committed_end;  /* end of the last record that ended a txn */
  uint64_t stop;           /* where the scan stopped */
  int why;                 /* SCAN_EOF, SCAN_ZERO, SCAN_BAD, SCAN_SHORT */
} seg_scan_result;
#define SCAN_EOF   0
#define SCAN_ZERO  1
#define SCAN_BAD   2
#define SCAN_SHORT 3
/* ---- scan.c: reading a segment's record stream. */
int seg_scan(tkv_segment *s, uint64_t size, seg_scan_fn fn, void *ctx,
             seg_scan_result *r);
int seg_scan_from(tkv_segment *s, uint64_t from, uint64_t size,
                  seg_scan_fn fn, void *ctx, seg_scan_result *r);
int seg_next_valid(tkv_segment *s, uint64_t from, uint64_t size,
                   uint64_t *pnext);
/* The TKV_CORRUPT error for a record of s at off that fails its checks. */
int seg_corrupt(const tkv_segment *s, uint64_t off, const char *why);

/* ---- hint.c: hint files of sealed segments. */
int hint_write(tkv_engine *e, tkv_segment *s);
int hint_load(tkv_engine *e, tkv_segment *s, uint64_t segsize,
              seg_scan_fn fn, void *ctx, int *ploaded);

/* ---- recovery.c */
/* How recover_store may treat the files: RECOVER_NOWRITE changes none of
** them (a read-only open, or a process that opens while others have the
** store open); with RECOVER_UPTO only segments up to upto_id count, the
** last of them up to upto_end (the position others published). */
#define RECOVER_NOWRITE 1
#define RECOVER_UPTO    2
int recover_list(tkv_engine *e, int how, uint32_t **pids, int *pn);
int recover_list_more(tkv_engine *e, uint32_t **pids, int *pn,
                      uint32_t upto_id);
int recover_store(tkv_engine *e, int how, uint32_t *ids, int n,
                  uint32_t upto_id, uint64_t upto_end);
int recover_list_outputs(tkv_engine *e, uint32_t **pids, int *pn);
int recover_apply_outputs(tkv_engine *e, const uint32_t *ids, int n);
void recover_drop_gone(tkv_engine *e);
int recover_oldest_extra(tkv_engine *e, uint32_t *pbase, uint32_t *pid);
int recover_follow(tkv_engine *e, uint32_t from, uint32_t id, uint64_t end);
/* Nonzero if segment file id is a whole merge output (its header says). */
int recover_is_output(tkv_engine *e, uint32_t id);

/* ---- share.c: several processes on one store. */
int share_attach(tkv_engine *e, int timeout_ms, int *palone);
void share_position(tkv_engine *e, uint32_t *pid, uint64_t *pend);
int share_opened(tkv_engine *e, int alone, int owns_tail);
void share_detach(tkv_engine *e);
int share_stale(tkv_engine *e);
int share_follow(tkv_engine *e);
void share_ack_seen(tkv_engine *e);
uint64_t share_version(tkv_engine *e);
int share_write_begin(tkv_engine *e, int timeout_ms);
void share_write_end(tkv_engine *e);
int share_sync_all(tkv_engine *e, int closing);
int share_compact_begin(tkv_engine *e);
void share_compact_end(tkv_engine *e);
int share_load_begin(tkv_engine *e);
void share_load_end(tkv_engine *e);
int share_merge_begin(tkv_engine *e, int timeout_ms);
void share_merge_end(tkv_engine *e);
uint64_t share_merge_published(tkv_engine *e);
uint32_t share_log_head(tkv_engine *e);
int share_delete_begin(tkv_engine *e, uint64_t g);
int share_acked(tkv_engine *e, uint64_t g);
void share_delete_end(tkv_engine *e, int deleted);
int share_others(tkv_engine *e);
int share_alone_begin(tkv_engine *e);
void share_alone_end(tkv_engine *e);

/* ---- merge.c: the merge mechanism and the background merge thread. */
int merge_all(tkv_engine *e, int timeout_ms, uint64_t *preclaimed);
void merge_notify(tkv_engine *e);
void merge_sealed(tkv_engine *e, tkv_segment *s);
void merge_stop(tkv_engine *e);
void merge_stats(tkv_engine *e, tkv_stats *st);
void merge_wait_idle(tkv_engine *e);

/* Record bytes the keydir now points at in the segment of loc (n>0) or no
** longer does (n<0).  Caller holds mu and rw exclusively (or is recovery,
** which no other thread can see yet). */
static inline void seg_account(tkv_engine *e, tkv_loc loc, int64_t n){
  tkv_segment *s = seg_find(e, loc.file);
  if( s ) s->live_bytes += (uint64_t)n;
}

/* ---- expire.c: expiry times of keydir entries. */
int exp_reserve(tkv_engine *e, size_t more);
void exp_set(tkv_engine *e, kd_entry *en, uint64_t at);
void exp_del(tkv_engine *e, kd_entry *en);
uint64_t exp_get(tkv_engine *e, const kd_entry *en);
size_t exp_count(tkv_engine *e);
typedef int (*exp_walk_fn)(void *ctx, kd_entry *en, uint64_t at);
int exp_walk_expired(tkv_engine *e, uint64_t now, exp_walk_fn fn, void *ctx);
void exp_free(tkv_engine *e);

/* ---- txn.c */
int txn_acquire_writer(tkv_db *db);
void txn_release_writer(tkv_engine *e);
int txn_begin(tkv_db *db, int autocommit);
/* txn_write flag (beside the public TKV_* write flags): delete only a key
** that has expired (the expiry step's delete). */
#define TXN_IFEXPIRED 0x100
int txn_write(tkv_db *db, int del, const void *key, size_t klen,
              const void *val, size_t vlen, unsigned flags, uint64_t expire,
              uint64_t *pid);
int txn_prepare(tkv_db *db);
void txn_finish(tkv_db *db);
int txn_rollback(tkv_db *db);
int txn_savepoint(tkv_db *db, int n);
int txn_rollback_to(tkv_db *db, int n);
int txn_release(tkv_db *db, int n);
void txn_free(tkv_txn *t);
int txn_visible(tkv_db *db, kd_entry *e, tkv_loc *ploc);
uint64_t txn_expire_of(tkv_db *db, kd_entry *en, tkv_loc loc);
int txn_live(tkv_db *db, kd_entry *en, tkv_loc *ploc, uint64_t now);
uint64_t txn_expired_count(tkv_db *db, uint64_t now);
uint64_t txn_id(tkv_db *db, kd_entry *e);
kd_entry *txn_entry_of_id(tkv_db *db, kd_entry *e);
int64_t txn_count_delta(tkv_db *db);
int engine_broken_err(tkv_engine *e);
uint64_t txn_committed_end(tkv_engine *e);

/* Bytes a record of this key and value occupies. */
static inline uint64_t entry_rec_size(const kd_entry *en, tkv_loc loc){
  size_t klen;
  kd_entry_key(en, &klen);
  return tkv_rec_size((uint32_t)klen, loc.vlen);
}

#endif
