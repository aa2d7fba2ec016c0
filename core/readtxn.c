/*
** Read transactions (see readtxn.h for the idea and the locking).
**
** Each open read transaction has a hash table from entry to its
** before-image, and an ordered index of the entries that left the
** committed index since it began.  The engine keeps, in the order they
** died, the entries that some read transaction may still read (the
** graveyard), each with the clock of read transactions at its death: an
** entry is needed by the read transactions that began at or before that
** stamp, and is freed when the last of them ends.
**
** The costs: nothing at all while no read transaction is open (each hook
** is one load); while some are, each committed change of a key costs one
** hash probe per read transaction, and each deletion an index insert.
** Memory grows with what changes during the oldest read transaction, as
** an old reader holds back SQLite's WAL checkpoints and LMDB's free pages.
*/
#include "readtxn.h"
#include "mem.h"

#include <string.h>

typedef struct rtx_slot {
  kd_entry *en;        /* NULL: empty slot */
  tkv_loc loc;         /* state when the read transaction began */
  uint64_t expire;
  int absent;          /* created since: not seen */
} rtx_slot;

struct tkv_rtx {
  tkv_rtx *next, *prev;     /* the engine's list (mu) */
  uint64_t start;           /* e->rtx_clock when it began */
  uint64_t keys;            /* committed live keys then */
  rtx_slot *slot;           /* open addressing, power-of-two size */
  size_t cap, n;
  rtx_slot *old;            /* the table before the last growth, whose
                            ** slots move into slot a few at a time */
  size_t old_cap, moved;    /* its size; slots before `moved` have moved */
  kd_index *gone;           /* entries that left the index since, or NULL */
  int rc;                   /* TKV_NOMEM once a record could not be kept */
};

typedef struct rtx_grave {
  kd_entry *en;
  uint64_t stamp;           /* e->rtx_clock when it left the index */
} rtx_grave;

/* ------------------------------------------------------- Before-images. */

static size_t slot_hash(const kd_entry *en, size_t cap){
  uint64_t h = (uint64_t)(uintptr_t)en * 0x9e3779b97f4a7c15ull;
  return (size_t)(h >> 32) & (cap - 1);
}

static rtx_slot *table_find(rtx_slot *t, size_t cap, const kd_entry *en){
  size_t i;
  if( !cap ) return NULL;
  for(i=slot_hash(en, cap); t[i].en; i=(i+1)&(cap-1)){
    if( t[i].en==en ) return &t[i];
  }
  return NULL;
}

/* en's slot: in the table, or in the old one while it is being moved (a
** slot never changes once written, so a moved one is the same in both). */
static rtx_slot *slot_find(const tkv_rtx *r, const kd_entry *en){
  rtx_slot *s = table_find(r->slot, r->cap, en);
  if( !s && r->old ) s = table_find(r->old, r->old_cap, en);
  return s;
}

/* Put a copy of slot *s, whose entry is in neither table, into the table. */
static void table_put(tkv_rtx *r, const rtx_slot *s){
  size_t j = slot_hash(s->en, r->cap);
  while( r->slot[j].en ) j = (j+1) & (r->cap-1);
  r->slot[j] = *s;
  r->n++;
}

/* Move up to k slots of the old table into the table (all: k 0), and
** free it once empty.  Growing moves a few at each insert, as Redis's
** dict rehashes: no insert pays for copying a large table, which a
** writer holding the engine's locks would feel as a stall. */
static void slot_move(tkv_rtx *r, size_t k){
  if( !r->old ) return;
  for(size_t done=0; r->moved<r->old_cap && (k==0 || done<k); r->moved++){
    rtx_slot *s = &r->old[r->moved];
    if( !s->en ) continue;
    table_put(r, s);
    done++;
  }
  if( r->moved==r->old_cap ){
    tkv_mem_free(r->old);
    r->old = NULL;
    r->old_cap = r->moved = 0;
  }
}

/* Room for one more slot: the load (old slots still to move counted)
** stays <= 1/2.  0, or TKV_NOMEM. */
static int slot_reserve(tkv_rtx *r){
  size_t cap;
  rtx_slot *p;
  slot_move(r, 8);
  if( (r->n + 1)*2 <= r->cap ) return TKV_OK;
  slot_move(r, 0);      /* (growing again before the last move ended) */
  cap = r->cap ? r->cap*2 : 64;
  p = tkv_mem_calloc(cap, sizeof *p);
  if( !p ) return TKV_NOMEM;
  r->old = r->slot;
  r->old_cap = r->cap;
  r->moved = 0;
  r->slot = p;
  r->cap = cap;
  /* n counts what the table holds; the old slots come as they move. */
  r->n = 0;
  return TKV_OK;
}

/* The state of en as the engine's committed index has it now. */
static void state_now(tkv_engine *e, kd_entry *en, tkv_loc *ploc,
                      uint64_t *pexpire){
  *ploc = kd_entry_loc(en);
  *pexpire = tkv_vlen_expires(ploc->vlen) ? exp_get(e, en) : 0;
}

/* r cannot keep its view: every read through it fails from now on. */
static void lose_view(tkv_rtx *r){
  r->rc = TKV_NOMEM;
}

void rtx_note(tkv_engine *e, kd_entry *en, int absent){
  ASSERT_TABLE_LOCKED(e);
  for(tkv_rtx *r=e->rtxs; r; r=r->next){
    rtx_slot s;
    if( r->rc || slot_find(r, en) ) continue;
    if( slot_reserve(r) ){ lose_view(r); continue; }
    memset(&s, 0, sizeof s);
    s.en = en;
    s.absent = absent;
    if( !absent ) state_now(e, en, &s.loc, &s.expire);
    table_put(r, &s);
  }
}

void rtx_drop(tkv_engine *e, kd_entry *en){
  int need = 0;
  ASSERT_TABLE_LOCKED(e);
  if( e->rtxs && e->ngrave==e->grave_cap ){
    size_t cap = e->grave_cap ? e->grave_cap*2 : 64;
    rtx_grave *p = tkv_mem_realloc(e->grave, cap * sizeof *p);
    if( p ){
      e->grave = p;
      e->grave_cap = cap;
    }else{
      /* Nowhere to keep it: the read transactions that see it lose their
      ** view rather than read freed memory. */
      for(tkv_rtx *r=e->rtxs; r; r=r->next){
        rtx_slot *s = slot_find(r, en);
        if( s && !s->absent ) lose_view(r);
      }
      kd_entry_free(e->arena, en);
      atomic_fetch_add(&e->version, 1);   /* no cursor keeps en */
      return;
    }
  }
  for(tkv_rtx *r=e->rtxs; r; r=r->next){
    rtx_slot *s = slot_find(r, en);
    /* rtx_note ran first, so a view that still works has a slot. */
    if( r->rc || !s || s->absent ) continue;
    if( !r->gone ) r->gone = kd_index_new();
    if( !r->gone || kd_index_insert(r->gone, en) ){
      lose_view(r);
      continue;
    }
    need = 1;
  }
  if( !need ){
    kd_entry_free(e->arena, en);
    return;
  }
  e->grave[e->ngrave].en = en;
  e->grave[e->ngrave].stamp = e->rtx_clock;
  e->ngrave++;
  atomic_fetch_add(&e->version, 1);   /* cursors of r: seek again */
}

/* --------------------------------------------------- Begin, end, holds. */

int rtx_begin(tkv_db *db){
  tkv_engine *e = db->e;
  tkv_rtx *r;
  ASSERT_MU(e);
  assert( !db->rtx && !db->txn );
  r = tkv_mem_calloc(1, sizeof *r);
  if( !r ) return tkv_err_nomem();
  r->start = ++e->rtx_clock;
  r->keys = e->keys;
  r->next = e->rtxs;
  if( e->rtxs ) e->rtxs->prev = r;
  e->rtxs = r;
  db->rtx = r;
  return TKV_OK;
}

/* Free the graveyard's entries that no open read transaction may read:
** those that died before the oldest one began.  Caller holds mu. */
static void bury(tkv_engine *e){
  uint64_t oldest = UINT64_MAX;
  size_t k = 0;
  ASSERT_MU(e);
  for(tkv_rtx *r=e->rtxs; r; r=r->next){
    if( r->start<oldest ) oldest = r->start;
  }
  while( k<e->ngrave && e->grave[k].stamp<oldest ) k++;
  if( k==0 ) return;
  engine_wrlock(e);
  for(size_t i=0; i<k; i++) kd_entry_free(e->arena, e->grave[i].en);
  memmove(e->grave, e->grave + k, (e->ngrave - k) * sizeof *e->grave);
  e->ngrave -= k;
  engine_wrunlock(e);
}

tkv_rtx *rtx_end(tkv_db *db){
  tkv_engine *e = db->e;
  tkv_rtx *r = db->rtx;
  ASSERT_MU(e);
  if( !r ) return NULL;
  /* Its owner holds db->mu, so none of its reads runs now. */
  if( r->prev ) r->prev->next = r->next;
  else e->rtxs = r->next;
  if( r->next ) r->next->prev = r->prev;
  db->rtx = NULL;
  /* The handle's cursors walk its gone index: they seek again. */
  atomic_fetch_add(&e->version, 1);
  bury(e);
  if( !e->rtxs ) share_ack_seen(e);
  return r;
}

void rtx_free(tkv_rtx *r){
  if( !r ) return;
  if( r->gone ) kd_index_free(r->gone);
  tkv_mem_free(r->slot);
  tkv_mem_free(r->old);
  tkv_mem_free(r);
}

int rtx_any(tkv_engine *e){
  ASSERT_MU(e);
  return e->rtxs!=NULL;
}

uint64_t rtx_open(tkv_engine *e){
  uint64_t n = 0;
  ASSERT_MU(e);
  for(tkv_rtx *r=e->rtxs; r; r=r->next) n++;
  return n;
}

uint64_t rtx_stamp(tkv_engine *e){
  ASSERT_MU(e);
  return e->rtx_clock;
}

int rtx_holds(tkv_engine *e, uint64_t stamp){
  ASSERT_MU(e);
  for(tkv_rtx *r=e->rtxs; r; r=r->next){
    if( r->start<=stamp ) return 1;
  }
  return 0;
}

int rtx_kept(tkv_engine *e, kd_entry *en){
  const uint8_t *key;
  size_t klen;
  ASSERT_READER(e);
  if( e->ngrave==0 ) return 0;
  key = kd_entry_key(en, &klen);
  return kd_index_find(e->index, key, klen)!=en;
}

void rtx_free_all(tkv_engine *e){
  assert( !e->rtxs );
  tkv_mem_free(e->grave);
  e->grave = NULL;
  e->ngrave = e->grave_cap = 0;
}

/* -------------------------------------------------------------- Reads. */

int rtx_visible(tkv_engine *e, const tkv_rtx *r, kd_entry *en, tkv_loc *ploc,
                uint64_t *pexpire){
  rtx_slot *s = slot_find(r, en);
  ASSERT_READER(e);
  if( s ){
    if( s->absent ) return 0;
    *ploc = s->loc;
    *pexpire = s->expire;
    return 1;
  }
  if( kd_entry_flags(en) & ENTRY_NEW ) return 0;
  state_now(e, en, ploc, pexpire);
  return 1;
}

kd_entry *rtx_find(tkv_engine *e, const tkv_rtx *r, const void *key,
                   size_t klen){
  kd_entry *en = kd_index_find(e->index, key, klen), *g;
  tkv_loc loc;
  uint64_t at;
  if( en && rtx_visible(e, r, en, &loc, &at) ) return en;
  g = r->gone ? kd_index_find(r->gone, key, klen) : NULL;
  return g ? g : en;
}

const kd_index *rtx_gone(const tkv_rtx *r){
  return r->gone;
}

kd_entry *rtx_entry_of_id(tkv_engine *e, const tkv_rtx *r, kd_entry *en){
  const uint8_t *key;
  size_t klen;
  if( !en ) return NULL;
  key = kd_entry_key(en, &klen);
  if( kd_index_find(e->index, key, klen)==en ) return en;
  if( r->gone && kd_index_find(r->gone, key, klen)==en ) return en;
  return NULL;
}

/* Count the expired keys of the expiry table that r sees as they are. */
typedef struct rtx_expired {
  const tkv_rtx *r;
  uint64_t n;
} rtx_expired;

static int count_expired(void *ctx, kd_entry *en, uint64_t at){
  rtx_expired *c = ctx;
  (void)at;
  if( !slot_find(c->r, en) && !(kd_entry_flags(en) & ENTRY_NEW) ) c->n++;
  return 0;
}

uint64_t rtx_count(tkv_engine *e, tkv_rtx *r, uint64_t now){
  rtx_expired c;
  ASSERT_MU(e);
  if( now==0 ) return r->keys;
  c.r = r;
  c.n = 0;
  exp_walk_expired(e, now - 1, count_expired, &c);
  /* One table to walk.  The hooks change r only holding mu, as the
  ** caller does, and its owner's reads wait for db->mu. */
  slot_move(r, 0);
  for(size_t i=0; i<r->cap; i++){
    const rtx_slot *s = &r->slot[i];
    if( s->en && !s->absent && s->expire && s->expire<now ) c.n++;
  }
  return r->keys - c.n;
}

int rtx_status(const tkv_rtx *r){
  if( r->rc ){
    return tkv_err(r->rc, "out of memory keeping the view of a read "
                   "transaction: end it (tkv_read_end) and begin again");
  }
  return TKV_OK;
}

int rtx_changed(const tkv_rtx *r){
  return r->rc || r->n>0 || r->old || (r->gone && kd_index_count(r->gone)>0);
}
