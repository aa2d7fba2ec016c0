/*
** CRC-32C.  Debian packages no C library for it, and it is small: a
** slicing-by-8 table version, and the SSE4.2 instruction where the CPU has
** it (checked once at run time), which runs at several GB/s so that
** verifying every read costs little next to the pread.
*/
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82f63b78u   /* reflected Castagnoli polynomial */

static uint32_t table[8][256];
static int have_sse42;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

static void build_table(void){
  for(uint32_t i=0; i<256; i++){
    uint32_t c = i;
    for(int k=0; k<8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
    table[0][i] = c;
  }
  for(uint32_t i=0; i<256; i++){
    for(int t=1; t<8; t++){
      table[t][i] = (table[t-1][i] >> 8) ^ table[0][table[t-1][i] & 0xff];
    }
  }
}

static uint32_t crc_soft(uint32_t crc, const uint8_t *p, size_t n){
  while( n>=8 ){
    uint64_t w;
    memcpy(&w, p, 8);
    w ^= crc;
    crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff]
        ^ table[5][(w >> 16) & 0xff] ^ table[4][(w >> 24) & 0xff]
        ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff]
        ^ table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while( n-- ) crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n){
  uint64_t c = crc;
  while( n>=8 ){
    uint64_t w;
    memcpy(&w, p, 8);
    c = __builtin_ia32_crc32di(c, w);
    p += 8;
    n -= 8;
  }
  crc = (uint32_t)c;
  while( n-- ) crc = __builtin_ia32_crc32qi(crc, *p++);
  return crc;
}
#endif

/* Build the table and probe the CPU, once per process. */
static void init_once(void){
  build_table();
#if defined(__x86_64__)
  __builtin_cpu_init();
  have_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#else
  have_sse42 = 0;
#endif
}

uint32_t tkv_crc32c(uint32_t crc, const void *p, size_t n){
  pthread_once(&probe_once, init_once);
  crc = ~crc;
#if defined(__x86_64__)
  if( have_sse42 ) return ~crc_hw(crc, p, n);
#endif
  return ~crc_soft(crc, p, n);
}
