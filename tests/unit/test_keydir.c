/*
** Tests of the keydir (core/keydir.h): the arena's ids and the ordered
** index, checked against a sorted-array model under random operations,
** with allocation failures injected at every allocation point.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "keydir.h"
#include "testhook.h"
#include "testutil.h"

/* ------------------------------------------------------------ Helpers. */

static tkv_loc loc_of(uint32_t n){
  tkv_loc l;
  l.file = n;
  l.off = n*7u + 1;
  l.vlen = n ^ 0x5a5a5a5au;
  return l;
}

/* memcmp order, the shorter key first on an equal prefix. */
static int cmp_keys(const uint8_t *a, size_t alen, const uint8_t *b,
                    size_t blen){
  size_t n = alen<blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  if( c ) return c;
  return alen<blen ? -1 : alen>blen;
}

static void assert_entry_key(const kd_entry *e, const void *key, size_t klen){
  size_t elen;
  const uint8_t *ek;
  assert_non_null(e);
  ek = kd_entry_key(e, &elen);
  assert_int_equal(elen, klen);
  if( klen ) assert_memory_equal(ek, key, klen);
}

/* ------------------------------------------------------ The model. */

typedef struct mkey {
  uint8_t *key;
  size_t len;
  kd_entry *e;
} mkey;

typedef struct model {
  mkey *v;
  size_t n, cap;
} model;

/* Index of the first model key >= key (> key when after). */
static size_t model_lower(const model *m, const uint8_t *key, size_t klen,
                          int after){
  size_t lo = 0, hi = m->n;
  while( lo<hi ){
    size_t mid = (lo + hi)/2;
    int c = cmp_keys(m->v[mid].key, m->v[mid].len, key, klen);
    if( c<0 || (after && c==0) ) lo = mid + 1; else hi = mid;
  }
  return lo;
}

static int model_has(const model *m, const uint8_t *key, size_t klen,
                     size_t *pi){
  size_t i = model_lower(m, key, klen, 0);
  *pi = i;
  return i<m->n && cmp_keys(m->v[i].key, m->v[i].len, key, klen)==0;
}

static void model_insert_at(model *m, size_t i, const uint8_t *key,
                            size_t klen, kd_entry *e){
  if( m->n==m->cap ){
    m->cap = m->cap ? m->cap*2 : 64;
    m->v = realloc(m->v, m->cap*sizeof(*m->v));
    assert_non_null(m->v);
  }
  memmove(m->v + i + 1, m->v + i, (m->n - i)*sizeof(*m->v));
  m->v[i].key = malloc(klen ? klen : 1);
  assert_non_null(m->v[i].key);
  if( klen ) memcpy(m->v[i].key, key, klen);
  m->v[i].len = klen;
  m->v[i].e = e;
  m->n++;
}

static void model_remove_at(model *m, size_t i){
  free(m->v[i].key);
  memmove(m->v + i, m->v + i + 1, (m->n - i - 1)*sizeof(*m->v));
  m->n--;
}

static void model_clear(model *m){
  size_t i;
  for(i=0; i<m->n; i++) free(m->v[i].key);
  free(m->v);
  memset(m, 0, sizeof(*m));
}

/* The whole index, in order, is exactly the model. */
static void check_all(const kd_index *x, const model *m){
  kd_iter it;
  kd_entry *e;
  size_t i = 0;
  assert_int_equal(kd_index_count(x), m->n);
  for(e=kd_iter_seek(&it, x, NULL, 0, 0); e; e=kd_iter_next(&it)){
    assert_true(i<m->n);
    assert_ptr_equal(e, m->v[i].e);
    assert_entry_key(e, m->v[i].key, m->v[i].len);
    i++;
  }
  assert_int_equal(i, m->n);
  assert_null(kd_iter_next(&it));
}

/* A random key from a mix of shapes that stress a radix tree: short keys
** over a tiny alphabet with 0x00 (prefixes of each other, the empty key),
** keys behind a long shared prefix cut at every length, wide
** one- and two-byte fans, and plain random bytes. */
static size_t random_key(uint64_t *rs, uint8_t *buf){
  static const uint8_t alpha[] = {0x00, 'a', 'b', 0xff};
  uint64_t r = tu_rand(rs);
  size_t len, i;
  switch( r%5 ){
    case 0:
      len = (size_t)(tu_rand(rs)%7);
      for(i=0; i<len; i++) buf[i] = alpha[tu_rand(rs)%4];
      return len;
    case 1: {
      static const char common[] = "common/prefix/of/some/length/";
      size_t cut = (size_t)(tu_rand(rs)%(sizeof(common)));
      memcpy(buf, common, cut);
      len = cut + (size_t)(tu_rand(rs)%4);
      for(i=cut; i<len; i++) buf[i] = alpha[tu_rand(rs)%4];
      return len;
    }
    case 2:
      len = 1 + (size_t)(tu_rand(rs)%2);
      for(i=0; i<len; i++) buf[i] = (uint8_t)tu_rand(rs);
      return len;
    case 3:
      memcpy(buf, "user:", 5);
      len = 5 + (size_t)(tu_rand(rs)%5);
      for(i=5; i<len; i++) buf[i] = (uint8_t)('0' + tu_rand(rs)%10);
      return len;
    default:
      len = (size_t)(tu_rand(rs)%40);
      for(i=0; i<len; i++) buf[i] = (uint8_t)tu_rand(rs);
      return len;
  }
}

/* A seek must agree with the model, and a few steps after it too. */
static void check_seek(const kd_index *x, const model *m, const uint8_t *key,
                       size_t klen, int after, int steps){
  kd_iter it;
  size_t i = model_lower(m, key, klen, after);
  kd_entry *e = kd_iter_seek(&it, x, klen ? key : NULL, klen, after);
  int s;
  for(s=0; s<=steps; s++){
    if( i>=m->n ){ assert_null(e); return; }
    assert_ptr_equal(e, m->v[i].e);
    e = kd_iter_next(&it);
    i++;
  }
}

/* ------------------------------------------------------------- Tests. */

static void test_empty(void **state){
  kd_index *x = kd_index_new();
  kd_iter it;
  (void)state;
  assert_non_null(x);
  assert_int_equal(kd_index_count(x), 0);
  assert_null(kd_index_find(x, NULL, 0));
  assert_null(kd_index_find(x, "a", 1));
  assert_null(kd_iter_seek(&it, x, NULL, 0, 0));
  assert_null(kd_iter_next(&it));
  assert_null(kd_iter_seek(&it, x, "a", 1, 1));
  assert_true(kd_index_bytes(x)>0);
  kd_index_free(x);
}

/* "" < "a" < "a\0" < "a\0\0" < "ab" < "b", with keys that are prefixes of
** each other ending at inner nodes. */
static void test_prefix_order(void **state){
  static const struct { const char *k; size_t n; } keys[] = {
    {"", 0}, {"a", 1}, {"a\0", 2}, {"a\0\0", 3}, {"a\0b", 3}, {"ab", 2},
    {"abc", 3}, {"b", 1}, {"\xff", 1}, {"\xff\xff", 2},
  };
  size_t nk = sizeof(keys)/sizeof(keys[0]), i, j;
  uint64_t rs = 7;
  (void)state;
  for(j=0; j<20; j++){   /* several insertion orders */
    kd_arena *a = kd_arena_new();
    kd_index *x = kd_index_new();
    size_t order[16];
    kd_iter it;
    kd_entry *e;
    for(i=0; i<nk; i++) order[i] = i;
    for(i=nk-1; j && i>0; i--){
      size_t r = (size_t)(tu_rand(&rs)%(i+1)), t = order[i];
      order[i] = order[r]; order[r] = t;
    }
    for(i=0; i<nk; i++){
      e = kd_entry_new(a, keys[order[i]].k, keys[order[i]].n, loc_of(1), 0);
      assert_int_equal(kd_index_insert(x, e), 0);
    }
    for(i=0, e=kd_iter_seek(&it, x, NULL, 0, 0); e; e=kd_iter_next(&it), i++){
      assert_entry_key(e, keys[i].k, keys[i].n);
    }
    assert_int_equal(i, nk);
    for(i=0; i<nk; i++){
      e = kd_index_find(x, keys[i].k, keys[i].n);
      assert_entry_key(e, keys[i].k, keys[i].n);
      e = kd_iter_seek(&it, x, keys[i].k, keys[i].n, 1);
      if( i+1<nk ) assert_entry_key(e, keys[i+1].k, keys[i+1].n);
      else assert_null(e);
    }
    assert_null(kd_index_find(x, "a\0\0\0", 4));
    assert_null(kd_index_find(x, "ac", 2));
    e = kd_iter_seek(&it, x, "a\0\0\0", 4, 0);
    assert_entry_key(e, "a\0b", 3);
    e = kd_iter_seek(&it, x, "\xff\xff\xff", 3, 0);
    assert_null(e);
    e = kd_iter_seek(&it, x, NULL, 0, 1);
    assert_entry_key(e, "a", 1);
    kd_index_free(x);
    kd_arena_free(a);
  }
}

/* Thousands of random inserts, removes, finds, seeks and id lookups against
** the sorted-array model. */
static void test_random_model(void **state){
  kd_arena *a = kd_arena_new();
  kd_index *x = kd_index_new();
  model m = {0};
  uint64_t rs = 0x1234567;
  uint8_t buf[64];
  int op;
  (void)state;
  for(op=0; op<60000; op++){
    size_t klen = random_key(&rs, buf), i;
    int have = model_has(&m, buf, klen, &i);
    unsigned what = (unsigned)(tu_rand(&rs)%10);
    if( what<4 && !have ){
      kd_entry *e = kd_entry_new(a, buf, klen, loc_of((uint32_t)op), 0);
      assert_non_null(e);
      assert_int_equal(kd_index_insert(x, e), 0);
      model_insert_at(&m, i, buf, klen, e);
    }else if( what<6 && have ){
      kd_entry *e = m.v[i].e;
      uint64_t id = kd_entry_id(e);
      assert_ptr_equal(kd_entry_by_id(a, id), e);
      kd_index_remove(x, e);
      kd_entry_free(a, e);
      assert_null(kd_entry_by_id(a, id));
      model_remove_at(&m, i);
      assert_null(kd_index_find(x, buf, klen));
    }else if( what<8 ){
      kd_entry *e = kd_index_find(x, klen ? buf : NULL, klen);
      if( have ){
        assert_ptr_equal(e, m.v[i].e);
        assert_ptr_equal(kd_entry_by_id(a, kd_entry_id(e)), e);
      }else{
        assert_null(e);
      }
    }else{
      check_seek(x, &m, buf, klen, what==9, 3);
    }
    if( op%5000==0 ) check_all(x, &m);
  }
  check_all(x, &m);
  /* Drain in random order, checking now and then. */
  while( m.n ){
    size_t i = (size_t)(tu_rand(&rs)%m.n);
    kd_index_remove(x, m.v[i].e);
    kd_entry_free(a, m.v[i].e);
    model_remove_at(&m, i);
    if( m.n%257==0 ) check_all(x, &m);
  }
  check_all(x, &m);
  kd_index_free(x);
  kd_arena_free(a);
  model_clear(&m);
}

/* kd_index_find_many answers as kd_index_find does, key by key: present
** and absent keys, keys that are prefixes of others (end children), the
** empty key, batches smaller and larger than its group of 16, and an index
** that is empty, holds one entry, or thousands. */
static void test_find_many(void **state){
  kd_arena *a = kd_arena_new();
  kd_index *x = kd_index_new();
  model m = {0};
  uint64_t rs = 0xfeed;
  static uint8_t probe[200][64];
  const void *keys[200];
  size_t klens[200], sizes[] = {0, 1, 2, 15, 16, 17, 33, 200};
  kd_entry *out[200];
  (void)state;
  for(int round=0; round<40; round++){
    /* Grow: none, one, then more keys each round. */
    size_t add = round==0 ? 0 : round==1 ? 1 : (size_t)round*60;
    for(size_t j=0; j<add; j++){
      uint8_t buf[64];
      size_t klen = random_key(&rs, buf), i;
      if( !model_has(&m, buf, klen, &i) ){
        kd_entry *e = kd_entry_new(a, buf, klen, loc_of((uint32_t)j), 0);
        assert_non_null(e);
        assert_int_equal(kd_index_insert(x, e), 0);
        model_insert_at(&m, i, buf, klen, e);
      }
    }
    for(size_t z=0; z<sizeof(sizes)/sizeof(sizes[0]); z++){
      size_t n = sizes[z];
      for(size_t i=0; i<n; i++){
        unsigned what = (unsigned)(tu_rand(&rs)%5);
        if( what==0 && m.n ){              /* a key that is there */
          size_t k = (size_t)(tu_rand(&rs)%m.n);
          memcpy(probe[i], m.v[k].key, m.v[k].len);
          klens[i] = m.v[k].len;
        }else if( what==2 && m.n ){        /* one with a byte changed */
          size_t k = (size_t)(tu_rand(&rs)%m.n);
          memcpy(probe[i], m.v[k].key, m.v[k].len);
          klens[i] = m.v[k].len;
          if( klens[i] ) probe[i][tu_rand(&rs)%klens[i]] ^= 0x10;
        }else if( what==1 && m.n ){        /* a prefix of one */
          size_t k = (size_t)(tu_rand(&rs)%m.n);
          klens[i] = m.v[k].len ? (size_t)tu_rand(&rs) % m.v[k].len : 0;
          memcpy(probe[i], m.v[k].key, klens[i]);
        }else{                             /* anything */
          klens[i] = random_key(&rs, probe[i]);
        }
        keys[i] = klens[i] || tu_rand(&rs)%2 ? probe[i] : NULL;
      }
      kd_index_find_many(x, n, keys, klens, out);
      for(size_t i=0; i<n; i++){
        assert_ptr_equal(out[i], kd_index_find(x, keys[i], klens[i]));
      }
    }
  }
  kd_index_free(x);
  kd_arena_free(a);
  model_clear(&m);
}

/* Nodes grow through every size to 256 children and shrink back. */
static void test_fanout(void **state){
  kd_arena *a = kd_arena_new();
  kd_index *x = kd_index_new();
  model m = {0};
  uint64_t rs = 99;
  int round;
  (void)state;
  for(round=0; round<4; round++){
    int b;
    for(b=0; b<256; b++){
      uint8_t key[3] = {'p', (uint8_t)((b*37 + round)%256), 'z'};
      size_t klen = (size_t)(round%2 ? 3 : 2), i;
      if( !model_has(&m, key, klen, &i) ){
        kd_entry *e = kd_entry_new(a, key, klen, loc_of((uint32_t)b), 0);
        assert_int_equal(kd_index_insert(x, e), 0);
        model_insert_at(&m, i, key, klen, e);
      }
      if( b%31==0 ) check_all(x, &m);
    }
    check_all(x, &m);
    while( m.n>(size_t)(round*3) ){
      size_t i = (size_t)(tu_rand(&rs)%m.n);
      kd_index_remove(x, m.v[i].e);
      kd_entry_free(a, m.v[i].e);
      model_remove_at(&m, i);
      if( m.n%7==0 ){
        uint8_t probe[2] = {'p', (uint8_t)tu_rand(&rs)};
        check_all(x, &m);
        check_seek(x, &m, probe, 2, 0, 2);
        check_seek(x, &m, probe, 2, 1, 2);
      }
    }
  }
  while( m.n ){
    kd_index_remove(x, m.v[0].e);
    kd_entry_free(a, m.v[0].e);
    model_remove_at(&m, 0);
  }
  check_all(x, &m);
  kd_index_free(x);
  kd_arena_free(a);
  model_clear(&m);
}

/* A chain of keys that are prefixes of each other is deeper than an
** iterator keeps; iteration and seeks still work. */
static void test_deep_chain(void **state){
  kd_arena *a = kd_arena_new();
  kd_index *x = kd_index_new();
  model m = {0};
  uint8_t key[300];
  size_t n, i;
  kd_iter it;
  kd_entry *e;
  (void)state;
  memset(key, 'q', sizeof(key));
  for(n=0; n<300; n+=1 + n%3){
    size_t at;
    e = kd_entry_new(a, key, n, loc_of((uint32_t)n), 0);
    assert_int_equal(kd_index_insert(x, e), 0);
    assert_false(model_has(&m, key, n, &at));
    model_insert_at(&m, at, key, n, e);
  }
  /* Side branches all along the chain. */
  for(n=1; n<300; n+=17){
    size_t at;
    uint8_t side[300];
    memcpy(side, key, n);
    side[n-1] = 'r';
    e = kd_entry_new(a, side, n, loc_of((uint32_t)n), 0);
    assert_int_equal(kd_index_insert(x, e), 0);
    assert_false(model_has(&m, side, n, &at));
    model_insert_at(&m, at, side, n, e);
  }
  check_all(x, &m);
  for(i=0; i<300; i+=5){
    check_seek(x, &m, key, i, 0, 4);
    check_seek(x, &m, key, i, 1, 4);
  }
  i = 0;
  for(e=kd_iter_seek(&it, x, key, 150, 0); e; e=kd_iter_next(&it)) i++;
  assert_int_equal(i, m.n - model_lower(&m, key, 150, 0));
  while( m.n ){
    size_t k = m.n/2;
    kd_index_remove(x, m.v[k].e);
    kd_entry_free(a, m.v[k].e);
    model_remove_at(&m, k);
    if( m.n%9==0 ) check_all(x, &m);
  }
  kd_index_free(x);
  kd_arena_free(a);
  model_clear(&m);
}

/* 1 MiB keys (with a shared prefix of almost 1 MiB)
** and keys between, in one index. */
static void test_big_keys(void **state){
  const size_t big = 1u << 20;
  kd_arena *a = kd_arena_new();
  kd_index *x = kd_index_new();
  uint8_t *k = malloc(big);
  kd_entry *e[6];
  kd_iter it;
  size_t lens[6] = {big, big, big - 1, 3000, 2049, 5};
  int i;
  (void)state;
  assert_non_null(k);
  memset(k, 0x00, big);
  for(i=0; i<6; i++){
    k[lens[i]-1] = (uint8_t)(i==1 ? 2 : 1);   /* 0 and 1 differ last */
    e[i] = kd_entry_new(a, k, lens[i], loc_of((uint32_t)i), KD_SHADOW);
    assert_non_null(e[i]);
    k[lens[i]-1] = 0;
    assert_int_equal(kd_index_insert(x, e[i]), 0);
  }
  for(i=0; i<6; i++){
    size_t elen;
    const uint8_t *ek = kd_entry_key(e[i], &elen);
    assert_int_equal(elen, lens[i]);
    assert_ptr_equal(kd_index_find(x, ek, elen), e[i]);
    assert_ptr_equal(kd_entry_by_id(a, kd_entry_id(e[i])), e[i]);
    assert_int_equal(kd_entry_flags(e[i]), KD_SHADOW);
  }
  /* Order: they all are zeros then one byte of 1 or 2 at the end; the
  ** shorter zero run is greater at its last byte. */
  assert_ptr_equal(kd_iter_seek(&it, x, NULL, 0, 0), e[0]);
  assert_ptr_equal(kd_iter_next(&it), e[1]);
  assert_ptr_equal(kd_iter_next(&it), e[2]);
  assert_ptr_equal(kd_iter_next(&it), e[3]);
  assert_ptr_equal(kd_iter_next(&it), e[4]);
  assert_ptr_equal(kd_iter_next(&it), e[5]);
  assert_null(kd_iter_next(&it));
  assert_null(kd_index_find(x, k, big));   /* all zeros: absent */
  assert_ptr_equal(kd_iter_seek(&it, x, k, big, 0), e[0]);
  assert_true(kd_arena_bytes(a)>3*big);
  for(i=0; i<6; i++){
    uint64_t id = kd_entry_id(e[i]);
    kd_index_remove(x, e[i]);
    kd_entry_free(a, e[i]);
    assert_null(kd_entry_by_id(a, id));
  }
  assert_int_equal(kd_index_count(x), 0);
  assert_true(kd_arena_bytes(a)<big);
  free(k);
  kd_index_free(x);
  kd_arena_free(a);
}

/* Ids are in 1..INT64_MAX, unique over many free/alloc cycles (slab and
** big entries), and a freed id never finds anything again. */
static int cmp_u64(const void *p, const void *q){
  uint64_t a = *(const uint64_t *)p, b = *(const uint64_t *)q;
  return a<b ? -1 : a>b;
}

static void test_ids_never_reused(void **state){
  enum { LIVE = 500, ROUNDS = 40 };
  kd_arena *a = kd_arena_new();
  kd_entry *live[LIVE];
  uint64_t *ids = malloc(sizeof(uint64_t)*LIVE*(ROUNDS + 1));
  uint64_t *dead = malloc(sizeof(uint64_t)*LIVE*ROUNDS);
  size_t nids = 0, ndead = 0, i;
  uint64_t rs = 5;
  uint8_t key[3000];
  int r;
  (void)state;
  assert_non_null(ids);
  assert_non_null(dead);
  memset(key, 'k', sizeof(key));
  for(i=0; i<LIVE; i++){
    live[i] = kd_entry_new(a, key, i%3==0 ? 2500 : i%40, loc_of(1), 0);
    assert_non_null(live[i]);
    ids[nids++] = kd_entry_id(live[i]);
  }
  for(r=0; r<ROUNDS; r++){
    for(i=0; i<LIVE; i++){
      if( tu_rand(&rs)%2 ) continue;
      dead[ndead++] = kd_entry_id(live[i]);
      kd_entry_free(a, live[i]);
      live[i] = kd_entry_new(a, key, (size_t)(tu_rand(&rs)%3 ? i%40 : 2100),
                             loc_of(2), 0);
      assert_non_null(live[i]);
      ids[nids++] = kd_entry_id(live[i]);
    }
  }
  for(i=0; i<nids; i++){
    assert_true(ids[i]>=1 && ids[i]<=(uint64_t)INT64_MAX);
  }
  qsort(ids, nids, sizeof(*ids), cmp_u64);
  for(i=1; i<nids; i++) assert_true(ids[i]!=ids[i-1]);
  for(i=0; i<ndead; i++) assert_null(kd_entry_by_id(a, dead[i]));
  for(i=0; i<LIVE; i++){
    assert_ptr_equal(kd_entry_by_id(a, kd_entry_id(live[i])), live[i]);
  }
  /* Ids that were never handed out. */
  assert_null(kd_entry_by_id(a, 0));
  assert_null(kd_entry_by_id(a, UINT64_MAX));
  assert_null(kd_entry_by_id(a, (uint64_t)INT64_MAX));
  for(i=0; i<2000; i++){
    uint64_t id = tu_rand(&rs) >> (tu_rand(&rs)%64);
    kd_entry *e = kd_entry_by_id(a, id);
    if( e ) assert_int_equal(kd_entry_id(e), id);
  }
  for(i=0; i<LIVE; i++) kd_entry_free(a, live[i]);
  for(i=0; i<nids; i++) assert_null(kd_entry_by_id(a, ids[i]));
  free(ids);
  free(dead);
  kd_arena_free(a);
}

/* Free and allocate again in one slot more than a million times: the slot's
** generation runs out, the slot is retired and a new one is used; no id
** comes back.  Same for an entry with an allocation of its own. */
static void cycle_ids(size_t klen, size_t cycles){
  kd_arena *a = kd_arena_new();
  uint64_t *ids = malloc(sizeof(uint64_t)*cycles);
  uint8_t *key = calloc(1, klen);
  kd_entry *first, *e;
  int moved = 0;
  size_t i;
  assert_non_null(ids);
  assert_non_null(key);
  first = e = kd_entry_new(a, key, klen, loc_of(1), 0);
  for(i=0; i<cycles; i++){
    ids[i] = kd_entry_id(e);
    kd_entry_free(a, e);
    e = kd_entry_new(a, key, klen, loc_of(1), 0);
    assert_non_null(e);
    if( e!=first ) moved = 1;
  }
  if( klen<1000 ) assert_true(moved);      /* the slot was retired */
  assert_ptr_equal(kd_entry_by_id(a, kd_entry_id(e)), e);
  qsort(ids, cycles, sizeof(*ids), cmp_u64);
  for(i=0; i<cycles; i++){
    assert_true(i==0 || ids[i]!=ids[i-1]);
    assert_true(ids[i]!=kd_entry_id(e));
    if( i%1000==0 ) assert_null(kd_entry_by_id(a, ids[i]));
  }
  kd_entry_free(a, e);
  kd_arena_free(a);
  free(ids);
  free(key);
}

static void test_generation_retire(void **state){
  (void)state;
  cycle_ids(5, (1u << 20) + 1000);
  cycle_ids(3000, (1u << 20) + 1000);
}

static void test_loc_and_flags(void **state){
  kd_arena *a = kd_arena_new();
  kd_entry *e = kd_entry_new(a, "key", 3, loc_of(42), KD_TOMBSTONE);
  tkv_loc l;
  uint64_t id;
  (void)state;
  assert_non_null(e);
  id = kd_entry_id(e);
  l = kd_entry_loc(e);
  assert_int_equal(l.file, 42);
  assert_int_equal(l.off, 42*7 + 1);
  assert_int_equal(l.vlen, 42 ^ 0x5a5a5a5au);
  assert_int_equal(kd_entry_flags(e), KD_TOMBSTONE);
  kd_entry_set_flags(e, KD_SHADOW | KD_TOMBSTONE);
  assert_int_equal(kd_entry_flags(e), KD_SHADOW | KD_TOMBSTONE);
  kd_entry_set_flags(e, 0);
  assert_int_equal(kd_entry_flags(e), 0);
  l.file = UINT32_MAX; l.off = UINT32_MAX - 1; l.vlen = 0;
  kd_entry_set_loc(e, l);
  l = kd_entry_loc(e);
  assert_int_equal(l.file, UINT32_MAX);
  assert_int_equal(l.off, UINT32_MAX - 1);
  assert_int_equal(l.vlen, 0);
  /* Neither changes the id or the key. */
  assert_int_equal(kd_entry_id(e), id);
  assert_ptr_equal(kd_entry_by_id(a, id), e);
  assert_entry_key(e, "key", 3);
  kd_entry_free(a, e);
  kd_arena_free(a);
}

/* Two indexes (the committed keys and an overlay) over one arena. */
static void test_two_indexes(void **state){
  kd_arena *a = kd_arena_new();
  kd_index *x = kd_index_new(), *y = kd_index_new();
  kd_entry *e1 = kd_entry_new(a, "k", 1, loc_of(1), 0);
  kd_entry *e2 = kd_entry_new(a, "k", 1, loc_of(2), KD_SHADOW);
  kd_iter it;
  (void)state;
  assert_int_equal(kd_index_insert(x, e1), 0);
  assert_int_equal(kd_index_insert(y, e2), 0);
  assert_ptr_equal(kd_index_find(x, "k", 1), e1);
  assert_ptr_equal(kd_index_find(y, "k", 1), e2);
  assert_true(kd_entry_id(e1)!=kd_entry_id(e2));
  assert_ptr_equal(kd_iter_seek(&it, y, "k", 1, 0), e2);
  kd_index_remove(y, e2);
  kd_entry_free(a, e2);
  assert_null(kd_index_find(y, "k", 1));
  assert_ptr_equal(kd_index_find(x, "k", 1), e1);
  kd_index_free(y);
  kd_index_free(x);
  kd_arena_free(a);
}

/* Make every allocation of an insert loop fail in turn: kd_entry_new gives
** NULL, kd_index_insert gives -1 and leaves the index as it was, and
** nothing leaks (checked by the sanitizer build).  Then remove everything
** with every allocation failing: removal never fails. */
static void test_alloc_failures(void **state){
  kd_arena *a = kd_arena_new();
  kd_index *x = kd_index_new();
  model m = {0};
  uint64_t rs = 77;
  uint8_t buf[64];
  long failures = 0;
  int k;
  (void)state;
  assert_non_null(a);
  assert_non_null(x);
  for(k=0; k<1500; k++){
    size_t klen = random_key(&rs, buf), i;
    long n;
    if( k%100==99 ){     /* now and then, a big entry */
      static uint8_t bigkey[2600];
      memset(bigkey, 'B', sizeof(bigkey));
      memcpy(bigkey, buf, klen);
      bigkey[sizeof(bigkey)-1] = (uint8_t)k;
      if( !model_has(&m, bigkey, sizeof(bigkey), &i) ){
        kd_entry *e;
        tkv_test_fail_alloc(1, 0);
        assert_null(kd_entry_new(a, bigkey, sizeof(bigkey), loc_of(1), 0));
        e = kd_entry_new(a, bigkey, sizeof(bigkey), loc_of(1), 0);
        assert_non_null(e);
        assert_int_equal(kd_index_insert(x, e), 0);
        model_insert_at(&m, i, bigkey, sizeof(bigkey), e);
      }
      continue;
    }
    if( model_has(&m, buf, klen, &i) ) continue;
    for(n=1; ; n++){
      kd_entry *e;
      size_t ibytes = kd_index_bytes(x), abytes = kd_arena_bytes(a);
      int rc;
      tkv_test_fail_alloc(n, 0);
      e = kd_entry_new(a, buf, klen, loc_of((uint32_t)k), 0);
      if( !e ){
        failures++;
        assert_true(kd_arena_bytes(a)>=abytes);   /* a table may have grown */
        continue;
      }
      rc = kd_index_insert(x, e);
      tkv_test_fail_alloc(0, 0);
      if( rc ){
        failures++;
        assert_int_equal(rc, -1);
        assert_int_equal(kd_index_bytes(x), ibytes);
        assert_null(kd_index_find(x, klen ? buf : NULL, klen));
        if( k%50==0 ) check_all(x, &m);
        kd_entry_free(a, e);
        continue;
      }
      model_insert_at(&m, i, buf, klen, e);
      break;
    }
    if( k%100==0 ) check_all(x, &m);
  }
  tkv_test_fail_alloc(0, 0);
  assert_true(failures>=20);
  check_all(x, &m);
  /* Sticky failures: removals still work (nodes stay bigger). */
  tkv_test_fail_alloc(1, 1);
  while( m.n ){
    size_t i = (size_t)(tu_rand(&rs)%m.n);
    kd_index_remove(x, m.v[i].e);
    kd_entry_free(a, m.v[i].e);
    model_remove_at(&m, i);
    if( m.n%100==0 ){
      tkv_test_fail_alloc(0, 0);
      check_all(x, &m);
      tkv_test_fail_alloc(1, 1);
    }
  }
  assert_null(kd_index_new());
  assert_null(kd_arena_new());
  tkv_test_fail_alloc(0, 0);
  check_all(x, &m);
  kd_index_free(x);
  kd_arena_free(a);
  model_clear(&m);
}

/* The byte counts move the right way and are of the right size. */
static void test_memory_accounting(void **state){
  kd_arena *a = kd_arena_new();
  kd_index *x = kd_index_new();
  size_t a0 = kd_arena_bytes(a), x0 = kd_index_bytes(x), i;
  kd_entry **es = malloc(sizeof(*es)*20000);
  uint64_t rs = 3;
  (void)state;
  assert_non_null(es);
  for(i=0; i<20000; i++){
    uint8_t key[16];
    int j;
    for(j=0; j<16; j++) key[j] = (uint8_t)tu_rand(&rs);
    es[i] = kd_entry_new(a, key, 16, loc_of(1), 0);
    assert_int_equal(kd_index_insert(x, es[i]), 0);
  }
  /* 32-byte slots plus the unused end of the newest region; the index a
  ** few tens of bytes a key. */
  assert_true(kd_arena_bytes(a) - a0>=20000*32);
  assert_true(kd_arena_bytes(a) - a0<=20000*32*2);
  assert_true(kd_index_bytes(x) - x0>=20000*8);
  assert_true(kd_index_bytes(x) - x0<=20000*40);
  for(i=0; i<20000; i++){
    kd_index_remove(x, es[i]);
    kd_entry_free(a, es[i]);
  }
  /* Memory is kept for reuse: inserting again costs nothing new. */
  {
    size_t ab = kd_arena_bytes(a);
    kd_entry *e = kd_entry_new(a, "0123456789abcdef", 16, loc_of(1), 0);
    assert_int_equal(kd_arena_bytes(a), ab);
    kd_entry_free(a, e);
  }
  free(es);
  kd_index_free(x);
  kd_arena_free(a);
}

/* ------------------------------------------------------------ kd_sort. */

/* v[0..n) is in index order, equal keys in ascending tag order, and its
** tags are each of 0..n-1 once with v[i] the key orig[tag]. */
static void check_sorted(const kd_sortkey *v, const kd_sortkey *orig,
                         size_t n){
  uint8_t *seen = calloc(n ? n : 1, 1);
  assert_non_null(seen);
  for(size_t i=0; i<n; i++){
    assert_true(v[i].tag<n);
    assert_false(seen[v[i].tag]);
    seen[v[i].tag] = 1;
    assert_ptr_equal(v[i].key, orig[v[i].tag].key);
    assert_int_equal(v[i].klen, orig[v[i].tag].klen);
    if( i ){
      int c = cmp_keys(v[i-1].key, v[i-1].klen, v[i].key, v[i].klen);
      assert_true(c<0 || (c==0 && v[i-1].tag<v[i].tag));
    }
  }
  free(seen);
}

/* Sort a copy of orig[0..n) and check it. */
static void sort_and_check(const kd_sortkey *orig, size_t n){
  kd_sortkey *v = malloc((n ? n : 1)*sizeof(*v));
  assert_non_null(v);
  if( n ) memcpy(v, orig, n*sizeof(*v));
  assert_int_equal(kd_sort(v, n), 0);
  check_sorted(v, orig, n);
  free(v);
}

/* kd_sort against the index's order, stability included: random keys of
** every shape with many repeats, in batches of every size around the
** insertion-sort cutoff and far above it; then keys behind shared prefixes
** longer than eight bytes (the sort goes on eight bytes at a time), keys
** that are prefixes of each other with zero bytes, and long keys equal
** but for their last byte. */
static void test_sort(void **state){
  enum { N = 20000, POOL = 3000 };
  static uint8_t pool[POOL][64];
  static size_t plen[POOL];
  static const size_t sizes[] = {0, 1, 2, 23, 24, 25, 100, 1000, N};
  static uint8_t longk[300][2100];
  kd_sortkey *orig = malloc(N*sizeof(*orig));
  uint64_t rs = 99;
  (void)state;
  assert_non_null(orig);
  for(size_t i=0; i<POOL; i++) plen[i] = random_key(&rs, pool[i]);
  for(size_t s=0; s<sizeof(sizes)/sizeof(sizes[0]); s++){
    for(size_t i=0; i<sizes[s]; i++){
      size_t k = (size_t)(tu_rand(&rs)%POOL);
      orig[i].key = pool[k];
      orig[i].klen = (uint32_t)plen[k];
      orig[i].tag = (uint32_t)i;
    }
    sort_and_check(orig, sizes[s]);
  }
  /* Shared prefixes of 8, 16 and 20 bytes; 0x00 tails. */
  for(size_t i=0; i<POOL; i++){
    static const char pre[] = "0123456789abcdefghij";
    uint8_t *b = pool[i];
    size_t cut = 8*(size_t)(1 + tu_rand(&rs)%2) + (tu_rand(&rs)%2)*4;
    size_t len = cut + (size_t)(tu_rand(&rs)%12);
    memcpy(b, pre, cut);
    for(size_t j=cut; j<len; j++) b[j] = (uint8_t)(tu_rand(&rs)%3);
    plen[i] = len;
  }
  for(size_t i=0; i<N; i++){
    size_t k = (size_t)(tu_rand(&rs)%POOL);
    orig[i].key = pool[k];
    orig[i].klen = (uint32_t)plen[k];
    orig[i].tag = (uint32_t)i;
  }
  sort_and_check(orig, N);
  /* Long keys: 2000 shared bytes, then a byte or two or nothing. */
  for(size_t i=0; i<300; i++){
    memset(longk[i], 'x', 2000);
    longk[i][2000] = (uint8_t)(tu_rand(&rs)%4);
    longk[i][2001] = (uint8_t)(tu_rand(&rs)%2);
    orig[i].key = longk[i];
    orig[i].klen = (uint32_t)(2000 + tu_rand(&rs)%3);
    orig[i].tag = (uint32_t)i;
  }
  sort_and_check(orig, 300);
  /* Input already in order (what a merge's output loads), equal keys
  ** included: left as it is; then the same with one pair out of order at
  ** the end, or with a key before its own prefix. */
  for(size_t i=0; i<N; i++){
    size_t k = (size_t)(tu_rand(&rs)%POOL);
    orig[i].key = pool[k];
    orig[i].klen = (uint32_t)plen[k];
  }
  assert_int_equal(kd_sort(orig, N), 0);
  for(size_t i=0; i<N; i++) orig[i].tag = (uint32_t)i;
  sort_and_check(orig, N);
  for(size_t i=N-1; i>0; i--){
    if( orig[i].klen!=orig[i-1].klen
     || memcmp(orig[i].key, orig[i-1].key, orig[i].klen) ){
      kd_sortkey t = orig[i];
      orig[i] = orig[i-1];
      orig[i-1] = t;
      break;
    }
  }
  for(size_t i=0; i<N; i++) orig[i].tag = (uint32_t)i;
  sort_and_check(orig, N);
  orig[0].key = pool[0];
  orig[0].klen = (uint32_t)plen[0] + 1;       /* pool[0] and one byte more */
  orig[1].key = pool[0];
  orig[1].klen = (uint32_t)plen[0];
  orig[0].tag = 0;
  orig[1].tag = 1;
  sort_and_check(orig, 2);
  free(orig);
}

/* A sort that cannot get its memory fails and leaves the keys as given. */
static void test_sort_alloc_failure(void **state){
  enum { N = 500 };
  kd_sortkey v[N], before[N];
  uint8_t keys[N][8];
  uint64_t rs = 5;
  int failed = 0;
  (void)state;
  for(size_t i=0; i<N; i++){
    for(size_t j=0; j<8; j++) keys[i][j] = (uint8_t)tu_rand(&rs);
    v[i].key = keys[i];
    v[i].klen = 1 + (uint32_t)(tu_rand(&rs)%8);
    v[i].tag = (uint32_t)i;
  }
  memcpy(before, v, sizeof v);
  for(long n=1; n<=10; n++){
    int rc;
    tkv_test_fail_alloc(n, 0);
    rc = kd_sort(v, N);
    tkv_test_fail_alloc(0, 0);
    if( rc ){
      assert_int_equal(rc, -1);
      assert_memory_equal(v, before, sizeof v);
      failed++;
    }else{
      check_sorted(v, before, N);
      memcpy(v, before, sizeof v);
    }
  }
  assert_true(failed>=3);
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_empty),
    cmocka_unit_test(test_prefix_order),
    cmocka_unit_test(test_random_model),
    cmocka_unit_test(test_find_many),
    cmocka_unit_test(test_fanout),
    cmocka_unit_test(test_deep_chain),
    cmocka_unit_test(test_big_keys),
    cmocka_unit_test(test_ids_never_reused),
    cmocka_unit_test(test_generation_retire),
    cmocka_unit_test(test_loc_and_flags),
    cmocka_unit_test(test_two_indexes),
    cmocka_unit_test(test_alloc_failures),
    cmocka_unit_test(test_memory_accounting),
    cmocka_unit_test(test_sort),
    cmocka_unit_test(test_sort_alloc_failure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
