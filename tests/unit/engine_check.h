/*
** Helpers of the engine's unit tests (tests/unit/test_core_*.c):
**
**   - a fixture giving every test its own scratch directory, with the
**     store at root/db and room for crash images next to it;
**   - a model: a sorted in-memory map of what a store must hold;
**   - checks of a store against the model (every key through tkv_get, the
**     cursor walk in key order with the value sizes, and tkv_count);
**   - a walk of the records of a segment file, for tests that cut or
**     damage one at a chosen record.
**
** Everything here is static inline so that each test program takes what it
** uses.
*/
#ifndef TKV_ENGINE_CHECK_H
#define TKV_ENGINE_CHECK_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "tinkv.h"
#include "format.h"
#include "io.h"
#include "testhook.h"
#include "testutil.h"

/* ------------------------------------------------------------- Fixture. */

typedef struct fixture {
  char root[4096];     /* scratch directory, removed after the test */
  char dir[4200];      /* the store under test: root/db */
  char copy[4200];     /* root/copy: crash images of the store */
} fixture;

static inline int fixture_setup(void **state){
  fixture *f = calloc(1, sizeof *f);
  if( !f ) return -1;
  snprintf(f->root, sizeof f->root, "%s", tu_tmpdir("core"));
  snprintf(f->dir, sizeof f->dir, "%s/db", f->root);
  snprintf(f->copy, sizeof f->copy, "%s/copy", f->root);
  *state = f;
  return 0;
}

static inline int fixture_teardown(void **state){
  fixture *f = *state;
  tkv_test_set_io_hook(NULL, NULL);
  tkv_test_fail_alloc(0, 0);
  tu_rmrf(f->root);
  free(f);
  return 0;
}

#define CORE_TEST(fn) \
  cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

/* Run the tests, only those matching $TKV_TEST_FILTER (a cmocka pattern,
** e.g. "*compact*") when it is set. */
#define run_core_tests(tests) ( \
    getenv("TKV_TEST_FILTER") \
      ? cmocka_set_test_filter(getenv("TKV_TEST_FILTER")) : (void)0, \
    cmocka_run_group_tests(tests, NULL, NULL))

/* ------------------------------------------------------ Opening stores. */

static inline tkv_options store_options(tkv_sync_mode sync,
                                        uint64_t max_file_size,
                                        uint64_t compact_threshold){
  tkv_options o;
  tkv_options_init(&o);
  o.create = 1;
  o.sync = sync;
  o.max_file_size = max_file_size;
  o.compact_threshold = compact_threshold;
  return o;
}

/* Open (creating) the store at dir, failing the test on error.  Automatic
** compaction is off unless the options say otherwise. */
static inline tkv_db *open_with(const char *dir, const tkv_options *o){
  tkv_db *db = NULL;
  int rc = tkv_open(dir, o, &db);
  if( rc ) fail_msg("tkv_open(%s): %s: %s", dir, tkv_strerror(rc),
                    tkv_errmsg());
  assert_non_null(db);
  return db;
}

static inline tkv_db *open_store(const char *dir){
  tkv_options o = store_options(TKV_SYNC_FULL, 0, UINT64_MAX);
  return open_with(dir, &o);
}

/* Close *pdb and open dir again with the same options. */
static inline void reopen_with(tkv_db **pdb, const char *dir,
                               const tkv_options *o){
  int rc = tkv_close(*pdb);
  *pdb = NULL;
  if( rc ) fail_msg("tkv_close: %s: %s", tkv_strerror(rc), tkv_errmsg());
  *pdb = open_with(dir, o);
}

static inline void close_ok(tkv_db *db){
  int rc = tkv_close(db);
  if( rc ) fail_msg("tkv_close: %s: %s", tkv_strerror(rc), tkv_errmsg());
}

/* Replace dir `to` by a copy of the files of `from`: what a crash at this
** instant would leave on disk, as far as the process wrote it. */
static inline void crash_image(const char *from, const char *to){
  tu_rmrf(to);
  if( tu_copy_dir(from, to) ) fail_msg("cannot copy %s to %s", from, to);
}

/* ---------------------------------------------------------- Key, value. */

/* Keys in bytewise order: memcmp, then the shorter first. */
static inline int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
                          size_t blen){
  size_t n = alen<blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  if( c ) return c;
  return alen<blen ? -1 : alen>blen;
}

/* Deterministic content for a value: bytes 1..255, never 0, so that a cut
** inside a value never looks like preallocated space. */
static inline void fill_value(uint8_t *buf, size_t len, uint64_t seed){
  uint64_t s = seed*0x9e3779b97f4a7c15ull + 1;
  for(size_t i=0; i<len; i++) buf[i] = (uint8_t)(tu_rand(&s) % 255 + 1);
}

/* A printable rendering of a key for messages (static storage). */
static inline const char *key_text(const void *key, size_t klen){
  static char buf[2][120];
  static int which;
  const uint8_t *k = key;
  char *out = buf[which ^= 1];
  size_t o = 0;
  for(size_t i=0; i<klen && o<sizeof buf[0] - 8; i++){
    if( k[i]>=0x20 && k[i]<0x7f && k[i]!='\\' ) out[o++] = (char)k[i];
    else o += (size_t)snprintf(out + o, 8, "\\x%02x", k[i]);
  }
  if( klen>0 && o>=sizeof buf[0] - 8 ) o += (size_t)snprintf(out + o, 8, "...");
  out[o] = 0;
  return out;
}

/* ---------------------------------------------------------------- Model. */

typedef struct model_kv {
  uint8_t *key;
  size_t klen;
  uint8_t *val;
  size_t vlen;
} model_kv;

typedef struct model {
  model_kv *v;        /* sorted by key_cmp */
  size_t n, cap;
} model;

static inline size_t model_lower(const model *m, const void *key,
                                 size_t klen){
  size_t lo = 0, hi = m->n;
  while( lo<hi ){
    size_t mid = (lo + hi)/2;
    if( key_cmp(m->v[mid].key, m->v[mid].klen, key, klen)<0 ) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static inline model_kv *model_get(const model *m, const void *key,
                                  size_t klen){
  size_t i = model_lower(m, key, klen);
  if( i<m->n && key_cmp(m->v[i].key, m->v[i].klen, key, klen)==0 ){
    return &m->v[i];
  }
  return NULL;
}

static inline uint8_t *model_dup(const void *p, size_t n){
  uint8_t *d = malloc(n ? n : 1);
  if( !d ) abort();
  if( n ) memcpy(d, p, n);
  return d;
}

static inline void model_put(model *m, const void *key, size_t klen,
                             const void *val, size_t vlen){
  size_t i = model_lower(m, key, klen);
  if( i<m->n && key_cmp(m->v[i].key, m->v[i].klen, key, klen)==0 ){
    free(m->v[i].val);
  }else{
    if( m->n==m->cap ){
      m->cap = m->cap ? m->cap*2 : 64;
      m->v = realloc(m->v, m->cap * sizeof *m->v);
      if( !m->v ) abort();
    }
    memmove(&m->v[i+1], &m->v[i], (m->n - i) * sizeof *m->v);
    m->n++;
    m->v[i].key = model_dup(key, klen);
    m->v[i].klen = klen;
  }
  m->v[i].val = model_dup(val, vlen);
  m->v[i].vlen = vlen;
}

/* Remove key; nonzero if it was there. */
static inline int model_del(model *m, const void *key, size_t klen){
  size_t i = model_lower(m, key, klen);
  if( i>=m->n || key_cmp(m->v[i].key, m->v[i].klen, key, klen) ) return 0;
  free(m->v[i].key);
  free(m->v[i].val);
  memmove(&m->v[i], &m->v[i+1], (m->n - i - 1) * sizeof *m->v);
  m->n--;
  return 1;
}

static inline void model_clear(model *m){
  for(size_t i=0; i<m->n; i++){
    free(m->v[i].key);
    free(m->v[i].val);
  }
  free(m->v);
  memset(m, 0, sizeof *m);
}

/* dst becomes a copy of src. */
static inline void model_copy(model *dst, const model *src){
  model_clear(dst);
  for(size_t i=0; i<src->n; i++){
    model_put(dst, src->v[i].key, src->v[i].klen, src->v[i].val,
              src->v[i].vlen);
  }
}

/* ------------------------------------------------ Store against model. */

/*
** 0 if db shows exactly the content of m: tkv_count, every key through
** tkv_get (exact value), and a cursor walk giving m's keys in order with
** the right value sizes.  Else -1 and the first difference in why.
*/
static inline int store_diff(tkv_db *db, const model *m, char *why,
                             size_t nwhy){
  tkv_cursor *cur = NULL;
  uint64_t count = tkv_count(db);
  size_t i;
  int rc;
  if( count!=m->n ){
    snprintf(why, nwhy, "tkv_count is %llu, expected %zu",
             (unsigned long long)count, m->n);
    return -1;
  }
  for(i=0; i<m->n; i++){
    void *val = NULL;
    size_t vlen = 0;
    rc = tkv_get(db, m->v[i].key, m->v[i].klen, &val, &vlen);
    if( rc ){
      snprintf(why, nwhy, "tkv_get(%s): %s: %s",
               key_text(m->v[i].key, m->v[i].klen), tkv_strerror(rc),
               tkv_errmsg());
      return -1;
    }
    if( vlen!=m->v[i].vlen || (vlen && memcmp(val, m->v[i].val, vlen)) ){
      snprintf(why, nwhy, "tkv_get(%s): wrong value (%zu bytes, expected "
               "%zu)", key_text(m->v[i].key, m->v[i].klen), vlen,
               m->v[i].vlen);
      tkv_free(val);
      return -1;
    }
    tkv_free(val);
  }
  rc = tkv_cursor_open(db, &cur);
  if( !rc ) rc = tkv_cursor_seek(cur, NULL, 0);
  for(i=0; !rc && tkv_cursor_valid(cur); i++){
    const void *k;
    size_t klen;
    tkv_cursor_key(cur, &k, &klen);
    if( i>=m->n || key_cmp(k, klen, m->v[i].key, m->v[i].klen) ){
      snprintf(why, nwhy, "cursor step %zu gives key %s, expected %s", i,
               key_text(k, klen),
               i<m->n ? key_text(m->v[i].key, m->v[i].klen) : "the end");
      tkv_cursor_close(cur);
      return -1;
    }
    if( tkv_cursor_value_size(cur)!=m->v[i].vlen ){
      snprintf(why, nwhy, "cursor on %s: value size %zu, expected %zu",
               key_text(k, klen), tkv_cursor_value_size(cur), m->v[i].vlen);
      tkv_cursor_close(cur);
      return -1;
    }
    rc = tkv_cursor_next(cur);
  }
  tkv_cursor_close(cur);
  if( rc ){
    snprintf(why, nwhy, "cursor: %s: %s", tkv_strerror(rc), tkv_errmsg());
    return -1;
  }
  if( i!=m->n ){
    snprintf(why, nwhy, "cursor walk ends after %zu keys, expected %zu", i,
             m->n);
    return -1;
  }
  return 0;
}

#define assert_store_is(db, m) do{ \
    char why_[600]; \
    if( store_diff((db), (m), why_, sizeof why_) ) fail_msg("%s", why_); \
  }while(0)

/* ------------------------------------------------------ Short forms. */

#define assert_tkv(rc_expected, call) do{ \
    int rc_ = (call); \
    if( rc_!=(rc_expected) ){ \
      fail_msg("%s gave %s (%s), expected %s", #call, tkv_strerror(rc_), \
               tkv_errmsg(), tkv_strerror(rc_expected)); \
    } \
  }while(0)

#define assert_ok(call) assert_tkv(TKV_OK, call)

/* Put a string key and value, and record it in m (m may be NULL). */
static inline void put_str(tkv_db *db, model *m, const char *key,
                           const char *val){
  assert_ok(tkv_put(db, key, strlen(key), val, strlen(val)));
  if( m ) model_put(m, key, strlen(key), val, strlen(val));
}

static inline void del_str(tkv_db *db, model *m, const char *key){
  assert_ok(tkv_delete(db, key, strlen(key)));
  if( m ) assert_true(model_del(m, key, strlen(key)));
}

/* Assert that key holds exactly val (binary). */
static inline void expect_val(tkv_db *db, const void *key, size_t klen,
                                const void *val, size_t vlen){
  void *got = NULL;
  size_t glen = 12345;
  int rc = tkv_get(db, key, klen, &got, &glen);
  if( rc ) fail_msg("tkv_get(%s): %s: %s", key_text(key, klen),
                    tkv_strerror(rc), tkv_errmsg());
  assert_non_null(got);
  assert_int_equal(glen, vlen);
  if( vlen ) assert_memory_equal(got, val, vlen);
  tkv_free(got);
}

static inline void expect_str(tkv_db *db, const char *key, const char *val){
  expect_val(db, key, strlen(key), val, strlen(val));
}

/* Assert that key holds the value the model has for it. */
static inline void expect_model_key(tkv_db *db, const model *m,
                                    const char *key){
  const model_kv *kv = model_get(m, key, strlen(key));
  if( !kv ) fail_msg("%s is not in the model", key);
  expect_val(db, kv->key, kv->klen, kv->val, kv->vlen);
}

static inline void expect_absent(tkv_db *db, const void *key, size_t klen){
  void *got = NULL;
  size_t glen = 0;
  int rc = tkv_get(db, key, klen, &got, &glen);
  if( rc!=TKV_NOTFOUND ){
    fail_msg("tkv_get(%s) gave %s, expected not found", key_text(key, klen),
             tkv_strerror(rc));
  }
  assert_tkv(TKV_NOTFOUND, tkv_lookup(db, key, klen, NULL, NULL));
}

static inline void expect_absent_str(tkv_db *db, const char *key){
  expect_absent(db, key, strlen(key));
}

static inline tkv_stats stats_of(tkv_db *db){
  tkv_stats st;
  assert_ok(tkv_stats_get(db, &st));
  return st;
}

/* ---------------------------------------------------- Segment records. */

/* Path of the segment with this id in dir (static storage, 2 buffers). */
static inline const char *seg_path(const char *dir, unsigned id,
                                   const char *suffix){
  static char buf[2][4400];
  static int which;
  char *out = buf[which ^= 1];
  int n = snprintf(out, sizeof buf[0], "%s/%010u%s", dir, id, suffix);
  if( n<0 || (size_t)n>=sizeof buf[0] ) fail_msg("path too long: %s", dir);
  return out;
}

/* Id of the newest (highest numbered) segment file of dir, 0 if none. */
static inline unsigned newest_seg(const char *dir){
  int n;
  char **names = tu_list_files(dir, ".seg", &n);
  unsigned id = n ? (unsigned)strtoul(names[n-1], NULL, 10) : 0;
  tu_free_names(names);
  return id;
}

static inline unsigned oldest_seg(const char *dir){
  int n;
  char **names = tu_list_files(dir, ".seg", &n);
  unsigned id = n ? (unsigned)strtoul(names[0], NULL, 10) : 0;
  tu_free_names(names);
  return id;
}

typedef struct seg_rec {
  uint64_t off;       /* offset of the record header in the file */
  uint64_t size;      /* bytes of the whole record */
  int type;           /* TKV_REC_* */
} seg_rec;

/*
** Walk the record headers of a segment file (no checksum checks): from the
** file header to the end, a zero header or a header that does not fit.
** Fills up to max records; returns how many there are; *pend (may be NULL)
** receives where the walk stopped.
*/
static inline int seg_records(const char *path, seg_rec *recs, int max,
                              uint64_t *pend){
  size_t n = 0;
  uint8_t *p = tu_read_file(path, &n);
  uint64_t off;
  int count = 0;
  if( !p ) fail_msg("cannot read %s", path);
  off = n>=TKV_FILE_HDR ? tkv_seg_data_start(tkv_get32(p + 8)) : TKV_FILE_HDR;
  while( off + TKV_REC_HDR <= n ){
    static const uint8_t zero[TKV_REC_HDR];
    uint32_t klen, vlen;
    uint64_t size;
    if( !memcmp(p + off, zero, TKV_REC_HDR) ) break;
    klen = (uint32_t)p[off+5] | ((uint32_t)p[off+6] << 8)
         | ((uint32_t)p[off+7] << 16);
    vlen = tkv_get32(p + off + 8);
    size = tkv_rec_size(klen, vlen);
    if( off + size > n ) break;
    if( count<max ){
      recs[count].off = off;
      recs[count].size = size;
      recs[count].type = p[off+4];
    }
    count++;
    off += size;
  }
  free(p);
  if( pend ) *pend = off;
  return count;
}

/*
** Rewrite the sync area of a (format 2) segment file to say that its bytes
** up to `end` are durable, as it said when only those were synced: a crash
** image of a moment before later syncs.
*/
static inline void seg_set_durable(const char *path, uint64_t end){
  uint8_t area[TKV_SYNC_AREA];
  uint64_t off;
  FILE *fp = fopen(path, "r+b");
  if( !fp ) fail_msg("cannot open %s", path);
  memset(area, 0, sizeof area);
  tkv_sync_slot_encode(area, (uint32_t)end, 2, &off);
  if( fseek(fp, TKV_FILE_HDR, SEEK_SET) || fwrite(area, 1, sizeof area, fp)!=sizeof area ){
    fail_msg("cannot write %s", path);
  }
  fclose(fp);
}

/* ------------------------------------------------------- Fault plans. */

/*
** A file-system fault for tkv_test_set_io_hook: the nth call of operation
** `op` (TKV_IO_*, or 0 for any operation) fails with errno `err`, and with
** `sticky` every matching call after it too.  `then_op`, when set, makes
** every call of that operation fail as well once the first fault fired
** (e.g. a failed sync followed by a failed truncate).
*/
typedef struct fault_plan {
  int op;
  long nth;
  int err;
  int sticky;
  int then_op;
  long calls;          /* matching calls seen */
  int fired;           /* faults injected */
  int first_op;        /* operation of the first fault */
  char path[4400];     /* path of the first fault */
} fault_plan;

static inline int fault_hook(int op, const char *path, void *ctx){
  fault_plan *p = ctx;
  if( p->fired && p->then_op && op==p->then_op ){
    p->fired++;
    return p->err;
  }
  if( p->op && op!=p->op ) return 0;
  p->calls++;
  if( p->calls==p->nth || (p->sticky && p->calls>p->nth) ){
    if( !p->fired ){
      p->first_op = op;
      snprintf(p->path, sizeof p->path, "%s", path);
    }
    p->fired++;
    return p->err;
  }
  return 0;
}

/* Arm plan p: the nth call of op fails with err. */
static inline void fault_arm(fault_plan *p, int op, long nth, int err){
  memset(p, 0, sizeof *p);
  p->op = op;
  p->nth = nth;
  p->err = err;
  tkv_test_set_io_hook(fault_hook, p);
}

/* The file name part of a path. */
static inline const char *base_name(const char *path){
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

static inline void fault_off(void){
  tkv_test_set_io_hook(NULL, NULL);
}

static inline const char *io_op_name(int op){
  static const char *names[] = {
    "any", "open", "read", "write", "sync", "rename", "unlink", "truncate",
    "prealloc", "mkdir", "dirsync", "lock", "rmdir", "mmap",
  };
  return op>=0 && op<(int)(sizeof names/sizeof names[0]) ? names[op] : "?";
}

/* Nonzero if message contains the text s. */
static inline int msg_has(const char *message, const char *s){
  return strstr(message, s)!=NULL;
}

#endif
