/*
** The keydir: an arena of entries and an ordered index over them.
** See keydir.h for the contract.
**
** WHY THIS DESIGN.  Measured with tests/bench/keydir_bench.c (gcc -O2,
** medians of 5-7 runs on a shared 2-vCPU VM, so +-30% noise):
**
**                          B/key (arena+index, RSS)  find  insert  next
**     1M random 16-byte     45.3 (33.0+12.3, 46.1)   ~165   ~170    ~57
**     1M "user:%08d"        43.3 (30.9+12.4, 42.7)   ~450    ~65     ~8
**     100k random 100-byte 148.2 (127.8+20.4, 138)    ~90    ~60    ~50
**   (ns; finds of present keys in random order; inserts in random order
**   for the random sets, in key order for user8; next is one step of a
**   full scan.)
**
**   The index is an adaptive radix tree (ART) whose leaves are the entries
**   themselves.  The alternative was a B+tree; the bench measures its best
**   case, a packed sorted array, for two kinds of node:
**     - entry pointers only (8 bytes a key): ~1000 ns a find on 1M random
**       16-byte keys, ~20 dependent cache misses, 6x the radix tree;
**     - 8-byte key heads next to the pointers: ~300 ns, but 16 bytes a key
**       before any fill-factor slack (~23 at the usual 69% fill), which
**       with a 32-byte entry misses the budget of key length + 32 bytes;
**       and on "user:%08d" the heads are all equal (~1100 ns), so it would
**       also need per-node prefix compression.
**   The radix tree costs ~12 bytes a key, compares bytes only at the leaf,
**   and path compression keeps shared prefixes cheap.  Its weak spot is
**   dense decimal keys read in random order: "user:%08d" is six 10-way
**   levels, about four cache and TLB misses a lookup (~450 ns here; ~50 ns
**   in key order).
**
**   Two more measured choices: nodes come from malloc (with per-size free
**   lists, the small nodes every node outgrows on its way up stayed
**   allocated: 19.3 instead of 13.3 bytes a key of index on 1M random
**   keys), and they grow and shrink in place with realloc.
**
**   Entries live in 16 KiB chunks, one size class per even size up to 256
**   bytes (a 16-byte key takes a 32-byte slot, with no malloc header), then
**   classes 64 bytes apart up to 2 KiB; bigger entries get an allocation of
**   their own.  Chunks are carved, aligned to their size, from regions of up
**   to 1 MiB, so an entry finds its chunk header (and so its id) by masking
**   its address.  The regions' alignment slack and unused tail are the
**   ~1 byte a key between the slot size and the arena's bytes.
**
**   On this VM the first touch of a page costs ~12 us, so building 1M keys
**   in fresh memory spends ~0.1-0.15 s in page faults (the inserts above
**   reuse memory of the previous run).
**
** ENTRY LAYOUT (byte offsets; no alignment is assumed, fields go through
** memcpy):
**     0  u32 file       4  u32 off       8  u32 vlen
**    12  u32 meta: bits 0-1 engine flags, bit 2 LIVE, bit 3 BIG,
**                  bits 4-11 key length if under 255, else 255,
**                  bits 12-31 generation of the slot (1 .. 2^20-1)
**    16  the key; for keys of 255 bytes or more, preceded by its length as
**        a varint (7 bits a byte, low first).
** So a 16-byte key takes a 32-byte slot: no length byte, no padding.
** Slots have even sizes and start at even addresses, so the index tags a
** leaf pointer with bit 0.
**
** IDS: generation << 35 | chunk number << 10 | slot number in the chunk.
** Freeing a slot bumps its generation so an old id never matches again; a
** slot whose generation would pass 2^20-1 is retired (never handed out
** again), which costs at most one slot per million frees.  Big entries use
** a chunk number of their own, reused likewise with a bumped generation.
**
** MEMORY of slab chunks is not handed back before the arena is freed:
** freed slots go on the free list of their size class and are reused.
** Nodes and big entries are freed as they go.
*/
#include "keydir.h"
#include "mem.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

/* ================================================================ Entries */

#define E_FILE   0
#define E_OFF    4
#define E_VLEN   8
#define E_META  12
#define E_KEY   16

#define META_FLAGS 0x3u
#define META_LIVE  0x4u
#define META_BIG   0x8u
#define KLEN_SHIFT 4
#define KLEN_LONG  255u        /* key length is a varint at E_KEY */
#define GEN_SHIFT  12
#define GEN_MAX    ((1u << 20) - 1)

#define ID_SLOT_BITS  10
#define ID_CHUNK_BITS 25
#define ID_GEN_SHIFT  (ID_SLOT_BITS + ID_CHUNK_BITS)
#define MAX_CHUNKS    ((uint32_t)1 << ID_CHUNK_BITS)

static uint32_t get32(const uint8_t *p){
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

static void put32(uint8_t *p, uint32_t v){
  memcpy(p, &v, 4);
}

static uint8_t *ebytes(const kd_entry *e){
  return (uint8_t *)e;
}

/* Bytes a varint of n takes. */
static size_t varint_len(size_t n){
  size_t len = 1;
  while( n>=0x80 ){ n >>= 7; len++; }
  return len;
}

static void varint_put(uint8_t *p, size_t n){
  while( n>=0x80 ){ *p++ = (uint8_t)(n | 0x80); n >>= 7; }
  *p = (uint8_t)n;
}

/* The key of an entry and its length (hot in every lookup). */
static const uint8_t *entry_key(const kd_entry *e, size_t *pklen){
  const uint8_t *p = ebytes(e) + E_KEY;
  uint32_t short_len = (get32(p - E_KEY + E_META) >> KLEN_SHIFT) & 0xff;
  size_t n = 0;
  int shift = 0;
  if( short_len!=KLEN_LONG ){ *pklen = short_len; return p; }
  while( *p & 0x80 ){ n |= (size_t)(*p++ & 0x7f) << shift; shift += 7; }
  n |= (size_t)*p++ << shift;
  *pklen = n;
  return p;
}

/* ================================================================= Arena */

#define CHUNK_SIZE   16384u        /* slab chunk, aligned to its size */
#define CHUNK_HDR    16u
#define SLAB_MAX     2048u         /* biggest entry kept in a slab */
#define NCLASS       157           /* 128 even sizes + 28 of 64 bytes + 1 */
#define REGION_MIN   4u            /* chunks in the first region */
#define REGION_MAX   128u          /* chunks in a region at most (2 MiB) */
#define HUGE_REGION  ((size_t)REGION_MAX*CHUNK_SIZE)
#define BIG_HDR      16u

/* Header of a slab chunk or of a big entry's allocation.  A big entry has
** slot_size 0; its entry follows the header. */
typedef struct kd_chunk {
  uint32_t no;          /* index in the chunk table */
  uint32_t slot_size;   /* bytes a slot, 0 for a big entry */
  uint16_t nslots;      /* slots handed out so far (bump pointer) */
  uint16_t cap;         /* slots that fit */
  uint16_t cls;         /* size class */
  uint16_t unused;
} kd_chunk;

/* One chunk number.  mem is NULL while the number is free or retired. */
typedef struct kd_chunkref {
  kd_chunk *mem;
  uint32_t big_gen;     /* big entries: generation of the (next) entry */
  uint32_t next_free;   /* free big numbers: next number + 1, 0 ends */
} kd_chunkref;

typedef struct kd_class {
  uint8_t *free;        /* first free slot; its bytes 0..7 point to the next */
  kd_chunk *cur;        /* chunk still being carved, or NULL */
} kd_class;

struct kd_arena {
  kd_chunkref *chunks;
  uint32_t nchunks, capchunks;
  uint32_t big_free;    /* first free big chunk number + 1, 0 if none */
  kd_class cls[NCLASS];
  uint8_t *rnext, *rend;   /* uncarved part of the newest region */
  void **regions;
  size_t nregions, capregions;
  size_t next_region;      /* chunks in the next region */
  size_t bytes;            /* every allocation the arena holds */
};

kd_arena *kd_arena_new(void){
  kd_arena *a = tkv_mem_calloc(1, sizeof(*a));
  if( a ){
    a->next_region = REGION_MIN;
    a->bytes = sizeof(*a);
  }
  return a;
}

void kd_arena_free(kd_arena *a){
  uint32_t i;
  size_t r;
  if( !a ) return;
  for(i=0; i<a->nchunks; i++){
    kd_chunk *c = a->chunks[i].mem;
    if( c && c->slot_size==0 ) tkv_mem_free(c);
  }
  for(r=0; r<a->nregions; r++) tkv_mem_free(a->regions[r]);
  tkv_mem_free(a->regions);
  tkv_mem_free(a->chunks);
  tkv_mem_free(a);
}

size_t kd_arena_bytes(const kd_arena *a){
  return a ? a->bytes : 0;
}

/* Size class and slot size of an entry of esz bytes (esz <= SLAB_MAX):
** every even size up to 256, then steps of 64. */
static int class_of(size_t esz, uint32_t *pslot){
  if( esz<=256 ){
    int c = (int)((esz+1)/2);
    *pslot = (uint32_t)c*2;
    return c-1;
  }else{
    int step = (int)((esz-256+63)/64);
    *pslot = 256u + (uint32_t)step*64;
    return 127 + step;
  }
}

/* Make room for one more chunk number.  The table only grows, so a failure
** changes nothing that matters.  0 or -1. */
static int reserve_chunk_no(kd_arena *a){
  kd_chunkref *t;
  uint32_t n;
  if( a->nchunks<a->capchunks ) return 0;
  if( a->capchunks>=MAX_CHUNKS ) return -1;
  n = a->capchunks ? a->capchunks*2 : 64;
  if( n>MAX_CHUNKS ) n = MAX_CHUNKS;
  t = tkv_mem_realloc(a->chunks, (size_t)n*sizeof(*t));
  if( !t ) return -1;
  a->bytes += (size_t)(n - a->capchunks)*sizeof(*t);
  a->chunks = t;
  a->capchunks = n;
  return 0;
}

/*
** Memory for a region of *pbytes.  A full-size region is 2 MiB aligned to
** 2 MiB and offered to the kernel for a transparent huge page: a keydir of
** a million keys is some 45 MB of entries read in random order, and with
** 4 KiB pages its build pays a page fault (~12 us on a VM) every 4 KiB and
** its lookups a TLB miss each (opening a store of 1M keys took 0.84 s, and
** 0.3 s with huge pages for malloc).  Freed with tkv_mem_free.
*/
static uint8_t *region_alloc(size_t *pbytes){
  void *p;
  if( *pbytes<HUGE_REGION ) return tkv_mem_alloc(*pbytes);
  *pbytes = HUGE_REGION;
  p = tkv_mem_alloc_aligned(HUGE_REGION, HUGE_REGION);
  if( !p ) return NULL;
#ifdef MADV_HUGEPAGE
  (void)madvise(p, HUGE_REGION, MADV_HUGEPAGE);    /* a hint: may fail */
#endif
  return p;
}

/* A CHUNK_SIZE block aligned to CHUNK_SIZE, carved from the newest region
** or from a new one, or NULL. */
static uint8_t *carve_chunk(kd_arena *a){
  uint8_t *p;
  if( a->rnext==NULL || (size_t)(a->rend - a->rnext)<CHUNK_SIZE ){
    size_t bytes = (a->next_region + 1)*CHUNK_SIZE;
    uintptr_t start;
    uint8_t *base;
    if( a->nregions==a->capregions ){
      size_t n = a->capregions ? a->capregions*2 : 16;
      void **r = tkv_mem_realloc(a->regions, n*sizeof(*r));
      if( !r ) return NULL;
      a->bytes += (n - a->capregions)*sizeof(*r);
      a->regions = r;
      a->capregions = n;
    }
    base = region_alloc(&bytes);
    if( !base ) return NULL;
    a->regions[a->nregions++] = base;
    a->bytes += bytes;
    start = ((uintptr_t)base + CHUNK_SIZE - 1) & ~(uintptr_t)(CHUNK_SIZE-1);
    a->rnext = base + (start - (uintptr_t)base);
    a->rend = base + bytes;
    if( a->next_region<REGION_MAX ) a->next_region *= 2;
  }
  p = a->rnext;
  a->rnext += CHUNK_SIZE;
  return p;
}

/* A fresh slot of class cls from a new chunk, or NULL. */
static uint8_t *slot_from_new_chunk(kd_arena *a, int cls, uint32_t slot_size){
  kd_chunk *c;
  uint8_t *mem;
  if( a->nchunks>=MAX_CHUNKS || reserve_chunk_no(a) ) return NULL;
  mem = carve_chunk(a);
  if( !mem ) return NULL;
  c = (kd_chunk *)mem;
  c->no = a->nchunks;
  c->slot_size = slot_size;
  c->nslots = 1;
  c->cap = (uint16_t)((CHUNK_SIZE - CHUNK_HDR)/slot_size);
  c->cls = (uint16_t)cls;
  c->unused = 0;
  a->chunks[a->nchunks].mem = c;
  a->chunks[a->nchunks].big_gen = 0;
  a->chunks[a->nchunks].next_free = 0;
  a->nchunks++;
  a->cls[cls].cur = c;
  return mem + CHUNK_HDR;
}

/* A slot for an entry of esz bytes and its generation, or NULL. */
static uint8_t *slab_alloc(kd_arena *a, size_t esz, uint32_t *pgen){
  uint32_t slot_size;
  int cls = class_of(esz, &slot_size);
  kd_class *k = &a->cls[cls];
  kd_chunk *c = k->cur;
  uint8_t *p;
  if( k->free ){
    p = k->free;
    memcpy(&k->free, p, sizeof(k->free));
    *pgen = get32(p + E_META) >> GEN_SHIFT;
    return p;
  }
  *pgen = 1;
  if( c && c->nslots<c->cap ){
    p = (uint8_t *)c + CHUNK_HDR + (size_t)c->nslots*slot_size;
    c->nslots++;
    return p;
  }
  return slot_from_new_chunk(a, cls, slot_size);
}

/* An allocation of its own for an entry of esz bytes, with a chunk number
** (a freed one if any) and its generation, or NULL. */
static uint8_t *big_alloc(kd_arena *a, size_t esz, uint32_t *pgen){
  kd_chunk *c;
  uint32_t no;
  if( !a->big_free && (a->nchunks>=MAX_CHUNKS || reserve_chunk_no(a)) ){
    return NULL;
  }
  c = tkv_mem_alloc(BIG_HDR + esz);
  if( !c ) return NULL;
  if( a->big_free ){
    no = a->big_free - 1;
    a->big_free = a->chunks[no].next_free;
  }else{
    no = a->nchunks++;
    a->chunks[no].big_gen = 1;
  }
  a->chunks[no].mem = c;
  a->chunks[no].next_free = 0;
  c->no = no;
  c->slot_size = 0;
  c->nslots = 1;
  c->cap = 1;
  c->cls = 0;
  c->unused = 0;
  a->bytes += BIG_HDR + esz;
  *pgen = a->chunks[no].big_gen;
  return (uint8_t *)c + BIG_HDR;
}

kd_entry *kd_entry_new(kd_arena *a, const void *key, size_t klen,
                       tkv_loc loc, unsigned flags){
  size_t vl = klen<KLEN_LONG ? 0 : varint_len(klen);
  size_t esz;
  uint32_t gen, meta;
  uint8_t *p;
  if( klen>0x7fffffff ) return NULL;    /* far above TKV_KEY_MAX */
  esz = E_KEY + vl + klen;
  if( esz<=SLAB_MAX ){
    p = slab_alloc(a, esz, &gen);
    meta = META_LIVE;
  }else{
    p = big_alloc(a, esz, &gen);
    meta = META_LIVE | META_BIG;
  }
  if( !p ) return NULL;
  put32(p + E_FILE, loc.file);
  put32(p + E_OFF, loc.off);
  put32(p + E_VLEN, loc.vlen);
  meta |= (vl ? KLEN_LONG : (uint32_t)klen) << KLEN_SHIFT;
  put32(p + E_META, meta | (flags & META_FLAGS) | (gen << GEN_SHIFT));
  if( vl ) varint_put(p + E_KEY, klen);
  if( klen ) memcpy(p + E_KEY + vl, key, klen);
  return (kd_entry *)p;
}

/* The chunk header of a slab entry. */
static kd_chunk *slab_chunk_of(const kd_entry *e){
  uintptr_t base = (uintptr_t)e & ~(uintptr_t)(CHUNK_SIZE-1);
  return (kd_chunk *)(ebytes(e) - ((uintptr_t)e - base));
}

void kd_entry_free(kd_arena *a, kd_entry *e){
  uint8_t *p = ebytes(e);
  uint32_t meta = get32(p + E_META);
  uint32_t gen = meta >> GEN_SHIFT;
  if( meta & META_BIG ){
    kd_chunk *c = (kd_chunk *)(p - BIG_HDR);
    uint32_t no = c->no;
    size_t klen;
    const uint8_t *k = entry_key(e, &klen);
    a->bytes -= BIG_HDR + (size_t)(k - p) + klen;
    tkv_mem_free(c);
    a->chunks[no].mem = NULL;
    if( gen<GEN_MAX ){
      a->chunks[no].big_gen = gen + 1;
      a->chunks[no].next_free = a->big_free;
      a->big_free = no + 1;
    }
  }else if( gen<GEN_MAX ){
    kd_class *k = &a->cls[slab_chunk_of(e)->cls];
    put32(p + E_META, (gen + 1) << GEN_SHIFT);
    memcpy(p, &k->free, sizeof(k->free));
    k->free = p;
  }else{
    put32(p + E_META, gen << GEN_SHIFT);   /* retired: stays dead */
  }
}

/* The bytes of slot `slot` of chunk number `no` if they hold a live entry
** (whatever its generation), else NULL: the number is out of range, free
** or retired, or the slot is past what the chunk handed out, or free. */
static const uint8_t *live_slot(const kd_arena *a, uint32_t no,
                                uint32_t slot){
  const kd_chunk *c;
  const uint8_t *p;
  if( no>=a->nchunks ) return NULL;
  c = a->chunks[no].mem;
  if( !c ) return NULL;
  if( c->slot_size==0 ){
    if( slot!=0 ) return NULL;
    p = (const uint8_t *)c + BIG_HDR;
  }else{
    if( slot>=c->nslots ) return NULL;
    p = (const uint8_t *)c + CHUNK_HDR + (size_t)slot*c->slot_size;
  }
  return (get32(p + E_META) & META_LIVE) ? p : NULL;
}

kd_entry *kd_entry_by_id(const kd_arena *a, uint64_t id){
  uint32_t slot = (uint32_t)(id & ((1u << ID_SLOT_BITS) - 1));
  uint32_t no = (uint32_t)((id >> ID_SLOT_BITS) & (MAX_CHUNKS - 1));
  uint64_t gen = id >> ID_GEN_SHIFT;
  const uint8_t *p;
  if( gen==0 || gen>GEN_MAX ) return NULL;
  p = live_slot(a, no, slot);
  if( !p || (get32(p + E_META) >> GEN_SHIFT)!=gen ) return NULL;
  return (kd_entry *)p;
}

/*
** One draw of a uniform sample of the arena's live entries: the slot that
** draw r names among nchunks x 2^ID_SLOT_BITS equally likely places, or
** NULL when that place holds no live entry (the caller draws again).
** Every live entry, in a slab chunk or a big entry's own chunk, is one such
** place, so the entries returned are uniform over the live ones whatever
** their keys, sizes or order.  With full chunks of small entries about one
** draw in three hits.
*/
kd_entry *kd_arena_sample(const kd_arena *a, uint64_t r){
  uint32_t slot = (uint32_t)(r & ((1u << ID_SLOT_BITS) - 1));
  if( a->nchunks==0 ) return NULL;
  return (kd_entry *)live_slot(a, (uint32_t)((r >> ID_SLOT_BITS) % a->nchunks),
                               slot);
}

uint64_t kd_entry_id(const kd_entry *e){
  const uint8_t *p = ebytes(e);
  uint32_t meta = get32(p + E_META);
  uint64_t gen = meta >> GEN_SHIFT;
  const kd_chunk *c;
  uint32_t slot = 0;
  if( meta & META_BIG ){
    c = (const kd_chunk *)(p - BIG_HDR);
  }else{
    c = slab_chunk_of(e);
    slot = (uint32_t)((size_t)(p - ((const uint8_t *)c + CHUNK_HDR))
                      / c->slot_size);
  }
  return gen << ID_GEN_SHIFT | (uint64_t)c->no << ID_SLOT_BITS | slot;
}

const uint8_t *kd_entry_key(const kd_entry *e, size_t *pklen){
  size_t klen;
  const uint8_t *k = entry_key(e, &klen);
  if( pklen ) *pklen = klen;
  return k;
}

tkv_loc kd_entry_loc(const kd_entry *e){
  const uint8_t *p = ebytes(e);
  tkv_loc loc;
  loc.file = get32(p + E_FILE);
  loc.off = get32(p + E_OFF);
  loc.vlen = get32(p + E_VLEN);
  return loc;
}

void kd_entry_set_loc(kd_entry *e, tkv_loc loc){
  uint8_t *p = ebytes(e);
  put32(p + E_FILE, loc.file);
  put32(p + E_OFF, loc.off);
  put32(p + E_VLEN, loc.vlen);
}

unsigned kd_entry_flags(const kd_entry *e){
  return get32(ebytes(e) + E_META) & META_FLAGS;
}

/* Only the two engine bits (KD_SHADOW, KD_TOMBSTONE) are kept. */
void kd_entry_set_flags(kd_entry *e, unsigned flags){
  uint8_t *p = ebytes(e);
  uint32_t meta = get32(p + E_META);
  put32(p + E_META, (meta & ~META_FLAGS) | (flags & META_FLAGS));
}

/* ================================================================= Index */

/*
** Inner nodes.  A child is either a node or a tagged entry pointer (bit 0
** set).  A node consumes its prefix (plen bytes) and then one byte that
** picks the child.  The prefix bytes are not kept in the node: every key
** below shares them, so a lookup skips them and the full compare at the leaf
** catches a mismatch, and an insert or a seek reads them from the smallest
** key below (8 bytes a node saved: ~0.5-1.6 bytes a key).  A key that ends
** right after the prefix is the node's "end" child, which sorts first.
**
** Two kinds of node:
**   SORTED  up to 48 slots: keys[] (padded to 8 bytes), then kids[].  Slots
**           are in key order; with N_END the end child is slot 0 and
**           keys[0] means nothing.
**   N256    an end pointer, then kids[256] indexed by the byte.  Iteration
**           slots: 0 is the end child, 1+b the child of byte b.
** n counts the occupied slots, the end child included; a node always has
** at least two.
*/
#define N_SORTED 0
#define N_256    1
#define N_END    2      /* kind flag: the node has an end child */

typedef struct kd_node {
  uint8_t kind;
  uint8_t cls;          /* size class: index in sorted_cap, or CLS_256 */
  uint16_t n;
  uint32_t plen;
} kd_node;

/* Capacities of SORTED nodes: about two slots apart, each chosen so that
** the node plus malloc's 8-byte header is a multiple of 16 (no rounding
** loss). */
static const uint8_t sorted_cap[] = {3,5,7,10,12,14,16,19,21,23,26,28,32,35,39,44,48};
#define NSORTED   ((int)sizeof(sorted_cap))
#define CLS_256   NSORTED

static size_t pad8(size_t n){
  return (n + 7) & ~(size_t)7;
}

static size_t node_size(int cls){
  if( cls==CLS_256 ) return sizeof(kd_node) + sizeof(void *)*257;
  return sizeof(kd_node) + pad8(sorted_cap[cls]) + sizeof(void *)*sorted_cap[cls];
}

struct kd_index {
  void *root;
  size_t count;
  size_t bytes;         /* nodes, as the system allocator counts them */
};

/* ---- Tagged child pointers. */

static int is_leaf(const void *p){
  return ((uintptr_t)p & 1)!=0;
}

static kd_entry *leaf_entry(const void *p){
  return (kd_entry *)((uintptr_t)p - 1);
}

static void *leaf_of(kd_entry *e){
  return (void *)((uintptr_t)e + 1);
}

/* ---- Nodes come from the system allocator, which reuses the memory of
** a node that grew for nodes of any size (per-size free lists kept the
** small nodes that every node passes through on its way up: +8 bytes a key
** on 1M random keys). */

/* What an allocation of n bytes costs: glibc's chunk (n plus an 8-byte
** header, in 16-byte steps, 32 at least). */
static size_t alloc_cost(size_t n){
  size_t c = (n + 8 + 15) & ~(size_t)15;
  return c<32 ? 32 : c;
}

kd_index *kd_index_new(void){
  kd_index *x = tkv_mem_calloc(1, sizeof(*x));
  if( x ) x->bytes = alloc_cost(sizeof(*x));
  return x;
}

size_t kd_index_count(const kd_index *x){
  return x->count;
}

size_t kd_index_bytes(const kd_index *x){
  return x->bytes;
}

/* A node of class cls, its kind, n and plen to be set by the caller, or
** NULL. */
static kd_node *node_alloc(kd_index *x, int cls){
  kd_node *nd = tkv_mem_alloc(node_size(cls));
  if( nd ){
    nd->cls = (uint8_t)cls;
    x->bytes += alloc_cost(node_size(cls));
  }
  return nd;
}

static void node_release(kd_index *x, kd_node *nd){
  x->bytes -= alloc_cost(node_size(nd->cls));
  tkv_mem_free(nd);
}

/* ---- Node layout. */

static uint8_t *s_keys(const kd_node *nd){
  return (uint8_t *)(nd + 1);
}

static void **s_kids(const kd_node *nd){
  assert( nd->cls<NSORTED );
  return (void **)((uint8_t *)(nd + 1) + pad8(sorted_cap[nd->cls]));
}

static void **n256_end(const kd_node *nd){
  return (void **)(nd + 1);
}

static void **n256_kids(const kd_node *nd){
  return (void **)(nd + 1) + 1;
}

static int has_end(const kd_node *nd){
  return (nd->kind & N_END)!=0;
}

/* Index in a SORTED node of the child for byte b, or -1.  Eight key bytes
** at a time: a zero byte in keys^b is a match, and the lowest flagged byte
** of the classic zero-byte test is always a true zero. */
static int sorted_find(const kd_node *nd, unsigned b){
  const uint8_t *keys = s_keys(nd);
  int n = nd->n;
  int start = has_end(nd);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__==__ORDER_LITTLE_ENDIAN__
  const uint64_t ones = 0x0101010101010101ull;
  const uint64_t pat = ones * b;
  int w;
  for(w=0; w<n; w+=8){
    uint64_t v, z;
    memcpy(&v, keys + w, 8);
    v ^= pat;
    if( w==0 && start ) v |= 0xff;      /* keys[0] of an end child */
    z = (v - ones) & ~v & (ones << 7);
    if( z ){
      int i = w + (__builtin_ctzll(z) >> 3);
      return i<n ? i : -1;
    }
  }
  return -1;
#else
  int i;
  for(i=start; i<n; i++){
    if( keys[i]==b ) return i;
    if( keys[i]>b ) break;
  }
  return -1;
#endif
}

/* The address of the child for byte b, or NULL. */
static void **child_ref(const kd_node *nd, unsigned b){
  if( (nd->kind & N_256)==0 ){
    int i = sorted_find(nd, b);
    return i<0 ? NULL : &s_kids(nd)[i];
  }
  return n256_kids(nd)[b] ? &n256_kids(nd)[b] : NULL;
}

/* The end child, or NULL. */
static void *end_child(const kd_node *nd){
  if( !has_end(nd) ) return NULL;
  return (nd->kind & N_256) ? *n256_end(nd) : s_kids(nd)[0];
}

/* The child in iteration slot s (which must be occupied). */
static void *slot_child(const kd_node *nd, int s){
  if( (nd->kind & N_256)==0 ) return s_kids(nd)[s];
  return s==0 ? *n256_end(nd) : n256_kids(nd)[s-1];
}

/* The first occupied slot after s (s=-1: the first), or -1. */
static int next_slot(const kd_node *nd, int s){
  if( (nd->kind & N_256)==0 ) return s+1<nd->n ? s+1 : -1;
  for(s++; s<=256; s++){
    if( s==0 ? has_end(nd) : n256_kids(nd)[s-1]!=NULL ) return s;
  }
  return -1;
}

/* The first slot whose child's byte is greater than b (the end child is
** never), or -1. */
static int slot_after_byte(const kd_node *nd, unsigned b){
  if( (nd->kind & N_256)==0 ){
    const uint8_t *keys = s_keys(nd);
    int i;
    for(i=has_end(nd); i<nd->n; i++){
      if( keys[i]>b ) return i;
    }
    return -1;
  }
  return b<255 ? next_slot(nd, (int)b + 1) : -1;
}

/* The smallest entry below p. */
static kd_entry *leftmost(const void *p){
  while( !is_leaf(p) ){
    const kd_node *nd = p;
    p = slot_child(nd, next_slot(nd, -1));
  }
  return leaf_entry(p);
}

/* Where a node waiting to be freed links to the next one: bytes that
** freeing no longer needs (a SORTED node's keys, a N256's end pointer). */
static void *free_link(kd_node *nd){
  return (nd->kind & N_256) ? (void *)n256_end(nd) : (void *)s_keys(nd);
}

/* Free every node without recursion (a chain of keys that are prefixes
** of each other makes the tree as deep as it has keys). */
void kd_index_free(kd_index *x){
  kd_node *todo = NULL;
  if( !x ) return;
  if( x->root && !is_leaf(x->root) ){
    todo = x->root;
    memset(free_link(todo), 0, sizeof(void *));
  }
  while( todo ){
    kd_node *nd = todo;
    int i, n = (nd->kind & N_256) ? 256 : nd->n;
    void **kids = (nd->kind & N_256) ? n256_kids(nd) : s_kids(nd);
    memcpy(&todo, free_link(nd), sizeof(void *));
    for(i=0; i<n; i++){
      kd_node *c = kids[i];
      if( c==NULL || is_leaf(c) ) continue;
      memcpy(free_link(c), &todo, sizeof(void *));
      todo = c;
    }
    tkv_mem_free(nd);
  }
  tkv_mem_free(x);
}

/* Node nd's prefix, where the node sits at key depth d: the bytes of any
** key below it from d on, the smallest key's for one. */
static const uint8_t *node_prefix(const kd_node *nd, size_t d){
  size_t klen;
  return entry_key(leftmost(nd), &klen) + d;
}

/* ---- Lookup. */

kd_entry *kd_index_find(const kd_index *x, const void *key, size_t klen){
  const uint8_t *k = key ? key : (const uint8_t *)"";
  const void *p = x->root;
  size_t d = 0, elen;
  const uint8_t *ek;
  if( !p ) return NULL;
  while( !is_leaf(p) ){
    const kd_node *nd = p;
    void **ref;
    if( klen - d<nd->plen ) return NULL;
    d += nd->plen;       /* unchecked: the leaf's full compare catches it */
    if( d==klen ){
      p = end_child(nd);
      if( !p ) return NULL;
      break;
    }
    ref = child_ref(nd, k[d]);
    if( !ref ) return NULL;
    p = *ref;
    d++;
  }
  ek = entry_key(leaf_entry(p), &elen);
  if( elen!=klen || (klen && memcmp(ek, k, klen)) ) return NULL;
  return leaf_entry(p);
}

/*
** Batched lookup.  One lookup is a chain of dependent loads, one node a
** level and then the entry, and on a big index nearly each is a cache miss
** that the CPU can only wait for.  Lookups of different keys do not depend
** on each other, so this walks up to FIND_GROUP of them in step, one level
** a round, and asks for each next node (or entry) with a prefetch as soon
** as its address is known: the misses of the group overlap instead of
** queueing.  A node is prefetched by its first three cache lines, which
** hold the whole of a SORTED node of up to 19 slots (the common classes
** below the top levels); an N256 node's child slot is found one round
** later, when its header is in.
*/
#define FIND_GROUP 16

static void prefetch_node(const void *p){
  const char *c = p;
  __builtin_prefetch(c);
  __builtin_prefetch(c + 64);
  __builtin_prefetch(c + 128);
}

void kd_index_find_many(const kd_index *x, size_t n, const void *const *keys,
                        const size_t *klens, kd_entry **out){
  for(size_t base=0; base<n; base+=FIND_GROUP){
    const void *p[FIND_GROUP];
    size_t d[FIND_GROUP];
    size_t m = n - base < FIND_GROUP ? n - base : FIND_GROUP;
    size_t left = 0;
    for(size_t i=0; i<m; i++){
      out[base+i] = NULL;
      d[i] = 0;
      p[i] = x->root;
      if( p[i] ) left++;
    }
    while( left>0 ){
      for(size_t i=0; i<m; i++){
        const uint8_t *k = keys[base+i] ? keys[base+i] : (const uint8_t *)"";
        size_t klen = klens[base+i];
        const kd_node *nd;
        void **ref;
        if( !p[i] ) continue;
        if( is_leaf(p[i]) ){               /* its entry was prefetched */
          size_t elen;
          const uint8_t *ek = entry_key(leaf_entry(p[i]), &elen);
          if( elen==klen && (klen==0 || memcmp(ek, k, klen)==0) ){
            out[base+i] = leaf_entry(p[i]);
          }
          p[i] = NULL;
          left--;
          continue;
        }
        nd = p[i];
        ref = NULL;
        if( klen - d[i]>=nd->plen ){
          d[i] += nd->plen;
          if( d[i]==klen ){
            ref = has_end(nd)
                ? ((nd->kind & N_256) ? n256_end(nd) : &s_kids(nd)[0])
                : NULL;
          }else{
            ref = child_ref(nd, k[d[i]]);
            d[i]++;
          }
        }
        p[i] = ref ? *ref : NULL;
        if( !p[i] ){
          left--;
        }else if( is_leaf(p[i]) ){
          __builtin_prefetch(leaf_entry(p[i]));
        }else{
          prefetch_node(p[i]);
        }
      }
    }
  }
}

/* The reference that holds the leaf of key, or NULL. */
static void **leaf_ref(const kd_index *x, const uint8_t *k, size_t klen){
  void **ref = (void **)&x->root;
  size_t d = 0;
  while( *ref && !is_leaf(*ref) ){
    kd_node *nd = *ref;
    if( klen - d<nd->plen ) return NULL;
    d += nd->plen;
    if( d==klen ){
      if( !has_end(nd) ) return NULL;
      ref = (nd->kind & N_256) ? n256_end(nd) : &s_kids(nd)[0];
      break;
    }
    ref = child_ref(nd, k[d]);
    if( !ref ) return NULL;
    d++;
  }
  return *ref ? ref : NULL;
}

void kd_index_replace(kd_index *x, kd_entry *old, kd_entry *e){
  size_t klen;
  const uint8_t *k = entry_key(old, &klen);
  void **ref = leaf_ref(x, k, klen);
  assert( ref && leaf_entry(*ref)==old );
  if( ref ) *ref = leaf_of(e);
}

/* ---- Insertion.  Each insert allocates at most one node, before it
** changes anything, so a failed allocation leaves the index unchanged. */

/* A new SORTED node of class 0 (two slots) holding children a and b, whose
** keys first differ right after the prefix at depth d; ka/kb are their
** bytes there, or -1 for a key that ends there (it sorts first). */
static kd_node *node_pair(kd_index *x, size_t plen,
                          void *a, int ka, void *b, int kb){
  kd_node *nd = node_alloc(x, 0);
  uint8_t *keys;
  void **kids;
  if( !nd ) return NULL;
  if( kb<ka ){
    void *t = a; int tk = ka;
    a = b; ka = kb; b = t; kb = tk;
  }
  nd->kind = N_SORTED | (ka<0 ? N_END : 0);
  nd->n = 2;
  nd->plen = (uint32_t)plen;
  keys = s_keys(nd);
  kids = s_kids(nd);
  memset(keys, 0, pad8(sorted_cap[0]));
  keys[0] = (uint8_t)(ka<0 ? 0 : ka);
  keys[1] = (uint8_t)kb;
  kids[0] = a;
  kids[1] = b;
  return nd;
}

/* Insert leaf (key k) where *ref holds another leaf; both keys agree on
** their first d bytes. */
static int split_leaf(kd_index *x, void **ref, void *leaf,
                      const uint8_t *k, size_t klen, size_t d){
  size_t olen, m = 0;
  const uint8_t *ok = entry_key(leaf_entry(*ref), &olen);
  kd_node *nd;
  while( d+m<klen && d+m<olen && k[d+m]==ok[d+m] ) m++;
  nd = node_pair(x, m,
                 leaf, d+m<klen ? k[d+m] : -1,
                 *ref, d+m<olen ? ok[d+m] : -1);
  if( !nd ) return -1;
  *ref = nd;
  return 0;
}

/* How many bytes of nd's prefix (nd at depth d) the key matches. */
static size_t prefix_match(const kd_node *nd, const uint8_t *k, size_t klen,
                           size_t d){
  size_t plen = nd->plen, m = 0, lim = klen - d<plen ? klen - d : plen;
  const uint8_t *prefix;
  if( plen==0 ) return 0;
  prefix = node_prefix(nd, d);
  while( m<lim && prefix[m]==k[d+m] ) m++;
  return m;
}

/* Insert leaf (key k) above nd (at *ref, depth d), whose prefix the key
** leaves after m bytes: a new node takes the first m bytes. */
static int split_prefix(kd_index *x, void **ref, kd_node *nd, size_t m,
                        void *leaf, const uint8_t *k, size_t klen, size_t d){
  int nb = node_prefix(nd, d)[m];
  kd_node *top = node_pair(x, m, leaf, d+m<klen ? k[d+m] : -1, nd, nb);
  if( !top ) return -1;
  nd->plen -= (uint32_t)(m + 1);
  *ref = top;
  return 0;
}

/* Copy nd's children into the empty node to (of any kind and class). */
static void copy_children(kd_node *to, const kd_node *nd){
  int s;
  to->kind = (uint8_t)((to->kind & N_256) | (nd->kind & N_END));
  to->plen = nd->plen;
  to->n = 0;
  if( to->kind & N_256 ){
    memset(n256_end(to), 0, sizeof(void *)*257);
  }else{
    assert( to->cls<NSORTED );
    memset(s_keys(to), 0, pad8(sorted_cap[to->cls]));
  }
  for(s=next_slot(nd, -1); s>=0; s=next_slot(nd, s)){
    void *c = slot_child(nd, s);
    int end = has_end(nd) && s==0;
    int b = end ? 0 : ((nd->kind & N_256) ? s-1 : s_keys(nd)[s]);
    if( to->kind & N_256 ){
      if( end ) *n256_end(to) = c; else n256_kids(to)[b] = c;
    }else{
      s_keys(to)[to->n] = (uint8_t)b;
      s_kids(to)[to->n] = c;
    }
    to->n++;
  }
}

/* Put child c for byte b (-1: the end child) into nd, which has room. */
static void node_put(kd_node *nd, int b, void *c){
  if( nd->kind & N_256 ){
    if( b<0 ){ *n256_end(nd) = c; nd->kind |= N_END; }
    else n256_kids(nd)[b] = c;
  }else{
    uint8_t *keys = s_keys(nd);
    void **kids = s_kids(nd);
    int i = 0;
    if( b>=0 ){
      for(i=has_end(nd); i<nd->n && keys[i]<b; i++){}
    }else{
      nd->kind |= N_END;
    }
    memmove(keys + i + 1, keys + i, (size_t)(nd->n - i));
    memmove(kids + i + 1, kids + i, sizeof(void *)*(size_t)(nd->n - i));
    keys[i] = (uint8_t)(b<0 ? 0 : b);
    kids[i] = c;
  }
  nd->n++;
}

/* Grow the full SORTED node at *ref into the next class in place
** (realloc, then move the children up behind the longer keys array), or
** into a N256 by copying.  0, or -1 with the node unchanged. */
static int grow_node(kd_index *x, void **ref){
  kd_node *nd = *ref, *big;
  int cls = nd->cls + 1;
  if( cls==CLS_256 ){
    big = node_alloc(x, cls);
    if( !big ) return -1;
    big->kind = N_256;
    copy_children(big, nd);
    node_release(x, nd);
  }else{
    size_t oldpad = pad8(sorted_cap[nd->cls]), newpad = pad8(sorted_cap[cls]);
    big = tkv_mem_realloc(nd, node_size(cls));
    if( !big ) return -1;
    x->bytes += alloc_cost(node_size(cls)) - alloc_cost(node_size(cls-1));
    big->cls = (uint8_t)cls;
    if( newpad!=oldpad ){
      uint8_t *keys = s_keys(big);
      memmove(keys + newpad, keys + oldpad, sizeof(void *)*big->n);
      memset(keys + oldpad, 0, newpad - oldpad);
    }
  }
  *ref = big;
  return 0;
}

/* Add child c for byte b (-1: end) to the node at *ref, growing it first
** if it is full. */
static int add_child(kd_index *x, void **ref, int b, void *c){
  kd_node *nd = *ref;
  if( (nd->kind & N_256)==0 && nd->n==sorted_cap[nd->cls] ){
    if( grow_node(x, ref) ) return -1;
    nd = *ref;
  }
  node_put(nd, b, c);
  return 0;
}

int kd_index_insert(kd_index *x, kd_entry *e){
  size_t klen, d = 0;
  const uint8_t *k = entry_key(e, &klen);
  void **ref = &x->root;
  void *leaf = leaf_of(e);
  int rc;
  for(;;){
    kd_node *nd = *ref;
    void **next;
    if( nd==NULL ){ *ref = leaf; rc = 0; break; }
    if( is_leaf(nd) ){ rc = split_leaf(x, ref, leaf, k, klen, d); break; }
    if( nd->plen ){
      size_t m = prefix_match(nd, k, klen, d);
      if( m<nd->plen ){
        rc = split_prefix(x, ref, nd, m, leaf, k, klen, d);
        break;
      }
      d += nd->plen;
    }
    if( d==klen ){ rc = add_child(x, ref, -1, leaf); break; }
    next = child_ref(nd, k[d]);
    if( !next ){ rc = add_child(x, ref, k[d], leaf); break; }
    ref = next;
    d++;
  }
  if( rc==0 ) x->count++;
  return rc;
}

/* ---- Removal.  Never allocates except to shrink a node, and keeps the
** bigger node when that fails. */

/* Take the child in slot s out of nd. */
static void node_take(kd_node *nd, int s){
  if( nd->kind & N_256 ){
    if( s==0 ){ *n256_end(nd) = NULL; nd->kind &= (uint8_t)~N_END; }
    else n256_kids(nd)[s-1] = NULL;
  }else{
    uint8_t *keys = s_keys(nd);
    void **kids = s_kids(nd);
    if( s==0 && has_end(nd) ) nd->kind &= (uint8_t)~N_END;
    memmove(keys + s, keys + s + 1, (size_t)(nd->n - s - 1));
    memmove(kids + s, kids + s + 1, sizeof(void *)*(size_t)(nd->n - s - 1));
  }
  nd->n--;
}

/* nd (at *ref) is down to one child: put that child in its place; an
** inner child's prefix grows by nd's prefix and the child's byte. */
static void collapse(kd_index *x, void **ref, kd_node *nd){
  void *c = slot_child(nd, next_slot(nd, -1));
  if( !is_leaf(c) ){
    kd_node *cn = c;
    cn->plen += nd->plen + 1;
  }
  *ref = c;
  node_release(x, nd);
}

/* The smallest class that holds n slots. */
static int class_for(int n){
  int c = 0;
  while( c<NSORTED && sorted_cap[c]<n ) c++;
  return c;
}

/* Move nd (at *ref) into a smaller node when it fits two classes down, so
** that alternating inserts and removes cannot copy it back and forth.  A
** SORTED node shrinks in place: children down behind the shorter keys
** array, then realloc (and the children back up if that fails). */
static void maybe_shrink(kd_index *x, void **ref, kd_node *nd){
  int cls = nd->cls, to;
  kd_node *small;
  if( cls<2 || nd->n>sorted_cap[cls-2] ) return;
  to = class_for(nd->n);
  if( cls==CLS_256 ){
    small = node_alloc(x, to);
    if( !small ) return;
    small->kind = N_SORTED;
    copy_children(small, nd);
    node_release(x, nd);
  }else{
    uint8_t *keys = s_keys(nd);
    size_t oldpad = pad8(sorted_cap[cls]), newpad = pad8(sorted_cap[to]);
    size_t kbytes = sizeof(void *)*nd->n;
    memmove(keys + newpad, keys + oldpad, kbytes);
    small = tkv_mem_realloc(nd, node_size(to));
    if( !small ){
      memmove(keys + oldpad, keys + newpad, kbytes);
      return;
    }
    x->bytes -= alloc_cost(node_size(cls)) - alloc_cost(node_size(to));
    small->cls = (uint8_t)to;
  }
  *ref = small;
}

void kd_index_remove(kd_index *x, kd_entry *e){
  size_t klen, d = 0;
  const uint8_t *k = entry_key(e, &klen);
  void **ref = &x->root;
  void *leaf = leaf_of(e);
  for(;;){
    kd_node *nd = *ref;
    int s;
    if( nd==leaf ){ *ref = NULL; break; }   /* the root was this leaf */
    d += nd->plen;
    if( d==klen ){
      s = 0;
    }else if( nd->kind & N_256 ){
      s = 1 + k[d];
    }else{
      s = sorted_find(nd, k[d]);
    }
    if( slot_child(nd, s)!=leaf ){
      ref = (nd->kind & N_256) ? &n256_kids(nd)[k[d]] : &s_kids(nd)[s];
      d++;
      continue;
    }
    node_take(nd, s);
    if( nd->n==1 ) collapse(x, ref, nd);
    else maybe_shrink(x, ref, nd);
    break;
  }
  x->count--;
}

/* ---- Iteration.  Frames hold (node, slot) down the path to the current
** entry.  A path deeper than KD_ITER_DEPTH (only with long chains of keys
** that are prefixes of each other) is not kept: depth is then -1 and
** kd_iter_next seeks again from the root. */

/* Record frame i (if it fits). */
static void push_frame(kd_iter *it, int i, const kd_node *nd, int s){
  if( i<KD_ITER_DEPTH ){
    it->node[i] = (void *)nd;
    it->pos[i] = s;
  }
}

/* Descend to the smallest entry below p, with fd frames above it; make it
** the current entry. */
static kd_entry *settle_leftmost(kd_iter *it, const void *p, int fd){
  while( !is_leaf(p) ){
    const kd_node *nd = p;
    int s = next_slot(nd, -1);
    push_frame(it, fd++, nd, s);
    p = slot_child(nd, s);
  }
  it->depth = fd<=KD_ITER_DEPTH ? fd : -1;
  it->cur = leaf_entry(p);
  return it->cur;
}

static kd_entry *settle_end(kd_iter *it){
  it->depth = 0;
  it->cur = NULL;
  return NULL;
}

/* Compare nd's prefix (at depth d) with the key from d on: <0 when every
** key below nd is smaller than the key, >0 when every one is greater, 0
** when the key goes on through the prefix. */
static int prefix_cmp(const kd_node *nd, const uint8_t *k, size_t klen,
                      size_t d){
  size_t m = prefix_match(nd, k, klen, d);
  if( m==nd->plen ) return 0;
  if( d+m==klen ) return 1;                 /* the key ends inside */
  return node_prefix(nd, d)[m]<k[d+m] ? -1 : 1;
}

/* Compare entry e's key with k: <0, 0, >0. */
static int key_cmp(const kd_entry *e, const uint8_t *k, size_t klen){
  size_t elen;
  const uint8_t *ek = entry_key(e, &elen);
  size_t n = elen<klen ? elen : klen;
  int c = n ? memcmp(ek, k, n) : 0;
  if( c ) return c;
  return elen<klen ? -1 : elen>klen;
}

kd_entry *kd_iter_seek(kd_iter *it, const kd_index *x, const void *key,
                       size_t klen, int after){
  const uint8_t *k = key ? key : (const uint8_t *)"";
  const void *p = x->root;
  const kd_node *cn = NULL;    /* deepest node on the path with a greater */
  int cs = -1, cfd = 0;        /* slot, and its frame number */
  size_t d = 0;
  int fd = 0;
  it->x = x;
  if( !p ) return settle_end(it);
  for(;;){
    const kd_node *nd;
    int s;
    if( is_leaf(p) ){
      int c = key_cmp(leaf_entry(p), k, klen);
      if( c>0 || (c==0 && !after) ){
        it->depth = fd<=KD_ITER_DEPTH ? fd : -1;
        it->cur = leaf_entry(p);
        return it->cur;
      }
      break;
    }
    nd = p;
    if( nd->plen ){
      int c = prefix_cmp(nd, k, klen, d);
      if( c>0 ) return settle_leftmost(it, nd, fd);
      if( c<0 ) break;
      d += nd->plen;
    }
    if( d==klen ){
      s = next_slot(nd, -1);
      if( after && has_end(nd) ) s = next_slot(nd, s);
      push_frame(it, fd, nd, s);
      return settle_leftmost(it, slot_child(nd, s), fd + 1);
    }
    if( nd->kind & N_256 ){
      s = n256_kids(nd)[k[d]] ? 1 + k[d] : -1;
    }else{
      s = sorted_find(nd, k[d]);
    }
    if( s<0 ){
      s = slot_after_byte(nd, k[d]);
      if( s<0 ) break;
      push_frame(it, fd, nd, s);
      return settle_leftmost(it, slot_child(nd, s), fd + 1);
    }
    push_frame(it, fd, nd, s);
    if( next_slot(nd, s)>=0 ){ cn = nd; cs = next_slot(nd, s); cfd = fd; }
    fd++;
    p = slot_child(nd, s);
    d++;
  }
  /* Everything below the path's last node is smaller than the key: go on
  ** from the deepest greater sibling. */
  if( !cn ) return settle_end(it);
  push_frame(it, cfd, cn, cs);
  return settle_leftmost(it, slot_child(cn, cs), cfd + 1);
}

kd_entry *kd_iter_next(kd_iter *it){
  int fd = it->depth;
  if( !it->cur ) return NULL;
  if( fd<0 ){
    size_t klen;
    const uint8_t *k = entry_key(it->cur, &klen);
    return kd_iter_seek(it, it->x, k, klen, 1);
  }
  while( fd>0 ){
    const kd_node *nd = it->node[fd-1];
    int s = next_slot(nd, it->pos[fd-1]);
    if( s>=0 ){
      it->pos[fd-1] = s;
      return settle_leftmost(it, slot_child(nd, s), fd);
    }
    fd--;
  }
  return settle_end(it);
}

/* =============================================================== Sorting */

/*
** kd_sort is a radix sort over eight bytes of key at a time, most
** significant byte first.  Each key gets an item holding the eight bytes
** of the current depth as a big-endian number (zero-padded past the key's
** end) and how many bytes the key has from that depth on (at most 9,
** meaning "more than 8").  Sorting items by (chunk, rest) sorts the keys
** by their bytes up to depth+8, and among keys equal that far a key that
** ends sooner sorts first, as in the index.  Items equal in both with rest
** 9 go on to depth+8: they are kept on a list of runs to refine, not
** recursed into, since a key may be a megabyte long.
**
** Every step is stable (counting sorts, then insertion sorts of small
** runs), so equal keys keep their order: the caller relies on it to apply
** records of one key in the order they were written.  The items are read
** sequentially, never the keys but once per depth, which is what makes
** this cheaper than comparison sorts through the key pointers (qsort of 1M
** random 16-byte keys: ~270 ms; this: ~30 ms).
*/
typedef struct sort_item {
  uint64_t chunk;       /* key bytes [depth, depth+8), big-endian */
  uint32_t rest;        /* key bytes from depth on, at most 9 */
  uint32_t no;          /* index of the key in the caller's array */
} sort_item;

/* A run of items whose keys agree on their first `depth` bytes. */
typedef struct sort_run {
  size_t lo, n, depth;
} sort_run;

#define SORT_SMALL  24     /* runs this short are insertion-sorted */
#define SORT_DIGITS 9      /* eight chunk bytes, then rest */

/* Fill the chunk and rest of items it[0..n) for depth. */
static void sort_fill(sort_item *it, size_t n, const kd_sortkey *v,
                      size_t depth){
  for(size_t i=0; i<n; i++){
    const kd_sortkey *k = &v[it[i].no];
    size_t m = k->klen>depth ? k->klen - depth : 0;
    uint64_t c = 0;
    for(size_t j=0; j<8; j++){
      c = c<<8 | (j<m ? k->key[depth + j] : 0);
    }
    it[i].chunk = c;
    it[i].rest = (uint32_t)(m>8 ? 9 : m);
  }
}

/* Digit d of an item: byte d of its chunk from the top, then its rest. */
static unsigned sort_digit(const sort_item *x, int d){
  if( d<8 ) return (unsigned)(x->chunk >> (56 - 8*d)) & 0xff;
  return x->rest;
}

static int sort_less(const sort_item *a, const sort_item *b){
  return a->chunk<b->chunk || (a->chunk==b->chunk && a->rest<b->rest);
}

/* Sort it[0..n) stably by (chunk, rest), whose digits before d are equal
** already; tmp has room for n items.  Recursion is at most SORT_DIGITS
** deep. */
static void sort_msd(sort_item *it, sort_item *tmp, size_t n, int d){
  uint32_t cnt[256], at[256];
  size_t i;
  /* Skip digits on which all the items agree. */
  while( n>SORT_SMALL && d<SORT_DIGITS ){
    unsigned first = sort_digit(&it[0], d);
    for(i=1; i<n && sort_digit(&it[i], d)==first; i++){}
    if( i<n ) break;
    d++;
  }
  if( d>=SORT_DIGITS ) return;
  if( n<=SORT_SMALL ){
    for(i=1; i<n; i++){
      sort_item x = it[i];
      size_t j = i;
      while( j>0 && sort_less(&x, &it[j-1]) ){ it[j] = it[j-1]; j--; }
      it[j] = x;
    }
    return;
  }
  memset(cnt, 0, sizeof cnt);
  for(i=0; i<n; i++) cnt[sort_digit(&it[i], d)]++;
  for(uint32_t b=0, sum=0; b<256; b++){ at[b] = sum; sum += cnt[b]; }
  for(i=0; i<n; i++) tmp[at[sort_digit(&it[i], d)]++] = it[i];
  memcpy(it, tmp, n*sizeof(*it));
  for(unsigned b=0; b<256; b++){
    if( cnt[b]>1 ){
      size_t lo = at[b] - cnt[b];
      sort_msd(it + lo, tmp + lo, cnt[b], d + 1);
    }
  }
}

/* Whether v[0..n) is in index order already (a merge's output is written
** in key order, so its records load in order): one pass that usually stops
** at the first pair of any other input. */
static int in_order(const kd_sortkey *v, size_t n){
  for(size_t i=1; i<n; i++){
    uint32_t m = v[i-1].klen<v[i].klen ? v[i-1].klen : v[i].klen;
    int c = m ? memcmp(v[i-1].key, v[i].key, m) : 0;
    if( c>0 || (c==0 && v[i-1].klen>v[i].klen) ) return 0;
  }
  return 1;
}

int kd_sort(kd_sortkey *v, size_t n){
  sort_item *it, *tmp;
  sort_run *runs;
  kd_sortkey *out;
  size_t nruns = 1, caprun = 16;
  if( n<2 || in_order(v, n) ) return 0;
  if( n>UINT32_MAX ) return -1;
  it = tkv_mem_alloc_big(n*sizeof(*it));
  tmp = tkv_mem_alloc_big(n*sizeof(*tmp));
  runs = tkv_mem_alloc(caprun*sizeof(*runs));
  if( !it || !tmp || !runs ){
    tkv_mem_free_big(it, n*sizeof(*it));
    tkv_mem_free_big(tmp, n*sizeof(*tmp));
    tkv_mem_free(runs);
    return -1;
  }
  for(size_t i=0; i<n; i++) it[i].no = (uint32_t)i;
  runs[0].lo = 0;
  runs[0].n = n;
  runs[0].depth = 0;
  while( nruns ){
    sort_run r = runs[--nruns];
    sort_item *x = it + r.lo;
    sort_fill(x, r.n, v, r.depth);
    sort_msd(x, tmp + r.lo, r.n, 0);
    /* Runs of keys that agree beyond depth+8: sorted further. */
    for(size_t i=0, j; i<r.n; i=j){
      for(j=i+1; j<r.n && x[j].chunk==x[i].chunk && x[j].rest==x[i].rest;
          j++){}
      if( j - i<2 || x[i].rest<9 ) continue;
      if( nruns==caprun ){
        sort_run *p = tkv_mem_realloc(runs, 2*caprun*sizeof(*runs));
        if( !p ){
          tkv_mem_free_big(it, n*sizeof(*it));
          tkv_mem_free_big(tmp, n*sizeof(*tmp));
          tkv_mem_free(runs);
          return -1;
        }
        runs = p;
        caprun *= 2;
      }
      runs[nruns].lo = r.lo + i;
      runs[nruns].n = j - i;
      runs[nruns].depth = r.depth + 8;
      nruns++;
    }
  }
  tkv_mem_free(runs);
  tkv_mem_free_big(tmp, n*sizeof(*tmp));
  out = tkv_mem_alloc_big(n*sizeof(*out));
  if( !out ){
    tkv_mem_free_big(it, n*sizeof(*it));
    return -1;
  }
  for(size_t i=0; i<n; i++) out[i] = v[it[i].no];
  memcpy(v, out, n*sizeof(*v));
  tkv_mem_free_big(out, n*sizeof(*out));
  tkv_mem_free_big(it, n*sizeof(*it));
  return 0;
}
