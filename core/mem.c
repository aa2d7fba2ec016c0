/*
** Allocation wrappers with a fault-injection hook (see mem.h, testhook.h).
*/
#include "mem.h"
#include "testhook.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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
