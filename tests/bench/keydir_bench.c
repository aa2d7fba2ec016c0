/*
** Microbenchmark of the keydir (core/keydir.c): memory per key, insert,
** find, seek and iteration times, on three key sets:
**
**   random16   1M random 16-byte keys
**   user8      1M sequential keys "user:%08d"
**   random100  100k random 100-byte keys
**
** and, for the choice of structure, two baselines that stand for the best
** case of a B+tree (every node full, no inner levels):
**
**   bisect   a packed sorted array of entry pointers searched by bisection
**            (a tree that keeps no key bytes in its nodes: 8 bytes a key)
**   heads    a packed sorted array of (8-byte key head, entry pointer)
**            (a tree with key heads in its nodes: 16 bytes a key)
**
** Standalone; build and run from the top of the tree:
**
**   cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Icore \
**      tests/bench/keydir_bench.c core/keydir.c core/mem.c -o build/keydir_bench
**   build/keydir_bench [runs]          (default 5 runs; medians are shown)
**
** Each key set is measured in a child process of its own so that its RSS
** growth is not blurred by the heap of the one before.
*/
#include "keydir.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct keyset {
  const char *name;
  size_t n;          /* keys */
  size_t klen;       /* bytes a key (all keys of a set are this long) */
  uint8_t *keys;     /* n*klen bytes, in insertion order */
  uint8_t *probe;    /* the same keys in another random order */
} keyset;

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void){
  uint64_t x = rng;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}

static double now_ns(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec*1e9 + (double)ts.tv_nsec;
}

/* Resident set size of this process in bytes. */
static size_t rss_bytes(void){
  long pages = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if( f ){
    if( fscanf(f, "%ld %ld", &pages, &res)!=2 ) res = 0;
    fclose(f);
  }
  return (size_t)res*(size_t)sysconf(_SC_PAGESIZE);
}

static void *xmalloc(size_t n){
  void *p = malloc(n);
  if( !p ){ fprintf(stderr, "out of memory\n"); exit(1); }
  return p;
}

/* Fill probe with the keys of ks in a random order. */
static void make_probe(keyset *ks){
  size_t *perm = xmalloc(ks->n*sizeof(size_t)), i;
  for(i=0; i<ks->n; i++) perm[i] = i;
  for(i=ks->n-1; i>0; i--){
    size_t j = (size_t)(next_rand()%(i+1)), t = perm[i];
    perm[i] = perm[j]; perm[j] = t;
  }
  ks->probe = xmalloc(ks->n*ks->klen);
  for(i=0; i<ks->n; i++){
    memcpy(ks->probe + i*ks->klen, ks->keys + perm[i]*ks->klen, ks->klen);
  }
  free(perm);
}

/* Random keys (duplicates are astronomically unlikely at these sizes and
** are skipped by the inserts anyway). */
static void make_random(keyset *ks, const char *name, size_t n, size_t klen){
  size_t i;
  ks->name = name;
  ks->n = n;
  ks->klen = klen;
  ks->keys = xmalloc(n*klen);
  for(i=0; i<n*klen; i+=8){
    uint64_t r = next_rand();
    memcpy(ks->keys + i, &r, n*klen - i<8 ? n*klen - i : 8);
  }
  make_probe(ks);
}

/* "user:%08d" for 0..n-1, inserted in that (sequential) order. */
static void make_user(keyset *ks, size_t n){
  size_t i;
  char buf[32];
  ks->name = "user8";
  ks->n = n;
  ks->klen = 13;
  ks->keys = xmalloc(n*13);
  for(i=0; i<n; i++){
    snprintf(buf, sizeof buf, "user:%08zu", i);
    memcpy(ks->keys + i*13, buf, 13);
  }
  make_probe(ks);
}

static int cmp_double(const void *a, const void *b){
  double x = *(const double *)a, y = *(const double *)b;
  return x<y ? -1 : x>y;
}

static double median(double *v, int n){
  qsort(v, (size_t)n, sizeof(double), cmp_double);
  return n%2 ? v[n/2] : (v[n/2-1] + v[n/2])/2;
}

typedef struct result {
  double new, ins, find, miss, seek, next, rm, base, heads;   /* ns an op */
  double bytes, arena, index, rss;                /* bytes a key */
} result;

static volatile uint64_t sink;

/* Sorted array of entry pointers with bisection: the comparison-tree
** baseline.  ns a find. */
static const kd_entry **g_sorted;
static int cmp_entry(const void *a, const void *b){
  size_t la, lb, n;
  const uint8_t *ka = kd_entry_key(*(const kd_entry *const *)a, &la);
  const uint8_t *kb = kd_entry_key(*(const kd_entry *const *)b, &lb);
  int c;
  n = la<lb ? la : lb;
  c = memcmp(ka, kb, n);
  return c ? c : (la<lb ? -1 : la>lb);
}

static double bench_baseline(const keyset *ks, kd_entry **es, size_t n){
  size_t i;
  double t0;
  uint64_t s = 0;
  g_sorted = xmalloc(n*sizeof(*g_sorted));
  memcpy(g_sorted, es, n*sizeof(*g_sorted));
  qsort(g_sorted, n, sizeof(*g_sorted), cmp_entry);
  t0 = now_ns();
  for(i=0; i<ks->n; i++){
    const uint8_t *k = ks->probe + i*ks->klen;
    size_t lo = 0, hi = n;
    while( lo<hi ){
      size_t mid = (lo + hi)/2, elen;
      const uint8_t *ek = kd_entry_key(g_sorted[mid], &elen);
      int c = memcmp(ek, k, ks->klen);
      if( c==0 ){ lo = mid; break; }
      if( c<0 ) lo = mid + 1; else hi = mid;
    }
    s += lo;
  }
  sink += s;
  t0 = (now_ns() - t0)/(double)ks->n;
  free(g_sorted);
  return t0;
}

/* The first 8 bytes of a key as a big-endian number (zero-padded), so that
** numbers compare as the keys' heads do. */
static uint64_t key_head(const uint8_t *k, size_t klen){
  uint64_t h = 0;
  size_t i;
  for(i=0; i<8; i++) h = h<<8 | (i<klen ? k[i] : 0);
  return h;
}

typedef struct headed {
  uint64_t head;
  const kd_entry *e;
} headed;

/* Sorted array of (8-byte key head, entry pointer) with bisection on the
** heads, the full key compared only on equal heads: the best case of a
** B+tree that keeps key heads in its nodes (16 bytes a key before any fill
** factor).  ns a find. */
static double bench_heads(const keyset *ks, kd_entry **es, size_t n){
  headed *v = xmalloc(n*sizeof(*v));
  size_t i;
  double t0;
  uint64_t s = 0;
  g_sorted = xmalloc(n*sizeof(*g_sorted));
  memcpy(g_sorted, es, n*sizeof(*g_sorted));
  qsort(g_sorted, n, sizeof(*g_sorted), cmp_entry);
  for(i=0; i<n; i++){
    size_t klen;
    const uint8_t *k = kd_entry_key(g_sorted[i], &klen);
    v[i].head = key_head(k, klen);
    v[i].e = g_sorted[i];
  }
  free(g_sorted);
  t0 = now_ns();
  for(i=0; i<ks->n; i++){
    const uint8_t *k = ks->probe + i*ks->klen;
    uint64_t h = key_head(k, ks->klen);
    size_t lo = 0, hi = n;
    while( lo<hi ){
      size_t mid = (lo + hi)/2;
      int c = v[mid].head<h ? -1 : v[mid].head>h;
      if( c==0 ){
        size_t elen;
        c = memcmp(kd_entry_key(v[mid].e, &elen), k, ks->klen);
        if( c==0 ){ lo = mid; break; }
      }
      if( c<0 ) lo = mid + 1; else hi = mid;
    }
    s += lo;
  }
  sink += s;
  t0 = (now_ns() - t0)/(double)ks->n;
  free(v);
  return t0;
}

/* One full run over a key set. */
static void run_once(const keyset *ks, result *r, int with_baseline){
  size_t rss0 = rss_bytes(), n = 0, i;
  kd_arena *a = kd_arena_new();
  kd_index *x = kd_index_new();
  kd_entry **es = xmalloc(ks->n*sizeof(*es));
  kd_iter it;
  kd_entry *e;
  double t0;
  uint64_t s = 0;
  tkv_loc loc = {1, 0, 100};

  /* The entry array is the harness's: touch it (with non-zero bytes, so
  ** that malloc+memset does not become a lazily zeroed calloc) before the
  ** RSS is read. */
  memset(es, 0xff, ks->n*sizeof(*es));
  rss0 = rss_bytes();
  t0 = now_ns();
  for(i=0; i<ks->n; i++){
    loc.off = (uint32_t)i;
    es[i] = kd_entry_new(a, ks->keys + i*ks->klen, ks->klen, loc, 0);
    if( !es[i] ){ fprintf(stderr, "out of memory\n"); exit(1); }
  }
  r->new = (now_ns() - t0)/(double)ks->n;
  t0 = now_ns();
  for(i=0; i<ks->n; i++){
    if( kd_index_insert(x, es[i]) ){ fprintf(stderr, "out of memory\n"); exit(1); }
  }
  n = ks->n;
  r->ins = (now_ns() - t0)/(double)ks->n;
  r->rss = (double)(rss_bytes() - rss0)/(double)n;
  r->arena = (double)kd_arena_bytes(a)/(double)n;
  r->index = (double)kd_index_bytes(x)/(double)n;
  r->bytes = r->arena + r->index;

  t0 = now_ns();
  for(i=0; i<ks->n; i++){
    e = kd_index_find(x, ks->probe + i*ks->klen, ks->klen);
    s += kd_entry_loc(e).off;
  }
  r->find = (now_ns() - t0)/(double)ks->n;

  /* Misses: the probe keys with the last byte changed. */
  {
    uint8_t buf[128];
    t0 = now_ns();
    for(i=0; i<ks->n; i++){
      memcpy(buf, ks->probe + i*ks->klen, ks->klen);
      buf[ks->klen-1] ^= 0x5a;
      buf[0] ^= (uint8_t)(i & 1);
      s += kd_index_find(x, buf, ks->klen)!=NULL;
    }
    r->miss = (now_ns() - t0)/(double)ks->n;
  }

  t0 = now_ns();
  for(i=0; i<ks->n; i++){
    e = kd_iter_seek(&it, x, ks->probe + i*ks->klen, ks->klen, 1);
    s += e!=NULL;
  }
  r->seek = (now_ns() - t0)/(double)ks->n;

  t0 = now_ns();
  i = 0;
  for(e=kd_iter_seek(&it, x, NULL, 0, 0); e; e=kd_iter_next(&it)){
    s += kd_entry_loc(e).vlen;
    i++;
  }
  r->next = (now_ns() - t0)/(double)i;
  if( i!=n ){ fprintf(stderr, "iteration saw %zu of %zu\n", i, n); exit(1); }

  r->base = with_baseline ? bench_baseline(ks, es, n) : 0;
  r->heads = with_baseline ? bench_heads(ks, es, n) : 0;

  t0 = now_ns();
  for(i=0; i<ks->n; i++){
    e = kd_index_find(x, ks->probe + i*ks->klen, ks->klen);
    kd_index_remove(x, e);
    kd_entry_free(a, e);
  }
  r->rm = (now_ns() - t0)/(double)ks->n;
  if( kd_index_count(x)!=0 ){ fprintf(stderr, "remove failed\n"); exit(1); }
  sink += s;
  free(es);
  kd_index_free(x);
  kd_arena_free(a);
}

/* Measure a key set `runs` times and print the medians as a table row. */
static void measure(const keyset *ks, int runs, int with_baseline){
  double v[13][32];
  result r;
  int i, f;
  if( runs>32 ) runs = 32;
  for(i=0; i<runs; i++){
    run_once(ks, &r, with_baseline);
    v[0][i] = r.bytes; v[1][i] = r.arena; v[2][i] = r.index;
    v[3][i] = i==0 ? r.rss : v[3][0];    /* the first run: a fresh heap */
    v[4][i] = r.new; v[5][i] = r.ins; v[6][i] = r.find; v[7][i] = r.miss;
    v[8][i] = r.seek; v[9][i] = r.next; v[10][i] = r.rm; v[11][i] = r.base;
    v[12][i] = r.heads;
  }
  printf("| %-9s | %7zu | %3zu |", ks->name, ks->n, ks->klen);
  for(f=0; f<13; f++){
    double m = median(v[f], runs);
    if( f>=11 && !with_baseline ) printf("     - |");
    else printf(f<4 ? " %5.1f |" : " %5.0f |", m);
  }
  printf("\n");
  fflush(stdout);
}

int main(int argc, char **argv){
  int runs = argc>1 ? atoi(argv[1]) : 5;
  int set;
  if( runs<1 ) runs = 1;
  printf("keydir: bytes a key and ns an operation, median of %d runs\n\n",
         runs);
  printf("| set       |    keys | len | B/key | arena | index |   RSS |"
         "   new | insert |  find |  miss |  seek |  next | remove |"
         " bisect |  heads |\n");
  printf("|-----------|--------:|----:|------:|------:|------:|------:|"
         "------:|-------:|------:|------:|------:|------:|-------:|"
         "-------:|-------:|\n");
  fflush(stdout);
  for(set=0; set<3; set++){
    pid_t pid = fork();
    if( pid<0 ){ perror("fork"); return 1; }
    if( pid==0 ){
      keyset ks;
      if( set==0 ) make_random(&ks, "random16", 1000000, 16);
      else if( set==1 ) make_user(&ks, 1000000);
      else make_random(&ks, "random100", 100000, 100);
      measure(&ks, runs, 1);
      free(ks.keys);
      free(ks.probe);
      _exit(0);
    }else{
      int st;
      waitpid(pid, &st, 0);
      if( !WIFEXITED(st) || WEXITSTATUS(st) ) return 1;
    }
  }
  return 0;
}
