/*
** OBJECT ENCODING as Redis reports it; see objenc.h.
**
** The exceptions live in a hash table from key bytes to encoding (FNV-1a,
** chaining, power-of-two buckets doubled at load 1).  An entry is kept only
** while it differs from what the bytes alone would give, so the table holds
** just the short strings last changed by APPEND, SETRANGE, SETBIT or an
** integral INCRBYFLOAT.  A group commit that fails rolls writes back but
** not this table: the key may then report "raw" for a value SET gave,
** which affects only OBJECT ENCODING.
*/
#include "objenc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

/* Values longer than this are "raw" whatever made them. */
#define EMBSTR_MAX 44

typedef struct entry {
  struct entry *next;
  uint32_t hash;
  int enc;
  size_t klen;
  unsigned char key[];
} entry;

static struct {
  entry **b;
  size_t nb, n;
} tab;

static uint32_t hash_of(const void *key, size_t klen) {
  const unsigned char *p = key;
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < klen; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

/* The slot holding key's entry, or the empty slot where it would go. */
static entry **find(const void *key, size_t klen, uint32_t h) {
  if (!tab.nb) return NULL;
  entry **pp = &tab.b[h & (tab.nb - 1)];
  while (*pp && ((*pp)->hash != h || (*pp)->klen != klen ||
                 memcmp((*pp)->key, key, klen) != 0))
    pp = &(*pp)->next;
  return pp;
}

/* Double the buckets (or make the first ones).  On failure the table
** keeps its size: it stays correct, only slower. */
static void grow(void) {
  size_t nb = tab.nb ? tab.nb * 2 : 64;
  entry **b = calloc(nb, sizeof *b);
  if (!b) return;
  for (size_t i = 0; i < tab.nb; i++) {
    entry *e = tab.b[i];
    while (e) {
      entry *next = e->next;
      e->next = b[e->hash & (nb - 1)];
      b[e->hash & (nb - 1)] = e;
      e = next;
    }
  }
  free(tab.b);
  tab.b = b;
  tab.nb = nb;
}

/* What SET would give a value of these bytes. */
static int derived_is_int(const char *v, size_t n) {
  long long x;
  return n <= 20 && resp_str2ll(v, n, &x) == 0;
}

void objenc_forget(const void *key, size_t klen) {
  if (!tab.n) return;
  entry **pp = find(key, klen, hash_of(key, klen));
  if (pp && *pp) {
    entry *e = *pp;
    *pp = e->next;
    free(e);
    tab.n--;
  }
}

void objenc_note(const void *key, size_t klen, int enc, size_t n) {
  objenc_forget(key, klen);
  /* Past EMBSTR_MAX every value is "raw", as derived; an "embstr" note
  ** differs from the derived encoding only for integers, which the caller
  ** knows (INCRBYFLOAT notes only those). */
  if (enc == OBJENC_DERIVED || n > EMBSTR_MAX) return;
  if (tab.n >= tab.nb) grow();
  if (!tab.nb) return;
  uint32_t h = hash_of(key, klen);
  entry *e = malloc(sizeof *e + klen);
  if (!e) return;
  e->hash = h;
  e->enc = enc;
  e->klen = klen;
  memcpy(e->key, key, klen);
  e->next = tab.b[h & (tab.nb - 1)];
  tab.b[h & (tab.nb - 1)] = e;
  tab.n++;
}

int objenc_get(const void *key, size_t klen) {
  if (!tab.n) return OBJENC_DERIVED;
  entry **pp = find(key, klen, hash_of(key, klen));
  return pp && *pp ? (*pp)->enc : OBJENC_DERIVED;
}

const char *objenc_name(const void *key, size_t klen, const char *v,
                        size_t n) {
  switch (objenc_get(key, klen)) {
  case OBJENC_RAW:
    return "raw";
  case OBJENC_EMBSTR:
    return n <= EMBSTR_MAX ? "embstr" : "raw";
  default:
    if (derived_is_int(v, n)) return "int";
    return n <= EMBSTR_MAX ? "embstr" : "raw";
  }
}

size_t objenc_count(void) { return tab.n; }
