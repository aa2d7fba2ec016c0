/*
** Allocation wrappers with a fault-injection hook (see mem.h, testhook.h).
*/
#include "mem.h"
#include "testhook.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Atomic: allocations happen on every thread that uses the engine. */
static _Atomic long fail_countdown; /* 0: off; else allocations until failure */
static _Atomic int fail_sticky;     /* keep failing once the countdown hit */
static _Atomic long alloc_count;    /* allocations since the last reset */

void tkv_test_fail_alloc(long n, int sticky){
  fail_countdown = n;
  fail_sticky = sticky;
}

long tkv_test_alloc_count(int reset){
  return reset ? atomic_exchange(&alloc_count, 0) : atomic_load(&alloc_count);
}

/* True if this allocation must fail. */
static int should_fail(void){
  long left;
  atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
  left = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
  if( left==0 ) return 0;
  if( left>1 ){ atomic_fetch_sub(&fail_countdown, 1); return 0; }
  if( !fail_sticky ) fail_countdown = 0;
  return 1;
}

void *tkv_mem_alloc(size_t n){
  if( should_fail() ) return NULL;
  return malloc(n ? n : 1);
}

void *tkv_mem_alloc_aligned(size_t align, size_t n){
  void *p = NULL;
  if( should_fail() ) return NULL;
  return posix_memalign(&p, align, n ? n : 1) ? NULL : p;
}

/*
** n bytes for a buffer that is written or read whole and freed soon after
** (tkv_mem_free_big, with the same n).  From 2 MiB on, the buffer is
** mapped on its own, aligned to 2 MiB and offered to the kernel for
** transparent huge pages: on a VM the first touch of a 4 KiB page costs
** ~10 us (64 MiB touched page by page: ~170 ms; in huge pages: ~8 ms), and
** a fresh large allocation is fresh pages every time.  Not from malloc,
** whose mmap threshold grows to the size of each large block freed: the
** next blocks of that size would come from the heap and stay in the
** process's memory after they are freed.
*/
#define BIG_PAGE ((size_t)2 << 20)

/* Bytes a big buffer of n bytes maps, or 0 if it is a malloc'ed one. */
static size_t big_span(size_t n){
  if( n<BIG_PAGE || n>SIZE_MAX/2 ) return 0;
  return (n + BIG_PAGE - 1) & ~(BIG_PAGE - 1);
}

void *tkv_mem_alloc_big(size_t n){
  size_t span = big_span(n);
  uint8_t *p, *start;
  if( span==0 ) return tkv_mem_alloc(n);
  if( should_fail() ) return NULL;
  p = mmap(NULL, span + BIG_PAGE, PROT_READ|PROT_WRITE,
           MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  if( p==MAP_FAILED ) return NULL;
  /* Keep the 2 MiB-aligned span; give back the rest. */
  start = (uint8_t *)(((uintptr_t)p + BIG_PAGE - 1) & ~(uintptr_t)(BIG_PAGE - 1));
  if( start>p ) munmap(p, (size_t)(start - p));
  if( start + span < p + span + BIG_PAGE ){
    munmap(start + span, (size_t)(p + span + BIG_PAGE - (start + span)));
  }
#ifdef MADV_HUGEPAGE
  (void)madvise(start, span, MADV_HUGEPAGE);      /* a hint: may fail */
#endif
  return start;
}

void tkv_mem_free_big(void *p, size_t n){
  size_t span = big_span(n);
  if( !p ) return;
  if( span==0 ) tkv_mem_free(p);
  else munmap(p, span);
}

void *tkv_mem_calloc(size_t count, size_t size){
  if( should_fail() ) return NULL;
  return calloc(count ? count : 1, size ? size : 1);
}

void *tkv_mem_realloc(void *p, size_t n){
  if( should_fail() ) return NULL;
  return realloc(p, n ? n : 1);
}

void tkv_mem_free(void *p){
  free(p);
}

char *tkv_mem_dup(const void *p, size_t n){
  char *z = tkv_mem_alloc(n+1);
  if( z ){
    if( n ) memcpy(z, p, n);
    z[n] = 0;
  }
  return z;
}
