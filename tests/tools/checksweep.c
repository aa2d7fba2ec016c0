/*
** tkv_check (tinkvctl check) against the corruption suite's damage.  The
** same store as tests/faults/corrupt.c (sealed segments with hints, a
** compaction's output, an active segment; closed) is damaged copy by copy
** in the same three ways (a byte flipped, the file cut short, bytes
** appended) at the same offsets (every header byte, both ends, every 97th
** byte, random ones; every byte with -a).  The check must flag every
** damaged copy, naming the damaged file (or, for a segment, its hint),
** except for damage that changes no data: the LOCK file (its content is
** informational) and the preallocated zero tail of the newest segment
** (cut there, or zeros appended).  It must also never flag the undamaged
** store.  One damage is undetectable in format 1 and counted apart: the
** newest segment cut exactly between two records, which leaves a store
** that is sound, only older (nothing records how far the data went).
**
**   checksweep [-a] [-n RANDOM] [-s SEED] [-v]
** Prints "checksweep: P passed, F failed".
*/
#include "workload.h"
#include "testutil.h"
#include "format.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NTXN 48

static uint64_t seed;
static int verbose;
static long cases, flagged, harmless, boundary, bad;
static char newest[64];
static long long newest_data_end;
static long long bounds[4096];    /* record boundaries of the newest segment */
static int nbounds;

typedef struct names { int n; int hit; const char *file; char hint[64]; } names;

static void on_problem(void *ctx, const char *file, uint64_t off,
                       const char *what){
  names *nm = ctx;
  const char *base = strrchr(file, '/');
  (void)off; (void)what;
  base = base ? base + 1 : file;
  nm->n++;
  if( !strcmp(base, nm->file) || (nm->hint[0] && !strcmp(base, nm->hint)) ){
    nm->hit = 1;
  }
}

/* Damage that leaves every byte of data as it was. */
static int is_harmless(const char *file, int kind, long long off,
                       const unsigned char *junk, size_t n){
  if( !strcmp(file, "LOCK") ) return 1;
  if( strcmp(file, newest) ) return 0;
  if( kind==1 && off>=newest_data_end ) return 1;
  if( kind==1 ){
    for(int i=0; i<nbounds; i++) if( bounds[i]==off ) return 2;
  }
  if( kind==2 ){
    for(size_t i=0; i<n; i++) if( junk[i] ) return 0;
    return 1;
  }
  return 0;
}

static void check_copy(const char *dir, const char *file, const char *what,
                       int harmless_damage){
  names nm;
  int rc;
  memset(&nm, 0, sizeof nm);
  nm.file = file;
  if( strstr(file, ".seg") ) snprintf(nm.hint, sizeof nm.hint, "%.10s.hint", file);
  cases++;
  rc = tkv_check(dir, on_problem, NULL, &nm, NULL);
  if( harmless_damage==2 ){
    boundary++;
    return;
  }
  if( harmless_damage ){
    harmless++;
    if( rc!=TKV_OK ){
      bad++;
      printf("checksweep: %s %s: flagged damage that changes no data: %s\n",
             file, what, tkv_errmsg());
    }
    return;
  }
  if( rc==TKV_OK ){
    bad++;
    printf("checksweep: %s %s: the check passed a damaged store\n", file, what);
  }else if( rc!=TKV_CORRUPT ){
    bad++;
    printf("checksweep: %s %s: %s: %s\n", file, what, tkv_strerror(rc),
           tkv_errmsg());
  }else if( !nm.hit ){
    bad++;
    printf("checksweep: %s %s: no problem names the file: %s\n", file, what,
           tkv_errmsg());
  }else{
    flagged++;
    if( verbose ) printf("  %s %s: %d problems\n", file, what, nm.n);
  }
}

static void damage(const char *orig, const char *scratch, const char *file,
                   int kind, long long off){
  char what[64], path[4200];
  unsigned char junk[97];
  size_t n = 0;
  tu_rmrf(scratch);
  if( tu_copy_dir(orig, scratch) ){ perror("copy"); exit(2); }
  snprintf(path, sizeof path, "%s/%s", scratch, file);
  if( kind==0 ){
    unsigned char mask = (unsigned char)(1u << (tu_rand(&seed) % 8));
    if( tu_rand(&seed) % 4 == 0 ) mask = (unsigned char)(tu_rand(&seed) | 1);
    tu_flip_byte(path, off, mask);
    snprintf(what, sizeof what, "flip at %lld", off);
  }else if( kind==1 ){
    tu_truncate(path, off);
    snprintf(what, sizeof what, "cut at %lld", off);
  }else{
    n = 1 + (size_t)(tu_rand(&seed) % sizeof junk);
    for(size_t i=0; i<n; i++) junk[i] = (unsigned char)tu_rand(&seed);
    if( tu_rand(&seed) % 3 == 0 ) memset(junk, 0, n);
    tu_append(path, junk, n);
    snprintf(what, sizeof what, "append %zu bytes", n);
  }
  check_copy(scratch, file, what, is_harmless(file, kind, off, junk, n));
}

static void build(const char *dir){
  tkv_options o;
  tkv_db *db;
  int rc;
  tkv_options_init(&o);
  o.sync = TKV_SYNC_NORMAL;
  o.max_file_size = 4096;
  o.compact_threshold = UINT64_MAX;
  o.create = 1;
  rc = tkv_open(dir, &o, &db);
  for(uint32_t n=1; !rc && n<=NTXN; n++){
    rc = wl_run_txn(db, n);
    if( !rc && n==NTXN/2 ) rc = tkv_compact(db, NULL);
  }
  if( !rc ) rc = tkv_close(db);
  if( rc ){ fprintf(stderr, "checksweep: build: %s\n", tkv_errmsg()); exit(2); }
}

/* The newest segment in replay order and where its data ends (its last
** non-zero byte): found from the files, as the store was just built. */
static void find_newest(const char *dir){
  char **segs;
  int n;
  segs = tu_list_files(dir, ".seg", &n);
  /* Segment ids grow; compaction output replays before later appends, so
  ** the highest id written by appends is the newest.  The store was built
  ** by appends after the compaction, so it is the highest id. */
  snprintf(newest, sizeof newest, "%s", segs[n-1]);
  tu_free_names(segs);
  {
    size_t sz;
    unsigned char *p = tu_read_file(tu_path(dir, newest), &sz);
    long long end = (long long)sz;
    long long off = TKV_FILE_HDR;
    while( end>0 && p[end-1]==0 ) end--;
    newest_data_end = end;
    while( off + TKV_REC_HDR <= end && nbounds<4096 ){
      tkv_rec_hdr h;
      int zero;
      bounds[nbounds++] = off;
      if( tkv_rec_hdr_decode(p + off, &h, &zero) ) break;
      off += (long long)tkv_rec_size(h.klen, h.vlen);
    }
    free(p);
  }
}

int main(int argc, char **argv){
  int opt, all = 0;
  long nrand = 40;
  char orig[2048], scratch[2100];
  DIR *d;
  struct dirent *de;
  seed = (uint64_t)time(NULL);
  while( (opt = getopt(argc, argv, "an:s:v"))!=-1 ){
    if( opt=='a' ) all = 1;
    else if( opt=='n' ) nrand = atol(optarg);
    else if( opt=='s' ) seed = strtoull(optarg, NULL, 10);
    else if( opt=='v' ) verbose = 1;
    else{ fprintf(stderr, "usage: checksweep [-a] [-n RANDOM] [-s SEED] [-v]\n"); return 2; }
  }
  printf("checksweep: seed %llu\n", (unsigned long long)seed);
  snprintf(orig, sizeof orig, "%s", tu_tmpdir("checksweep"));
  snprintf(scratch, sizeof scratch, "%s.copy", orig);
  build(orig);
  find_newest(orig);
  if( tkv_check(orig, NULL, NULL, NULL, NULL)!=TKV_OK ){
    printf("checksweep: the undamaged store fails: %s\n", tkv_errmsg());
    bad++;
  }
  d = opendir(orig);
  if( !d ){ perror(orig); return 2; }
  while( (de = readdir(d))!=NULL ){
    char file[256];
    long long size;
    if( de->d_name[0]=='.' ) continue;
    snprintf(file, sizeof file, "%s", de->d_name);
    size = tu_file_size(tu_path(orig, file));
    for(int kind=0; kind<3; kind++){
      if( kind==2 ){
        for(int i=0; i<5; i++) damage(orig, scratch, file, 2, 0);
        continue;
      }
      for(long long off=0; off<size; off++){
        if( !all && off>=48 && off<size-48 && off%97 ) continue;
        damage(orig, scratch, file, kind, off);
      }
      for(long i=0; i<nrand && size>0; i++){
        damage(orig, scratch, file, kind, (long long)(tu_rand(&seed) % (uint64_t)size));
      }
    }
  }
  closedir(d);
  tu_rmrf(scratch);
  tu_rmrf(orig);
  printf("checksweep: %ld damaged copies: %ld flagged, %ld harmless (LOCK, "
         "the zero tail) passed, %ld newest segment cut between records "
         "(undetectable in format 1), %ld bad\n", cases, flagged, harmless,
         boundary, bad);
  printf("checksweep: %d passed, %d failed\n", bad ? 0 : 1, bad ? 1 : 0);
  return bad ? 1 : 0;
}
