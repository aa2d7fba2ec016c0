/*
** Allocation wrappers with a fault-injection hook (see mem.h, testhook.h).
*/
#include "mem.h"
#include "testhook.h"

#include <stdlib.h>
#include <string.h>

static long fail_countdown;   /* 0: off; else allocations left until failure */
static int fail_sticky;       /* keep failing once the countdown hit */
static long alloc_count;      /* allocations since the last reset */

void tkv_test_fail_alloc(long n, int sticky){
  fail_countdown = n;
  fail_sticky = sticky;
}

long tkv_test_alloc_count(int reset){
  long n = alloc_count;
  if( reset ) alloc_count = 0;
  return n;
}

/* True if this allocation must fail. */
static int should_fail(void){
  alloc_count++;
  if( fail_countdown==0 ) return 0;
  if( fail_countdown>1 ){ fail_countdown--; return 0; }
  if( !fail_sticky ) fail_countdown = 0;
  return 1;
}

void *tkv_mem_alloc(size_t n){
  if( should_fail() ) return NULL;
  return malloc(n ? n : 1);
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
