/*
** The keydir: where the latest record of every key lies on disk.
**
** Two parts, so that a transaction's uncommitted writes can live in an
** overlay of their own while sharing ids with the committed keydir:
**
**   kd_arena  owns the entries.  Each entry holds a key, its record location
**             and two flag bits, and has a 64-bit id that is fixed for the
**             life of the entry, is never given to another entry while the
**             arena exists, and finds the entry in O(1).
**   kd_index  an ordered set of entries (bytewise key order: memcmp, then
**             the shorter key first).  The engine keeps one index of the
**             committed keys and one per open transaction (its overlay).
**
** Neither part locks: the engine serialises every change.  Lookups, seeks
** and iteration only read, so several threads may run them at once while no
** change is being made.
*/
#ifndef TKV_KEYDIR_H
#define TKV_KEYDIR_H

#include <stddef.h>
#include <stdint.h>

/* Where a record lies: segment file id, offset of the record header in the
** file, and the length of its value. */
typedef struct tkv_loc {
  uint32_t file;
  uint32_t off;
  uint32_t vlen;
} tkv_loc;

typedef struct kd_entry kd_entry;
typedef struct kd_arena kd_arena;
typedef struct kd_index kd_index;

/* Entry flag bits, owned by the engine. */
#define KD_SHADOW    0x1   /* entry of a transaction's overlay */
#define KD_TOMBSTONE 0x2   /* overlay entry that deletes its key */

/* ------------------------------------------------------------ Arena. */

kd_arena *kd_arena_new(void);
/* Free the arena and every entry still allocated in it. */
void kd_arena_free(kd_arena *a);

/* A new entry with a copy of key, or NULL when out of memory.  It is in no
** index yet. */
kd_entry *kd_entry_new(kd_arena *a, const void *key, size_t klen,
                       tkv_loc loc, unsigned flags);
/* Free an entry that is in no index.  Its id is retired for good. */
void kd_entry_free(kd_arena *a, kd_entry *e);
/* The allocated entry with this id, or NULL (never allocated, or freed). */
kd_entry *kd_entry_by_id(const kd_arena *a, uint64_t id);
/* A live entry picked by random bits r, uniform over live entries, or NULL
** (draw again). */
kd_entry *kd_arena_sample(const kd_arena *a, uint64_t r);

uint64_t kd_entry_id(const kd_entry *e);        /* in 1 .. INT64_MAX */
const uint8_t *kd_entry_key(const kd_entry *e, size_t *pklen);
tkv_loc kd_entry_loc(const kd_entry *e);
void kd_entry_set_loc(kd_entry *e, tkv_loc loc);
unsigned kd_entry_flags(const kd_entry *e);
void kd_entry_set_flags(kd_entry *e, unsigned flags);

/* Bytes of memory the arena holds (entries, id table, free space). */
size_t kd_arena_bytes(const kd_arena *a);

/* ------------------------------------------------------------ Index. */

kd_index *kd_index_new(void);
/* Free the index; the entries stay allocated in their arena. */
void kd_index_free(kd_index *x);

/* Add e; no entry with an equal key may be in x.  0, or -1 when out of
** memory (x unchanged). */
int kd_index_insert(kd_index *x, kd_entry *e);
/* Put e in the place of old, which must be in x and have e's key.  Never
** fails (nothing is allocated). */
void kd_index_replace(kd_index *x, kd_entry *old, kd_entry *e);
/* Remove e, which must be in x.  Never fails. */
void kd_index_remove(kd_index *x, kd_entry *e);
/* The entry with this key, or NULL. */
kd_entry *kd_index_find(const kd_index *x, const void *key, size_t klen);
/* kd_index_find of n keys at once: out[i] is the entry of keys[i] (length
** klens[i]), or NULL.  The same answers, but the cache misses of the
** lookups overlap, so a batch costs a few misses' time instead of n
** lookups' (for pipelined requests and multi-key reads). */
void kd_index_find_many(const kd_index *x, size_t n, const void *const *keys,
                        const size_t *klens, kd_entry **out);
size_t kd_index_count(const kd_index *x);
/* Bytes of memory the index holds. */
size_t kd_index_bytes(const kd_index *x);

/*
** Ordered iteration.  An iterator is valid only while its index is not
** changed; after a change, seek again.
*/
#define KD_ITER_DEPTH 64
typedef struct kd_iter {
  const kd_index *x;
  int depth;                        /* implementation-defined position */
  void *node[KD_ITER_DEPTH];
  int pos[KD_ITER_DEPTH];
  kd_entry *cur;                    /* current entry, NULL at the end */
} kd_iter;

/* Position at the first entry whose key is >= key (> key when `after`),
** key NULL/klen 0 with after=0 meaning the first entry.  Returns it, or NULL
** when there is none. */
kd_entry *kd_iter_seek(kd_iter *it, const kd_index *x, const void *key,
                       size_t klen, int after);
/* Step to the next entry in key order; NULL at the end. */
kd_entry *kd_iter_next(kd_iter *it);

/* ------------------------------------------------------------ Sorting. */

/* A key to be put in index order by kd_sort; tag is the caller's. */
typedef struct kd_sortkey {
  const uint8_t *key;
  uint32_t klen;
  uint32_t tag;
} kd_sortkey;

/* Sort v[0..n) into the index's key order (memcmp, then the shorter key
** first), keeping equal keys in the order given.  Keys inserted in this
** order share their path down the index with the key before, so a batch
** of them costs a few cache misses per node instead of several per key.
** n < 2^32.  0, or -1 when out of memory (v is then unchanged). */
int kd_sort(kd_sortkey *v, size_t n);

#endif
