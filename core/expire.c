/*
** The expiry table: the expiry time of every keydir entry whose record
** carries one (a value word with TKV_VLEN_EXPIRES, format.h).
**
** WHY A SIDE TABLE.  Most keys never expire, and a keydir entry has no
** spare bytes (keydir.c: a 16-byte key takes a 32-byte slot).  So the time
** lives here, in an open-addressing hash from entry to time, and the flag
** bit of the value word in the entry's location says whether to look: a
** read of a key without expiry never touches this table.  The table is
** keyed by the entry, not by the record's location, so a merge that moves
** a record (the entry keeps its identity, only its location changes) has
** nothing to update here.
**
** Counting.  tkv_count must leave expired keys out at once, before the
** tombstone that removes them is written.  The table keeps `min`, a lower
** bound of every time in it: while min is in the future no key has
** expired and the count is the keydir's.  Otherwise the table is walked
** (and min made exact again), which costs one pass over the keys with an
** expiry; the expiry step (tkv_expire_step) deletes what expired, so the
** walks stop soon after.
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
  uint64_t at;         /* expiry time, ms since the epoch */
} exp_slot;

struct exp_table {
  exp_slot *slot;      /* power-of-two size */
  size_t cap, n;
  _Atomic uint64_t min; /* <= every time in the table */
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

/* Move every entry into a table of cap slots.  0, or -1 out of memory. */
static int exp_rehash(exp_table *t, size_t cap){
  exp_slot *p = tkv_mem_calloc(cap, sizeof *p);
  if( !p ) return -1;
  for(size_t i=0; i<t->cap; i++){
    if( t->slot[i].en ){
      size_t j = exp_hash(t->slot[i].en, cap);
      while( p[j].en ) j = (j+1) & (cap-1);
      p[j] = t->slot[i];
    }
  }
  tkv_mem_free(t->slot);
  t->slot = p;
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
    t->min = UINT64_MAX;
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
  assert( t && t->n < t->cap );
  s = exp_find(t, en);
  if( !s ){
    size_t i = exp_hash(en, t->cap);
    while( t->slot[i].en ) i = (i+1) & (t->cap-1);
    s = &t->slot[i];
    s->en = en;
    t->n++;
  }
  s->at = at;
  if( at<atomic_load(&t->min) ) atomic_store(&t->min, at);
}

/* Forget en's expiry time, if it has one (backward-shift deletion).
** Caller holds mu and rw exclusively. */
void exp_del(tkv_engine *e, kd_entry *en){
  exp_table *t = e->expires;
  exp_slot *s = exp_find(t, en);
  size_t i, j, mask;
  ASSERT_TABLE_LOCKED(e);
  if( !s ) return;
  mask = t->cap - 1;
  i = (size_t)(s - t->slot);
  t->slot[i].en = NULL;
  t->n--;
  for(j=(i+1)&mask; t->slot[j].en; j=(j+1)&mask){
    size_t home = exp_hash(t->slot[j].en, t->cap);
    if( (j>i && (home<=i || home>j)) || (j<i && home<=i && home>j) ){
      t->slot[i] = t->slot[j];
      t->slot[j].en = NULL;
      i = j;
    }
  }
}

/* en's expiry time, 0 if none.  Caller holds rw or mu. */
uint64_t exp_get(tkv_engine *e, const kd_entry *en){
  exp_slot *s;
  ASSERT_READER(e);
  s = exp_find(e->expires, en);
  return s ? s->at : 0;
}

/* Entries with an expiry time (committed or not). */
size_t exp_count(tkv_engine *e){
  return e->expires ? e->expires->n : 0;
}

/*
** Call fn for every entry in the table whose time is <= now, until fn
** returns nonzero; a pass that saw every entry makes min exact.  Returns
** whether the walk ran (0 when min says nothing expired).  Caller holds rw
** or mu, so no change runs meanwhile: the exact min it stores stays true
** (min is atomic only because several such walkers may store it at once).
*/
int exp_walk_expired(tkv_engine *e, uint64_t now, exp_walk_fn fn, void *ctx){
  exp_table *t = e->expires;
  uint64_t min = UINT64_MAX;
  int whole = 1;
  ASSERT_READER(e);
  if( !t || atomic_load(&t->min)>now ) return 0;
  for(size_t i=0; i<t->cap; i++){
    exp_slot *s = &t->slot[i];
    if( !s->en ) continue;
    if( s->at<min ) min = s->at;
    if( s->at<=now && fn(ctx, s->en, s->at) ){ whole = 0; break; }
  }
  if( whole ) atomic_store(&t->min, min);
  return 1;
}

void exp_free(tkv_engine *e){
  if( !e->expires ) return;
  tkv_mem_free(e->expires->slot);
  tkv_mem_free(e->expires);
  e->expires = NULL;
}

/* ---- The clock. */

static _Atomic uint64_t test_now;   /* 0: the real clock */

uint64_t tkv_clock_ms(void){
  uint64_t t = atomic_load(&test_now);
  struct timespec ts;
  if( t ) return t;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec*1000u + (uint64_t)ts.tv_nsec/1000000u;
}

void tkv_test_set_clock(unsigned long long now_ms){
  atomic_store(&test_now, now_ms);
}
