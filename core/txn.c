/*
** Transactions: the writer slot, the overlay of pending changes, the undo
** log behind savepoints and rollback, and the two-phase commit.
**
** A key the transaction adds goes straight into the committed index,
** flagged ENTRY_NEW so that other handles skip it; that gives it its id at
** once (SQLite wants the rowid of an INSERT before commit).  A change to a
** key that other handles can see is kept in the overlay, a hash table from
** entry to pending location (or deletion), and the entry is flagged
** ENTRY_CHANGED so that the owner knows to look there.  Every change pushes
** an undo record; a savepoint is a position in the undo log and in the file.
** Commit moves the overlay into the entries and clears the flags: nothing in
** it allocates, so it cannot fail.
**
** Ids.  A key deleted and then written again in one transaction is a new
** row and gets a new id (SQLite queues the rowids of a multi-row UPDATE or
** DELETE and would otherwise apply a later step to the new row).  The new
** id comes from a replacement entry that is in no index: the overlay slot
** of the key's entry points at it (repl), the owner sees its id, and commit
** puts it into the index in place of the old entry, whose id then dies.
** Other handles keep seeing the old entry until then.
*/
#include "engine.h"
#include "readtxn.h"
#include "err.h"
#include "mem.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define BUSY_WAIT_SECONDS 5

typedef struct over_slot {
  kd_entry *en;        /* NULL: empty slot */
  kd_entry *repl;      /* the key's new-id entry (in no index), or NULL */
  tkv_loc loc;
  uint64_t expire;     /* the pending record's expiry time, 0 if none */
  int deleted;
} over_slot;

typedef struct undo_rec {
  kd_entry *en;
  tkv_loc prev_loc;    /* overlay state before the change */
  uint64_t prev_expire;
  uint8_t created;     /* the change created the entry */
  uint8_t had_over;    /* the entry had an overlay state before */
  uint8_t prev_deleted;
  uint8_t made_repl;   /* the change installed a new repl entry */
  int8_t count_delta;  /* effect on the visible key count */
  kd_entry *prev_repl; /* overlay repl before the change */
} undo_rec;

typedef struct savepoint {
  size_t undo_len;
  uint64_t file_off;
  uint32_t nrec;
  int64_t count_delta;
} savepoint;

struct tkv_txn {
  int autocommit;       /* a single write outside tkv_begin */
  int prepared;
  uint64_t start_off;   /* end of the active segment at begin */
  uint32_t nrec;        /* transaction records written */
  int64_t count_delta;
  size_t nexpire;       /* writes with an expiry time into the overlay */
  over_slot *over;      /* open addressing, power-of-two size */
  size_t over_cap, over_n;
  undo_rec *undo;
  size_t undo_len, undo_cap;
  savepoint *sp;
  int nsp, sp_cap;
};

/* ------------------------------------------------------------ Overlay. */

static size_t over_hash(const kd_entry *en, size_t cap){
  uint64_t h = (uint64_t)(uintptr_t)en * 0x9e3779b97f4a7c15ull;
  return (size_t)(h >> 32) & (cap - 1);
}

static over_slot *over_find(tkv_txn *t, const kd_entry *en){
  size_t i;
  if( !t->over_cap ) return NULL;
  for(i=over_hash(en, t->over_cap); t->over[i].en; i=(i+1)&(t->over_cap-1)){
    if( t->over[i].en==en ) return &t->over[i];
  }
  return NULL;
}

/*
** A zeroed table of cap slots.  A big one (a transaction of some 20,000
** keys or more) is mapped fresh in 2 MiB pages where the kernel offers
** them: its slots are probed at random, and with 4 KiB pages nearly every
** probe of a table of a million keys was also a TLB miss, while a zeroed
** heap block is first mapped read-only by the probes and then faults again
** on the write (a TLB flush on every core each time).  Freed with
** over_table_free and the same cap.
*/
static over_slot *over_table_alloc(size_t cap){
  size_t n = cap * sizeof(over_slot);
  over_slot *p = tkv_mem_alloc_big(n);
  if( p && n<((size_t)2<<20) ) memset(p, 0, n);   /* malloc'ed, not mapped */
  return p;
}
static void over_table_free(over_slot *p, size_t cap){
  tkv_mem_free_big(p, cap * sizeof(over_slot));
}

/* Room for one more entry without allocating later.  Load stays <= 1/2. */
static int over_reserve(tkv_txn *t){
  size_t cap, i;
  over_slot *old = t->over, *p;
  if( (t->over_n + 1)*2 <= t->over_cap ) return TKV_OK;
  cap = t->over_cap ? t->over_cap*2 : 64;
  p = over_table_alloc(cap);
  if( !p ) return tkv_err_nomem();
  t->over = p;
  for(i=0; i<t->over_cap; i++){
    if( old[i].en ){
      size_t j = over_hash(old[i].en, cap);
      while( p[j].en ) j = (j+1) & (cap-1);
      p[j] = old[i];
    }
  }
  over_table_free(old, t->over_cap);
  t->over_cap = cap;
  return TKV_OK;
}

/* Set en's pending state (room was reserved). */
static void over_put(tkv_txn *t, kd_entry *en, tkv_loc loc, uint64_t expire,
                     int deleted, kd_entry *repl){
  over_slot *s = over_find(t, en);
  if( !s ){
    size_t i = over_hash(en, t->over_cap);
    while( t->over[i].en ) i = (i+1) & (t->over_cap-1);
    s = &t->over[i];
    s->en = en;
    t->over_n++;
  }
  s->loc = loc;
  s->expire = expire;
  s->deleted = deleted;
  s->repl = repl;
}

/* Remove en's pending state (backward-shift deletion keeps probes short). */
static void over_del(tkv_txn *t, kd_entry *en){
  over_slot *s = over_find(t, en);
  size_t i, j, mask = t->over_cap - 1;
  if( !s ) return;
  i = (size_t)(s - t->over);
  t->over[i].en = NULL;
  t->over_n--;
  for(j=(i+1)&mask; t->over[j].en; j=(j+1)&mask){
    size_t home = over_hash(t->over[j].en, t->over_cap);
    /* Move j back to i if its home is not in (i, j]. */
    if( (j>i && (home<=i || home>j)) || (j<i && home<=i && home>j) ){
      t->over[i] = t->over[j];
      t->over[j].en = NULL;
      i = j;
    }
  }
}

/* --------------------------------------------------------- Visibility. */

/*
** Does db see entry en, and where is its value?  The owner of the open
** transaction sees its own pending state; everybody else sees committed
** entries only.  Caller holds rw or mu.
*/
int txn_visible(tkv_db *db, kd_entry *en, tkv_loc *ploc){
  ASSERT_READER(db->e);
  unsigned flags = kd_entry_flags(en);
  uint64_t at;
  if( db->rtx ) return rtx_visible(db->e, db->rtx, en, ploc, &at);
  if( db->txn ){
    if( flags & ENTRY_CHANGED ){
      over_slot *s = over_find(db->txn, en);
      if( s ){
        if( s->deleted ) return 0;
        *ploc = s->loc;
        return 1;
      }
    }
  }else if( flags & ENTRY_NEW ){
    return 0;
  }
  *ploc = kd_entry_loc(en);
  return 1;
}

/*
** The expiry time of the version of en that db sees at loc (from
** txn_visible), 0 if it has none.  Caller holds rw or mu.
*/
uint64_t txn_expire_of(tkv_db *db, kd_entry *en, tkv_loc loc){
  uint64_t at = 0;
  if( !tkv_vlen_expires(loc.vlen) ) return 0;
  if( db->rtx ){
    (void)rtx_visible(db->e, db->rtx, en, &loc, &at);
    return at;
  }
  if( db->txn && (kd_entry_flags(en) & ENTRY_CHANGED) ){
    over_slot *s = over_find(db->txn, en);
    if( s ) return s->expire;
  }
  return exp_get(db->e, en);
}

/*
** txn_visible, and the key has not expired at `now` (a key is expired
** once now is past its time, as in Redis).  Caller holds rw or mu.
*/
int txn_live(tkv_db *db, kd_entry *en, tkv_loc *ploc, uint64_t now){
  uint64_t at;
  if( !txn_visible(db, en, ploc) ) return 0;
  at = txn_expire_of(db, en, *ploc);
  return !at || at>=now;
}

/* Count the expired keys in the entries of the expiry table. */
typedef struct expired_count {
  tkv_db *db;
  uint64_t now, n;
} expired_count;

static int count_expired_entry(void *ctx, kd_entry *en, uint64_t at){
  expired_count *c = ctx;
  tkv_loc loc;
  (void)at;
  /* What the overlay decides is counted from the overlay below. */
  if( c->db->txn && (kd_entry_flags(en) & ENTRY_CHANGED)
   && over_find(c->db->txn, en) ) return 0;
  if( txn_visible(c->db, en, &loc) && !txn_live(c->db, en, &loc, c->now) ){
    c->n++;
  }
  return 0;
}

/*
** How many of the keys db would count have expired at `now`: walks the
** expiry table only when something in it may have expired, and db's
** overlay when its transaction wrote expiry times.  Caller holds mu.
*/
uint64_t txn_expired_count(tkv_db *db, uint64_t now){
  expired_count c;
  tkv_txn *t = db->txn;
  ASSERT_MU(db->e);
  c.db = db;
  c.now = now;
  c.n = 0;
  exp_walk_expired(db->e, now - 1, count_expired_entry, &c);
  if( t && t->over_n && (t->nexpire || exp_count(db->e)) ){
    for(size_t i=0; i<t->over_cap; i++){
      over_slot *s = &t->over[i];
      if( s->en && !s->deleted && s->expire && s->expire<now ) c.n++;
    }
  }
  return c.n;
}

/* The id of en's key as db sees it: the replacement's id when db's
** transaction deleted the key and wrote it again. */
uint64_t txn_id(tkv_db *db, kd_entry *en){
  if( db->txn && (kd_entry_flags(en) & ENTRY_CHANGED) ){
    over_slot *s = over_find(db->txn, en);
    if( s && s->repl ) return kd_entry_id(s->repl);
  }
  return kd_entry_id(en);
}

/*
** The index entry that the entry of an id (from kd_entry_by_id, may be
** NULL) stands for as db sees it, or NULL when that id names no row for
** db: an entry whose key db's transaction deleted and wrote again (its id
** died), or another transaction's replacement.  Caller holds db->mu.
*/
kd_entry *txn_entry_of_id(tkv_db *db, kd_entry *en){
  const uint8_t *key;
  size_t klen;
  kd_entry *ix;
  over_slot *s = NULL;
  if( db->rtx ) return rtx_entry_of_id(db->e, db->rtx, en);
  if( !en ) return NULL;
  key = kd_entry_key(en, &klen);
  ix = kd_index_find(db->e->index, key, klen);
  if( ix && db->txn && (kd_entry_flags(ix) & ENTRY_CHANGED) ){
    s = over_find(db->txn, ix);
  }
  if( ix==en ) return (s && s->repl) ? NULL : en;
  return (s && s->repl==en) ? ix : NULL;
}

int64_t txn_count_delta(tkv_db *db){
  return db->txn ? db->txn->count_delta : 0;
}

/*
** End of the committed records of the active segment: where the records of
** the transaction in progress (if any) begin, else the end of the data.
** Backup and check read the active segment up to here.  Caller holds mu.
*/
uint64_t txn_committed_end(tkv_engine *e){
  tkv_db *w = e->writer;
  uint64_t end = e->active ? e->active->end : 0;
  if( w && w->txn && w->txn->start_off < end ) return w->txn->start_off;
  return end;
}

/* ------------------------------------------------------- Writer slot. */

/*
** Take the engine's writer slot for db, waiting (up to 5 s) while a handle
** used by another thread holds it.  A holder used by this same thread could
** never let go while we wait, so that is TKV_BUSY at once.  A read-only
** handle never writes: TKV_READONLY.  Caller holds mu.
*/
static int acquire_locked(tkv_db *db){
  tkv_engine *e = db->e;
  pthread_t self = pthread_self();
  struct timespec deadline;
  int rc;
  ASSERT_MU(e);
  if( db->readonly ){
    return tkv_err(TKV_READONLY, "%s is open read-only on this handle",
                   e->dir);
  }
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += BUSY_WAIT_SECONDS;
  while( e->writer && e->writer!=db ){
    if( pthread_equal(e->writer_thread, self) ){
      return tkv_err(TKV_BUSY, "another handle of this thread has a "
                     "transaction open on %s", e->dir);
    }
    if( engine_timedwait(e, &e->idle, &deadline)==ETIMEDOUT ){
      return tkv_err(TKV_BUSY, "another transaction is open on %s", e->dir);
    }
  }
  if( e->broken ) return engine_broken_err(e);
  e->writer = db;
  e->writer_thread = self;
  /* Then the store's write lock, shared with other processes: this may
  ** wait (without mu) while another process writes. */
  rc = share_write_begin(e, db->busy_ms);
  if( rc ){
    e->writer = NULL;
    pthread_cond_broadcast(&e->idle);
    return rc;
  }
  e->wrote = 1;
  return TKV_OK;
}

/*
** The error of a call refused because the engine is broken (BROKEN_* in
** engine.h): writes, commits, savepoints and compactions until the store
** is reopened.  Caller holds mu.
*/
int engine_broken_err(tkv_engine *e){
  ASSERT_MU(e);
  if( e->broken==BROKEN_SYNC ){
    return tkv_err(TKV_BROKEN, "an fdatasync failed earlier on %s, so what "
                   "was written since may not be on disk: writes are "
                   "refused until the store is reopened", e->dir);
  }
  return tkv_err(TKV_BROKEN, "an earlier write failure could not be undone "
                 "on %s: reopen the store", e->dir);
}

/*
** The error of an undo (rollback, rollback-to, the cleanup of a failed
** commit) whose bytes could not be taken out of the segment: seg_rewind
** marked the engine broken.  `what` says what was undone; the message
** keeps the I/O error.  Caller holds mu.
*/
static int undo_failed(tkv_engine *e, const char *what){
  char cause[512];
  ASSERT_MU(e);
  snprintf(cause, sizeof cause, "%s", tkv_errmsg());
  return tkv_err(TKV_BROKEN, "%s could not take its records out of the "
                 "segment (%s): the next open decides whether they count; "
                 "writes are refused until %s is reopened", what, cause,
                 e->dir);
}

/* acquire_locked for other modules (store.c seals the active segment as a
** writer before a compaction).  Caller holds mu. */
int txn_acquire_writer(tkv_db *db){
  return acquire_locked(db);
}

/* Give the writer slot back, and the store's write lock with it (what was
** committed is published to other processes).  Caller holds mu. */
void txn_release_writer(tkv_engine *e){
  ASSERT_MU(e);
  share_write_end(e);
  e->writer = NULL;
  pthread_cond_broadcast(&e->idle);
}

/* ------------------------------------------------------- Begin, write. */

static void txn_reset(tkv_txn *t){
  if( t->over_cap>4096 ){
    over_table_free(t->over, t->over_cap);
    t->over = NULL;
    t->over_cap = 0;
  }else if( t->over_n ){
    memset(t->over, 0, t->over_cap * sizeof *t->over);
  }
  t->over_n = 0;
  if( t->undo_cap>65536 ){
    tkv_mem_free(t->undo);
    t->undo = NULL;
    t->undo_cap = 0;
  }
  t->undo_len = 0;
  t->nsp = 0;
  t->nrec = 0;
  t->count_delta = 0;
  t->nexpire = 0;
  t->prepared = 0;
}

void txn_free(tkv_txn *t){
  if( !t ) return;
  over_table_free(t->over, t->over_cap);
  tkv_mem_free(t->undo);
  tkv_mem_free(t->sp);
  tkv_mem_free(t);
}

/*
** Open a transaction on db (the caller holds db->mu and checked that none
** is open).  autocommit: one write follows, recorded as a self-committing
** PUT or DEL.
*/
int txn_begin(tkv_db *db, int autocommit){
  tkv_engine *e = db->e;
  tkv_txn *t = db->spare;
  tkv_rtx *ended = NULL;
  int rc;
  if( !t ){
    t = tkv_mem_calloc(1, sizeof *t);
    if( !t ) return tkv_err_nomem();
    db->spare = t;
  }
  engine_lock(e);
  rc = acquire_locked(db);
  if( !rc ){
    rc = seg_start_write(e);
    if( rc ) txn_release_writer(e);
  }
  if( !rc && db->rtx ){
    /* A read transaction becomes this one only if what it read is still
    ** current (the writer slot is held and the log followed, so nothing
    ** can change now); else writing could be based on stale reads. */
    if( rtx_changed(db->rtx) ){
      txn_release_writer(e);
      rc = tkv_err(TKV_BUSY, "the store changed since this handle's read "
                   "transaction began: end it (tkv_read_end) and begin "
                   "again");
    }else{
      ended = rtx_end(db);
    }
  }
  if( !rc ){
    t->autocommit = autocommit;
    t->start_off = e->buf_off + e->buf_len;
    db->spare = NULL;
    db->txn = t;
  }
  engine_unlock(e);
  rtx_free(ended);
  return rc;
}

/* Make room for one more undo record. */
static int undo_reserve(tkv_txn *t){
  undo_rec *p;
  size_t cap;
  if( t->undo_len < t->undo_cap ) return TKV_OK;
  cap = t->undo_cap ? t->undo_cap*2 : 64;
  p = tkv_mem_realloc(t->undo, cap * sizeof *p);
  if( !p ) return tkv_err_nomem();
  t->undo = p;
  t->undo_cap = cap;
  return TKV_OK;
}

/* Add a new entry for key, flagged ENTRY_NEW. */
static int create_entry(tkv_engine *e, const void *key, size_t klen,
                        kd_entry **pen){
  tkv_loc zero = {0, 0, 0};
  kd_entry *en;
  int rc = TKV_OK;
  engine_wrlock(e);
  en = kd_entry_new(e->arena, key, klen, zero, ENTRY_NEW);
  if( !en ){
    rc = tkv_err_nomem();
  }else if( kd_index_insert(e->index, en) ){
    kd_entry_free(e->arena, en);
    rc = tkv_err_nomem();
  }else{
    atomic_fetch_add(&e->version, 1);
  }
  engine_wrunlock(e);
  *pen = en;
  return rc;
}

/* Free a replacement entry (it is in no index; its id dies). */
static void free_repl(tkv_engine *e, kd_entry *repl){
  engine_wrlock(e);
  kd_entry_free(e->arena, repl);
  engine_wrunlock(e);
}

/* Remove and free an entry this transaction created. */
static void drop_entry(tkv_engine *e, kd_entry *en){
  engine_wrlock(e);
  exp_del(e, en);
  kd_index_remove(e->index, en);
  kd_entry_free(e->arena, en);
  atomic_fetch_add(&e->version, 1);
  engine_wrunlock(e);
}

static void set_flags(tkv_engine *e, kd_entry *en, unsigned flags){
  engine_wrlock(e);
  kd_entry_set_flags(en, flags);
  engine_wrunlock(e);
}

/* The effect of a write on en (not created by it): record undo, then set
** the overlay.  Room in both was reserved. */
static void change_entry(tkv_engine *e, tkv_txn *t, kd_entry *en, tkv_loc loc,
                         uint64_t expire, int del, int was_visible,
                         kd_entry *repl){
  undo_rec *u = &t->undo[t->undo_len++];
  over_slot *s = over_find(t, en);
  u->en = en;
  u->created = 0;
  u->had_over = s!=NULL;
  u->prev_loc = s ? s->loc : loc;
  u->prev_expire = s ? s->expire : 0;
  u->prev_deleted = s ? (uint8_t)s->deleted : 0;
  u->prev_repl = s ? s->repl : NULL;
  u->made_repl = repl!=NULL;
  u->count_delta = (int8_t)(del ? -1 : (was_visible ? 0 : 1));
  t->count_delta += u->count_delta;
  over_put(t, en, loc, expire, del, repl ? repl : u->prev_repl);
  if( !(kd_entry_flags(en) & ENTRY_CHANGED) ){
    set_flags(e, en, kd_entry_flags(en) | ENTRY_CHANGED);
  }
}

/*
** Write (or, with del, delete) key inside db's open transaction, with
** expiry time `expire` (0: none).  Caller holds db->mu.  On failure
** nothing of the write remains.
**
** An expired key is absent: TKV_NOOVERWRITE writes over it, TKV_MUSTEXIST
** fails with TKV_NOTFOUND.  Deleting it still writes the tombstone that
** reclaims it, and sets *pid to 0 so that the caller can say it was not
** there; TXN_IFEXPIRED deletes only such a key (the expiry step's delete,
** TKV_NOTFOUND if the key was written again meanwhile).  TKV_KEEPEXPIRE
** gives a put the expiry time of the key's live version.
*/
int txn_write(tkv_db *db, int del, const void *key, size_t klen,
              const void *val, size_t vlen, unsigned flags, uint64_t expire,
              uint64_t *pid){
  tkv_engine *e = db->e;
  tkv_txn *t = db->txn;
  kd_entry *en, *repl = NULL;
  tkv_loc cur, loc;
  int visible, live, created = 0, type, rc;
  if( t->prepared ){
    return tkv_err(TKV_MISUSE, "write after the transaction was prepared");
  }
  engine_lock(e);
  if( e->broken ){
    /* The transaction's records past the last undo point may be in the
    ** file or not: nothing more may be added to it (it can only be rolled
    ** back). */
    rc = engine_broken_err(e);
    engine_unlock(e);
    return rc;
  }
  en = kd_index_find(e->index, key, klen);
  visible = en && txn_visible(db, en, &cur);
  live = visible && txn_live(db, en, &cur, tkv_clock_ms());
  if( (del && !visible) || (del && live && (flags & TXN_IFEXPIRED))
   || (!del && !live && (flags & TKV_MUSTEXIST)) ){
    engine_unlock(e);
    return TKV_NOTFOUND;
  }
  if( !del && live && (flags & TKV_NOOVERWRITE) ){
    engine_unlock(e);
    return TKV_EXISTS;
  }
  if( !del && live && (flags & TKV_KEEPEXPIRE) ){
    expire = txn_expire_of(db, en, cur);
  }
  if( del ) expire = 0;
  rc = undo_reserve(t);
  if( !rc && en ) rc = over_reserve(t);
  /* Room in the expiry table for this write now, and for every overlay
  ** state that will go there at commit, which must not allocate. */
  if( !rc && expire ) rc = exp_reserve(e, t->nexpire + 1);
  if( !rc && !en ){
    rc = create_entry(e, key, klen, &en);
    created = rc==TKV_OK;
  }else if( !rc && !del && !visible ){
    /* Written again after this transaction deleted it: a new row. */
    tkv_loc zero = {0, 0, 0};
    repl = kd_entry_new(e->arena, key, klen, zero, ENTRY_NEW);
    if( !repl ) rc = tkv_err_nomem();
  }
  if( rc ){
    engine_unlock(e);
    return rc;
  }
  if( t->autocommit ) type = del ? TKV_REC_DEL : TKV_REC_PUT;
  else type = del ? TKV_REC_TXDEL : TKV_REC_TXPUT;
  rc = seg_append(e, type, key, (uint32_t)klen, val, (uint32_t)vlen, expire,
                  &loc);
  if( rc ){
    if( created ) drop_entry(e, en);
    if( repl ) free_repl(e, repl);
    engine_unlock(e);
    return rc;
  }
  if( created ){
    undo_rec *u = &t->undo[t->undo_len++];
    memset(u, 0, sizeof *u);
    u->en = en;
    u->created = 1;
    u->count_delta = 1;
    t->count_delta++;
    engine_wrlock(e);
    kd_entry_set_loc(en, loc);
    if( expire ) exp_set(e, en, expire);
    engine_wrunlock(e);
  }else{
    change_entry(e, t, en, loc, expire, del, visible, repl);
    if( expire ) t->nexpire++;
  }
  if( !t->autocommit ) t->nrec++;
  e->writer_thread = pthread_self();
  if( pid ) *pid = (del && !live) ? 0 : txn_id(db, en);
  engine_unlock(e);
  return TKV_OK;
}

/* ------------------------------------------------------------- Undo. */

/* Undo the records of t above `keep`.  Caller holds mu. */
static void undo_to(tkv_engine *e, tkv_txn *t, size_t keep){
  while( t->undo_len>keep ){
    undo_rec *u = &t->undo[--t->undo_len];
    if( u->made_repl ){
      over_slot *s = over_find(t, u->en);
      assert( s && s->repl && s->repl!=u->prev_repl );
      free_repl(e, s->repl);
    }
    if( u->created ){
      drop_entry(e, u->en);
    }else if( u->had_over ){
      over_put(t, u->en, u->prev_loc, u->prev_expire, u->prev_deleted,
               u->prev_repl);
    }else{
      over_del(t, u->en);
      set_flags(e, u->en, kd_entry_flags(u->en) & ~ENTRY_CHANGED);
    }
    t->count_delta -= u->count_delta;
  }
}

/* Close t and give the slot back.  Caller holds mu. */
static void txn_end(tkv_db *db){
  tkv_txn *t = db->txn;
  txn_reset(t);
  db->txn = NULL;
  if( !db->spare ) db->spare = t;
  else txn_free(t);
  txn_release_writer(db->e);
}

/*
** Undo the transaction and close it.  It is closed even when its records
** cannot be taken out of the file: then the result is TKV_BROKEN (the
** engine refuses writes; the next open finds the records committed if a
** commit record of theirs stayed in the file, else drops them).
*/
int txn_rollback(tkv_db *db){
  tkv_engine *e = db->e;
  tkv_txn *t = db->txn;
  int rc;
  engine_lock(e);
  rc = seg_rewind(e, t->start_off);
  if( rc ) rc = undo_failed(e, "rollback");
  undo_to(e, t, 0);
  txn_end(db);
  engine_unlock(e);
  return rc;
}

int txn_savepoint(tkv_db *db, int n){
  tkv_txn *t = db->txn;
  savepoint cur;
  if( n<0 ) return tkv_err(TKV_INVALID, "negative savepoint number");
  if( t->prepared ) return tkv_err(TKV_MISUSE, "savepoint after prepare");
  if( n>=t->sp_cap ){
    int cap = n + 8;
    savepoint *p = tkv_mem_realloc(t->sp, cap * sizeof *p);
    if( !p ) return tkv_err_nomem();
    t->sp = p;
    t->sp_cap = cap;
  }
  engine_lock(db->e);
  if( db->e->broken ){
    int rc = engine_broken_err(db->e);
    engine_unlock(db->e);
    return rc;
  }
  cur.undo_len = t->undo_len;
  cur.file_off = db->e->buf_off + db->e->buf_len;
  engine_unlock(db->e);
  cur.nrec = t->nrec;
  cur.count_delta = t->count_delta;
  if( n<t->nsp ) t->nsp = n;
  while( t->nsp<=n ) t->sp[t->nsp++] = cur;
  return TKV_OK;
}

int txn_rollback_to(tkv_db *db, int n){
  tkv_engine *e = db->e;
  tkv_txn *t = db->txn;
  savepoint to;
  int rc;
  if( n<0 ) return tkv_err(TKV_INVALID, "negative savepoint number");
  if( t->prepared ) return tkv_err(TKV_MISUSE, "rollback-to after prepare");
  if( n<t->nsp ){
    to = t->sp[n];
    t->nsp = n + 1;
  }else{
    to.undo_len = 0;
    to.file_off = t->start_off;
    to.nrec = 0;
  }
  engine_lock(e);
  if( e->broken ){
    rc = engine_broken_err(e);
  }else{
    /* The keydir and overlay go back to the savepoint whatever the file
    ** does: they must never point at records the rewind forgot (a read
    ** of one would wait for a flush that never comes).  If the records
    ** stay in the file, the engine is broken and the transaction can only
    ** be rolled back. */
    rc = seg_rewind(e, to.file_off);
    if( rc ) rc = undo_failed(e, "rollback to a savepoint");
    undo_to(e, t, to.undo_len);
    t->nrec = to.nrec;
  }
  engine_unlock(e);
  return rc;
}

int txn_release(tkv_db *db, int n){
  tkv_txn *t = db->txn;
  if( n<0 ) return tkv_err(TKV_INVALID, "negative savepoint number");
  if( n<t->nsp ) t->nsp = n;
  return TKV_OK;
}

/* ------------------------------------------------------------ Commit. */

/*
** Phase one: the commit record and the sync.  On failure the bytes of the
** commit are taken back.  Then:
**   - if the failure came before the commit's last record was in the file
**     (a write, an allocation, a size limit), the transaction is not
**     committed and stays open, to be rolled back or committed again;
**   - if the fdatasync failed, the engine is broken (BROKEN_SYNC): a second
**     fdatasync could report success for pages the kernel dropped.  The
**     failure is TKV_IO and the transaction can only be rolled back; like
**     any write whose sync failed, it may or may not be there after a
**     power loss;
**   - if in addition its commit record could not be taken back, the result
**     is TKV_BROKEN: the record is in the file and the next open will find
**     the transaction committed (tkv_rollback and the last tkv_close try to
**     cut it off again).
*/
int txn_prepare(tkv_db *db){
  tkv_engine *e = db->e;
  tkv_txn *t = db->txn;
  uint64_t before;
  int rc = TKV_OK, appended = 1;
  if( t->prepared ) return TKV_OK;
  engine_lock(e);
  if( e->broken ){
    rc = engine_broken_err(e);
    engine_unlock(e);
    return rc;
  }
  if( !t->autocommit && t->nrec==0 ){
    t->prepared = 1;
    engine_unlock(e);
    return TKV_OK;
  }
  before = e->buf_off + e->buf_len;
  if( !t->autocommit ){
    uint8_t count[TKV_COMMIT_VLEN];
    tkv_loc loc;
    tkv_rec_commit_value(count, t->nrec);
    rc = seg_append(e, TKV_REC_COMMIT, NULL, 0, count, TKV_COMMIT_VLEN, 0,
                    &loc);
    appended = rc==TKV_OK;
  }
  if( !rc ) rc = seg_commit_sync(e);
  if( rc ){
    /* Everything appended reached the file (the buffer is empty), so the
    ** error came from the fdatasync. */
    int sync_failed = appended && e->sync_failed;
    char cause[512];
    snprintf(cause, sizeof cause, "%s", tkv_errmsg());
    if( sync_failed && !e->broken ) e->broken = BROKEN_SYNC;
    if( seg_rewind(e, before) ){
      rc = tkv_err(TKV_BROKEN, "commit failed (%s) and its commit record "
                   "could not be taken back (%s): the next open will find "
                   "the transaction committed; writes are refused until "
                   "%s is reopened", cause, tkv_errmsg(), e->dir);
    }else if( sync_failed ){
      rc = tkv_err(rc, "%s; writes are refused until %s is reopened", cause,
                   e->dir);
    }else{
      rc = tkv_err(rc, "%s", cause);
    }
  }else{
    t->prepared = 1;
  }
  engine_unlock(e);
  return rc;
}

/* Publish a created entry that has no overlay state. */
static void publish_created(tkv_engine *e, kd_entry *en){
  unsigned flags = kd_entry_flags(en);
  if( flags & ENTRY_CHANGED ) return;       /* the overlay pass handles it */
  size_t klen;
  uint64_t size = entry_rec_size(en, kd_entry_loc(en));
  rtx_note(e, en, 1);
  kd_entry_set_flags(en, flags & ~ENTRY_NEW);
  e->keys++;
  e->live_bytes += size;
  seg_account(e, kd_entry_loc(en), (int64_t)size);
  kd_entry_key(en, &klen);
  e->user_bytes += klen + kd_entry_loc(en).vlen;
}

/* Publish one overlay state (its expiry time too: the room for it in the
** expiry table was reserved by the write). */
static void publish_changed(tkv_engine *e, over_slot *s){
  kd_entry *en = s->en;
  unsigned flags = kd_entry_flags(en);
  int was_new = (flags & ENTRY_NEW)!=0;
  size_t klen;
  kd_entry_key(en, &klen);
  rtx_note(e, en, was_new);
  if( !was_new ){
    uint64_t old = entry_rec_size(en, kd_entry_loc(en));
    e->live_bytes -= old;
    seg_account(e, kd_entry_loc(en), -(int64_t)old);
    e->keys--;
  }
  exp_del(e, en);
  if( s->deleted ){
    e->user_bytes += klen;
    kd_index_remove(e->index, en);
    rtx_drop(e, en);
    if( s->repl ) kd_entry_free(e->arena, s->repl);
    return;
  }
  if( s->repl ){
    /* The key's new row takes the old entry's place; the old id dies. */
    rtx_note(e, s->repl, 1);
    kd_index_replace(e->index, en, s->repl);
    rtx_drop(e, en);
    en = s->repl;
  }
  kd_entry_set_loc(en, s->loc);
  if( s->expire ) exp_set(e, en, s->expire);
  kd_entry_set_flags(en, 0);
  e->keys++;
  e->live_bytes += entry_rec_size(en, s->loc);
  seg_account(e, s->loc, (int64_t)entry_rec_size(en, s->loc));
  e->user_bytes += klen + s->loc.vlen;
}

/*
** Publishing a big transaction visits its overlay table in slot order,
** which is random in key order, and each slot's entry, and for a delete or
** a new row the keydir's path to it, is a cache miss; all under the
** exclusive lock, which readers wait for.  So slots go in windows of
** PUBLISH_WINDOW: the entries of the next window are asked for while this
** one is handled, and this window's keys that need the index are looked up
** together first (kd_index_find_many, misses overlapping) so that
** kd_index_remove and kd_index_replace walk cached paths.
*/
#define PUBLISH_WINDOW 32

typedef struct pub_window {
  size_t idx[PUBLISH_WINDOW];      /* occupied overlay slots */
  int n;
} pub_window;

/* The next up to PUBLISH_WINDOW occupied slots from *pi; their entries
** are prefetched. */
static void pub_gather(const tkv_txn *t, size_t *pi, pub_window *w){
  w->n = 0;
  for(; *pi<t->over_cap && w->n<PUBLISH_WINDOW; (*pi)++){
    if( t->over[*pi].en ){
      __builtin_prefetch(t->over[*pi].en);
      w->idx[w->n++] = *pi;
    }
  }
}

/* Publish a window's slots, the index paths of removals and replacements
** fetched together first. */
static void pub_window_publish(tkv_engine *e, tkv_txn *t, const pub_window *w){
  const void *keys[PUBLISH_WINDOW];
  size_t klens[PUBLISH_WINDOW];
  kd_entry *found[PUBLISH_WINDOW];
  size_t m = 0;
  for(int k=0; k<w->n; k++){
    const over_slot *s = &t->over[w->idx[k]];
    if( s->deleted || s->repl ){
      keys[m] = kd_entry_key(s->en, &klens[m]);
      m++;
    }
  }
  if( m>1 ) kd_index_find_many(e->index, m, keys, klens, found);
  for(int k=0; k<w->n; k++) publish_changed(e, &t->over[w->idx[k]]);
}

/*
** Phase two: make the prepared transaction visible to all.  Allocates
** nothing and cannot fail.  It does no merge work: it only tells the
** background merger (merge.c) that stale bytes grew.
*/
void txn_finish(tkv_db *db){
  tkv_engine *e = db->e;
  tkv_txn *t = db->txn;
  size_t i;
  engine_lock(e);
  engine_wrlock(e);
  for(i=0; i<t->undo_len; i++){
    if( t->undo[i].created ) publish_created(e, t->undo[i].en);
    /* A replacement superseded by a later one is referenced nowhere. */
    if( t->undo[i].made_repl && t->undo[i].prev_repl ){
      kd_entry_free(e->arena, t->undo[i].prev_repl);
    }
  }
  {
    pub_window w[2];
    int cur = 0;
    i = 0;
    pub_gather(t, &i, &w[cur]);
    while( w[cur].n>0 ){
      pub_gather(t, &i, &w[!cur]);     /* the next window's entries, asked */
      pub_window_publish(e, t, &w[cur]);
      cur = !cur;
    }
  }
  if( e->active ) e->total_bytes += e->active->end - t->start_off;
  seg_map_grow(e);
  atomic_fetch_add(&e->version, 1);
  engine_wrunlock(e);
  txn_end(db);
  merge_notify(e);
  engine_unlock(e);
}
