/*
** The expiry table: the expiry time of every keydir entry whose record
** carries one (a value word with TKV_VLEN_EXPIRES, format.h).
**
** WHY A SIDE TABLE.  Most keys never expire, and a keydir entry has no
** spare bytes (keydir.c: a 16-byte key takes a 32-byte slot).  So the time
** lives here, and the flag bit of the value word in the entry's location
** says whether to look: a read of a key without expiry never touches this
** table.  The table is keyed by the entry, not by the record's location,
** so a merge that moves a record (the entry keeps its identity, only its
** location changes) has nothing to update here.
**
** TWO STRUCTURES.  A min-heap of (time, entry) orders the times, and an
** open-addressing hash from entry to its position in the heap finds an
** entry's time and lets a delete or a new time fix the heap in O(log n).
** The heap is what makes the expiry step and tkv_count cheap: the keys
** whose time has passed are exactly the heap's nodes at or above `now`
** whose parents are too, so exp_walk_expired visits those and their
** children only (at most 2k+1 nodes for k expired keys), never the keys
** still to expire, however many there are.
**
** Locking is the keydir's: changes are made holding mu and rw exclusively
** (or during recovery), lookups hold rw shared or mu.
*/
#include "engine.h"
#include "mem.h"
#include "testhook.h"

#include <string.h>
#include <time.h>

typedef struct exp_slot {
  kd_entry *en;        /* NULL: empty */
  size_t hi;           /* the entry's index in the heap */
} exp_slot;

typedef struct exp_node {
  uint64_t at;         /* expiry time, ms since the epoch */
  kd_entry *en;
} exp_node;

struct exp_table {
  exp_slot *slot;      /* power-of-two size, at most half full */
  exp_node *heap;      /* cap/2 nodes, n in use; heap[0] is the soonest */
  size_t cap, n;
};

static size_t exp_hash(const kd_entry *en, size_t cap){
  uint64_t h = (uint64_t)(uintptr_t)en * 0x9e3779b97f4a7c15ull;
  return (size_t)(h >> 32) & (cap - 1);
}

static exp_slot *exp_find(const exp_table *t, const kd_entry *en){
  size_t i;
  if( !t || !t->cap ) return NULL;
  for(i=exp_hash(en, t->cap); t->slot[i].en; i=(i+1)&(t->cap-1)){
    if( t->slot[i].en==en ) return &t->slot[i];
  }
  return NULL;
}

/* Put node x at heap index i, telling its hash slot where it is. */
static void heap_place(exp_table *t, size_t i, exp_node x){
  exp_slot *s = exp_find(t, x.en);
  assert( s );
  t->heap[i] = x;
  s->hi = i;
}

/* Restore the heap order around index i, whose time changed. */
static void heap_fix(exp_table *t, size_t i){
  exp_node x = t->heap[i];
  while( i>0 && t->heap[(i-1)/2].at > x.at ){
    heap_place(t, i, t->heap[(i-1)/2]);
    i = (i-1)/2;
  }
  for(;;){
    size_t c = 2*i + 1;
    if( c>=t->n ) break;
    if( c+1<t->n && t->heap[c+1].at < t->heap[c].at ) c++;
    if( t->heap[c].at >= x.at ) break;
    heap_place(t, i, t->heap[c]);
    i = c;
  }
  heap_place(t, i, x);
}

/* Move every entry into a table of cap slots.  0, or -1 out of memory. */
static int exp_rehash(exp_table *t, size_t cap){
  exp_slot *p = tkv_mem_calloc(cap, sizeof *p);
  exp_node *h = tkv_mem_calloc(cap/2, sizeof *h);
  if( !p || !h ){
    tkv_mem_free(p);
    tkv_mem_free(h);
    return -1;
  }
  for(size_t i=0; i<t->cap; i++){
    if( t->slot[i].en ){
      size_t j = exp_hash(t->slot[i].en, cap);
      while( p[j].en ) j = (j+1) & (cap-1);
      p[j] = t->slot[i];
    }
  }
  if( t->n ) memcpy(h, t->heap, t->n * sizeof *h);
  tkv_mem_free(t->slot);
  tkv_mem_free(t->heap);
  t->slot = p;
  t->heap = h;
  t->cap = cap;
  return 0;
}

/*
** Make room for `more` entries beyond those in the table, so that that
** many exp_set calls cannot fail (a commit allocates nothing).  Caller
** holds mu (the table is only grown while rw is held exclusively).
*/
int exp_reserve(tkv_engine *e, size_t more){
  exp_table *t = e->expires;
  size_t cap;
  int rc;
  ASSERT_MU(e);
  if( !t ){
    t = tkv_mem_calloc(1, sizeof *t);
    if( !t ) return tkv_err_nomem();
    engine_wrlock(e);
    e->expires = t;
    engine_wrunlock(e);
  }
  if( (t->n + more)*2 <= t->cap ) return TKV_OK;
  cap = t->cap ? t->cap : 64;
  while( cap < (t->n + more)*2 ) cap *= 2;
  engine_wrlock(e);
  rc = exp_rehash(t, cap);
  engine_wrunlock(e);
  return rc ? tkv_err_nomem() : TKV_OK;
}

/* Set en's expiry time (room was reserved).  Caller holds mu and rw
** exclusively. */
void exp_set(tkv_engine *e, kd_entry *en, uint64_t at){
  exp_table *t = e->expires;
  exp_slot *s;
  ASSERT_TABLE_LOCKED(e);
  assert( t && at );
  s = exp_find(t, en);
  if( !s ){
    size_t i = exp_hash(en, t->cap);
    assert( t->n < t->cap/2 );
    while( t->slot[i].en ) i = (i+1) & (t->cap-1);
    s = &t->slot[i];
    s->en = en;
    s->hi = t->n;
    t->heap[t->n].en = en;
    t->n++;
  }
  t->heap[s->hi].at = at;
  heap_fix(t, s->hi);
}

/* Forget en's expiry time, if it has one: backward-shift deletion from the
** hash, the heap's last node into the hole.  Caller holds mu and rw
** exclusively. */
void exp_del(tkv_engine *e, kd_entry *en){
  exp_table *t = e->expires;
  exp_slot *s = exp_find(t, en);
  size_t i, j, mask, hi;
  ASSERT_TABLE_LOCKED(e);
  if( !s ) return;
  hi = s->hi;
  mask = t->cap - 1;
  i = (size_t)(s - t->slot);
  t->slot[i].en = NULL;
  for(j=(i+1)&mask; t->slot[j].en; j=(j+1)&mask){
    size_t home = exp_hash(t->slot[j].en, t->cap);
    if( (j>i && (home<=i || home>j)) || (j<i && home<=i && home>j) ){
      t->slot[i] = t->slot[j];
      t->slot[j].en = NULL;
      i = j;
    }
  }
  t->n--;
  if( hi<t->n ){
    heap_place(t, hi, t->heap[t->n]);
    heap_fix(t, hi);
  }
}

/* en's expiry time, 0 if none.  Caller holds rw or mu. */
uint64_t exp_get(tkv_engine *e, const kd_entry *en){
  exp_slot *s;
  ASSERT_READER(e);
  s = exp_find(e->expires, en);
  return s ? e->expires->heap[s->hi].at : 0;
}

/* Entries with an expiry time (committed or not). */
size_t exp_count(tkv_engine *e){
  return e->expires ? e->expires->n : 0;
}

/* The heap's subtree at i, nodes with times <= now only; nonzero when fn
** asked to stop. */
static int walk_node(exp_table *t, size_t i, uint64_t now, exp_walk_fn fn,
                     void *ctx){
  if( i>=t->n || t->heap[i].at>now ) return 0;
  if( fn(ctx, t->heap[i].en, t->heap[i].at) ) return 1;
  if( walk_node(t, 2*i+1, now, fn, ctx) ) return 1;
  return walk_node(t, 2*i+2, now, fn, ctx);
}

/*
** Call fn for every entry in the table whose time is <= now, until fn
** returns nonzero (fn must not change the table).  Visits only those
** entries and their children in the heap.  Returns whether any entry had
** expired.  Caller holds rw or mu, so no change runs meanwhile.
*/
int exp_walk_expired(tkv_engine *e, uint64_t now, exp_walk_fn fn, void *ctx){
  exp_table *t = e->expires;
  ASSERT_READER(e);
  if( !t || !t->n || t->heap[0].at>now ) return 0;
  (void)walk_node(t, 0, now, fn, ctx);
  return 1;
}

void exp_free(tkv_engine *e){
  if( !e->expires ) return;
  tkv_mem_free(e->expires->slot);
  tkv_mem_free(e->expires->heap);
  tkv_mem_free(e->expires);
  e->expires = NULL;
}

/* ---- The clock. */

static _Atomic uint64_t test_now;   /* 0: the real clock */
static _Thread_local uint64_t pinned; /* tkv_clock_pin's time, 0: none */

uint64_t tkv_clock_ms(void){
  uint64_t t = atomic_load(&test_now);
  struct timespec ts;
  if( t ) return t;
  if( pinned ) return pinned;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec*1000u + (uint64_t)ts.tv_nsec/1000000u;
}

void tkv_clock_pin(uint64_t now_ms){
  pinned = now_ms;
}

void tkv_test_set_clock(unsigned long long now_ms){
  atomic_store(&test_now, now_ms);
}
