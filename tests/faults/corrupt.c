/*
** Corruption sweep.  A store is built (segments sealed with hint files, a
** compaction's output, an active segment), closed, and then for every file
** of it (segments, hints, TINKV, LOCK) copies are damaged in three ways:
** a byte flipped, the file cut short, garbage appended, at chosen offsets
** (every header byte, the first and last bytes) and at random ones (or at
** every offset with -a).  Each copy must then either open, or fail with
** TKV_CORRUPT (TKV_NOTSTORE for the identity file) and a message naming
** the file and the offset.  When it opens, every read either returns a
** value that was written to that key, or fails with TKV_CORRUPT naming the
** file and the offset: never a value that was not written.  Damage to a
** hint file or to LOCK must not lose anything at all.
**
**   corrupt [-a] [-n RANDOM] [-s SEED] [-v]
**
** Prints the cases tried and "corrupt: P passed, F failed".
*/
#include "workload.h"
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NTXN 48

static uint64_t seed;
static int verbose;
static long cases, opened, refused, read_errors, bad;
static wl_model final_state;

/* Is (key i, value v) a value some transaction wrote to key i? */
static int was_written(int key, const void *v, size_t vlen){
  char buf[32];
  const char *p = v;
  unsigned n;
  int i;
  wl_op ops[WL_MAXOPS];
  size_t k = vlen < sizeof buf - 1 ? vlen : sizeof buf - 1;
  memcpy(buf, p, k);
  buf[k] = 0;
  if( sscanf(buf, "v%u.%d:", &n, &i)!=2 || n==0 || n>NTXN || i<0 ) return 0;
  if( i>=wl_txn(n, ops) ) return 0;
  return ops[i].key==key && !ops[i].del && ops[i].vlen==vlen
      && memcmp(ops[i].val, v, vlen)==0;
}

/* Does msg name the damaged file and an offset? */
static int names_place(const char *msg, const char *file){
  return strstr(msg, file) && strstr(msg, "offset");
}

/* Open the damaged copy and check it (see the header). */
static void check_copy(const char *dir, const char *file, const char *what){
  tkv_options o;
  tkv_db *db;
  int rc, strict;
  char why[1200] = "";
  tkv_options_init(&o);
  cases++;
  strict = strstr(file, ".hint") || !strcmp(file, "LOCK");
  rc = tkv_open(dir, &o, &db);
  if( rc ){
    refused++;
    if( strict || !((rc==TKV_CORRUPT && names_place(tkv_errmsg(), file))
                    || (rc==TKV_NOTSTORE && !strcmp(file, "TINKV"))) ){
      snprintf(why, sizeof why, "open: %s: %s", tkv_strerror(rc), tkv_errmsg());
    }
  }else{
    opened++;
    for(int i=0; i<WL_NKEYS && !why[0]; i++){
      char key[8];
      void *v = NULL;
      size_t vlen = 0;
      wl_key(i, key);
      rc = tkv_get(db, key, strlen(key), &v, &vlen);
      if( rc==TKV_OK ){
        if( !was_written(i, v, vlen) ){
          snprintf(why, sizeof why, "key %s: a value that was never written",
                   key);
        }else if( strict && (!final_state.val[i] || vlen!=final_state.vlen[i]
                  || memcmp(v, final_state.val[i], vlen)) ){
          snprintf(why, sizeof why, "key %s: not its last value", key);
        }
      }else if( rc==TKV_CORRUPT && !strict ){
        read_errors++;
        if( !strstr(tkv_errmsg(), "offset") || !strstr(tkv_errmsg(), ".seg") ){
          snprintf(why, sizeof why, "read %s: unclear error: %s", key,
                   tkv_errmsg());
        }
      }else if( rc!=TKV_NOTFOUND || (strict && final_state.val[i]) ){
        snprintf(why, sizeof why, "read %s: %s: %s", key, tkv_strerror(rc),
                 tkv_errmsg());
      }
      tkv_free(v);
    }
    /* The store still takes writes, unless reads found damage. */
    if( !why[0] && tkv_put(db, "__probe", 7, "x", 1) ){
      rc = tkv_errmsg()[0] ? TKV_OK : TKV_MISUSE;
      if( rc ) snprintf(why, sizeof why, "write: no message");
    }
    tkv_close(db);
  }
  if( why[0] ){
    bad++;
    printf("corrupt: %s %s: %s\n", file, what, why);
  }else if( verbose ){
    printf("  %s %s: %s\n", file, what, rc ? "refused" : "opened");
  }
}

/* Apply one kind of damage (0 flip, 1 cut, 2 append) at off to a copy. */
static void damage(const char *orig, const char *scratch, const char *file,
                   int kind, long long off){
  char what[64], path[4200];
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
    unsigned char junk[97];
    size_t n = 1 + (size_t)(tu_rand(&seed) % sizeof junk);
    for(size_t i=0; i<n; i++) junk[i] = (unsigned char)tu_rand(&seed);
    if( tu_rand(&seed) % 3 == 0 ) memset(junk, 0, n);
    tu_append(path, junk, n);
    snprintf(what, sizeof what, "append %zu bytes", n);
  }
  check_copy(scratch, file, what);
}

/* Build the store: commits, compactions, more commits; closed. */
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
  if( rc ){ fprintf(stderr, "corrupt: build: %s\n", tkv_errmsg()); exit(2); }
  wl_model_to(&final_state, NTXN);
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
    else{ fprintf(stderr, "usage: corrupt [-a] [-n RANDOM] [-s SEED] [-v]\n"); return 2; }
  }
  printf("corrupt: seed %llu\n", (unsigned long long)seed);
  snprintf(orig, sizeof orig, "%s", tu_tmpdir("corrupt"));
  snprintf(scratch, sizeof scratch, "%s.copy", orig);
  build(orig);
  d = opendir(orig);
  if( !d ){ perror(orig); return 2; }
  while( (de = readdir(d))!=NULL ){
    char file[256];
    long long size;
    if( de->d_name[0]=='.' ) continue;
    snprintf(file, sizeof file, "%s", de->d_name);
    size = tu_file_size(tu_path(orig, file));
    for(int kind=0; kind<3; kind++){
      long long limit = kind==2 ? 1 : size;
      if( kind==2 ){
        for(int i=0; i<5; i++) damage(orig, scratch, file, 2, 0);
        continue;
      }
      for(long long off=0; off<limit; off++){
        /* Headers, both ends, every 97th byte; or every byte with -a. */
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
  wl_model_clear(&final_state);
  printf("corrupt: %ld damaged copies: %ld opened, %ld refused with a clear "
         "error, %ld reads refused as corrupt, %ld bad\n", cases, opened,
         refused, read_errors, bad);
  printf("corrupt: %d passed, %d failed\n", bad ? 0 : 1, bad ? 1 : 0);
  return bad ? 1 : 0;
}
