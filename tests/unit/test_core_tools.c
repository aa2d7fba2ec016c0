/*
** Tests of the operator's calls: tkv_backup (online, consistent, linked or
** copied, incremental), tkv_check (a sound store passes, live too),
** tkv_salvage (every undamaged record comes back) and tkv_segments.
**
** The writer's workload makes a consistent state recognisable: transaction
** j sets "n" to j and each of the keys k0..k9 to "j:i", except that when
** j % 7 == 0 it deletes k(j % 10) instead.  So a copy whose "n" reads J is
** consistent exactly when every k_i is what transaction J left.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tinkv.h"
#include "testutil.h"

#define NK 10

static tkv_db *open_dir(const char *dir, uint64_t file_size){
  tkv_options o;
  tkv_db *db = NULL;
  tkv_options_init(&o);
  o.create = 1;
  o.sync = TKV_SYNC_OFF;
  o.max_file_size = file_size;
  o.compact_threshold = UINT64_MAX;
  if( tkv_open(dir, &o, &db) ) fail_msg("open %s: %s", dir, tkv_errmsg());
  return db;
}

/* Transaction j of the workload. */
static int write_txn(tkv_db *db, uint32_t j){
  char k[16], v[64];
  int rc = tkv_begin(db);
  for(int i=0; !rc && i<NK; i++){
    snprintf(k, sizeof k, "k%d", i);
    if( j%7==0 && i==(int)(j%10) ){
      rc = tkv_delete(db, k, strlen(k));
      if( rc==TKV_NOTFOUND ) rc = TKV_OK;
    }else{
      int n = snprintf(v, sizeof v, "%u:%d:%040u", j, i, j);
      rc = tkv_put(db, k, strlen(k), v, (size_t)n);
    }
  }
  snprintf(v, sizeof v, "%u", j);
  if( !rc ) rc = tkv_put(db, "n", 1, v, strlen(v));
  if( !rc ) rc = tkv_commit(db);
  else tkv_rollback(db);
  return rc;
}

/* The store in dir is the state after some transaction J: return J. */
static uint32_t verify_state(const char *dir){
  tkv_db *db;
  void *v = NULL;
  size_t n = 0;
  uint32_t j;
  char buf[32], k[16], want[64];
  int rc = tkv_open(dir, NULL, &db);
  if( rc ) fail_msg("restore %s: %s", dir, tkv_errmsg());
  rc = tkv_get(db, "n", 1, &v, &n);
  if( rc==TKV_NOTFOUND ){ tkv_close(db); return 0; }
  assert_int_equal(rc, TKV_OK);
  snprintf(buf, sizeof buf, "%.*s", (int)n, (char*)v);
  tkv_free(v);
  j = (uint32_t)strtoul(buf, NULL, 10);
  for(int i=0; i<NK; i++){
    snprintf(k, sizeof k, "k%d", i);
    v = NULL;
    rc = tkv_get(db, k, strlen(k), &v, &n);
    if( j%7==0 && i==(int)(j%10) ){
      if( rc!=TKV_NOTFOUND ) fail_msg("%s: k%d should be deleted at n=%u", dir, i, j);
    }else{
      int wn = snprintf(want, sizeof want, "%u:%d:%040u", j, i, j);
      if( rc ) fail_msg("%s: k%d missing at n=%u: %s", dir, i, j, tkv_errmsg());
      if( n!=(size_t)wn || memcmp(v, want, n) ){
        fail_msg("%s: k%d = %.*s, not of transaction %u", dir, i, (int)n,
                 (char*)v, j);
      }
    }
    tkv_free(v);
  }
  assert_int_equal(tkv_count(db), NK + 1 - (j%7==0));
  assert_int_equal(tkv_close(db), TKV_OK);
  return j;
}

typedef struct worker {
  tkv_db *db;
  _Atomic int stop;
  _Atomic uint32_t done;     /* last transaction committed */
  int compact;               /* this worker compacts instead of writing */
  int rc;
} worker;

static void *writer_main(void *p){
  worker *w = p;
  for(uint32_t j=1; !atomic_load(&w->stop); j++){
    w->rc = write_txn(w->db, j);
    if( w->rc ) break;
    atomic_store(&w->done, j);
  }
  return NULL;
}

static void *compactor_main(void *p){
  worker *w = p;
  while( !atomic_load(&w->stop) ){
    int rc = tkv_compact(w->db, NULL);
    if( rc && rc!=TKV_BUSY ){ w->rc = rc; break; }
    usleep(2000);
  }
  return NULL;
}

static void problem_fail(void *ctx, const char *file, uint64_t off,
                         const char *what){
  (void)ctx;
  fail_msg("check: %s at offset %llu: %s", file, (unsigned long long)off, what);
}

/* Backups taken while one thread writes and another compacts (deleting
** segments) restore to a consistent state, each later than the last; the
** restored copies pass tkv_check; the live store passes tkv_check_db. */
static void test_backup_under_writer(void **state){
  char dir[4096], bk[4200];
  worker w, c;
  pthread_t tw, tc;
  uint32_t last = 0;
  tkv_db *db, *db2;
  (void)state;
  snprintf(dir, sizeof dir, "%s", tu_tmpdir("backup"));
  db = open_dir(tu_path(dir, "kv"), 4096);
  assert_int_equal(tkv_open(tu_path(dir, "kv"), NULL, &db2), TKV_OK);
  memset(&w, 0, sizeof w);
  memset(&c, 0, sizeof c);
  w.db = db;
  c.db = db2;
  assert_int_equal(pthread_create(&tw, NULL, writer_main, &w), 0);
  assert_int_equal(pthread_create(&tc, NULL, compactor_main, &c), 0);
  for(int b=0; b<12; b++){
    tkv_backup_report rep;
    tkv_check_report crep;
    uint32_t before = atomic_load(&w.done), got;
    snprintf(bk, sizeof bk, "%s/bk%d", dir, b);
    usleep(20000);
    assert_int_equal(tkv_backup(db2, bk, 0, NULL, NULL, &rep), TKV_OK);
    assert_true(rep.files>0);
    assert_int_equal(rep.linked + rep.copied, rep.files);
    assert_int_equal(tkv_check_db(db2, problem_fail, NULL, NULL, &crep),
                     TKV_OK);
    assert_int_equal(tkv_check(bk, problem_fail, NULL, NULL, &crep), TKV_OK);
    got = verify_state(bk);
    assert_true(got>=before);
    assert_true(got>=last);
    last = got;
  }
  atomic_store(&w.stop, 1);
  atomic_store(&c.stop, 1);
  pthread_join(tw, NULL);
  pthread_join(tc, NULL);
  assert_int_equal(w.rc, TKV_OK);
  assert_int_equal(c.rc, TKV_OK);
  assert_true(last>0);
  assert_int_equal(tkv_close(db2), TKV_OK);
  assert_int_equal(tkv_close(db), TKV_OK);
  tu_rmrf(dir);
}

/* An incremental backup keeps the files the target has, adds the new
** ones, drops the ones compaction removed, and restores to the current
** state; a second target directory is refused unless empty. */
static void test_incremental_backup(void **state){
  char dir[4096], bk[4200];
  tkv_backup_report r1, r2, r3;
  tkv_db *db;
  uint32_t j = 1;
  (void)state;
  snprintf(dir, sizeof dir, "%s", tu_tmpdir("incr"));
  snprintf(bk, sizeof bk, "%s/bk", dir);
  db = open_dir(tu_path(dir, "kv"), 4096);
  for(; j<=60; j++) assert_int_equal(write_txn(db, j), TKV_OK);
  assert_int_equal(tkv_backup(db, bk, 0, NULL, NULL, &r1), TKV_OK);
  assert_int_equal(verify_state(bk), 60);
  /* Without the flag, a target that holds a backup is refused. */
  assert_int_equal(tkv_backup(db, bk, 0, NULL, NULL, NULL), TKV_INVALID);
  assert_non_null(strstr(tkv_errmsg(), "not empty"));
  /* The store itself is never a target. */
  assert_int_equal(tkv_backup(db, tu_path(dir, "kv"), TKV_BACKUP_INCREMENTAL,
                              NULL, NULL, NULL), TKV_INVALID);
  for(; j<=90; j++) assert_int_equal(write_txn(db, j), TKV_OK);
  assert_int_equal(tkv_backup(db, bk, TKV_BACKUP_INCREMENTAL, NULL, NULL, &r2),
                   TKV_OK);
  assert_true(r2.kept>0);                     /* the sealed segments */
  assert_true(r2.bytes_copied < r1.bytes_copied + 100000);
  assert_int_equal(verify_state(bk), 90);
  /* After a compaction the old segments leave the backup too. */
  for(; j<=100; j++) assert_int_equal(write_txn(db, j), TKV_OK);
  assert_int_equal(tkv_compact(db, NULL), TKV_OK);
  assert_int_equal(tkv_backup(db, bk, TKV_BACKUP_INCREMENTAL, NULL, NULL, &r3),
                   TKV_OK);
  assert_true(r3.removed>0);
  assert_int_equal(verify_state(bk), 100);
  assert_int_equal(tkv_check(bk, problem_fail, NULL, NULL, NULL), TKV_OK);
  {
    /* The backup holds no file the store does not (LOCK aside). */
    int nstore = tu_count_files(tu_path(dir, "kv"), ".seg");
    assert_int_equal(tu_count_files(bk, ".seg"), nstore);
  }
  /* A target holding someone else's file is left alone. */
  {
    char other[4300];
    snprintf(other, sizeof other, "%s/other", dir);
    mkdir(other, 0755);
    assert_int_equal(tu_write_file(tu_path(other, "notes.txt"), "x", 1), 0);
    assert_int_equal(tkv_backup(db, other, TKV_BACKUP_INCREMENTAL, NULL, NULL,
                                NULL), TKV_INVALID);
    assert_true(tu_exists(tu_path(other, "notes.txt")));
  }
  assert_int_equal(tkv_close(db), TKV_OK);
  tu_rmrf(dir);
}

/* A record-per-key store: keys "s000".."s199", each written twice (the
** second value is the live one) in separate PUT records. */
static void write_single(tkv_db *db){
  char k[16], v[64];
  for(int round=0; round<2; round++){
    for(int i=0; i<200; i++){
      int n;
      snprintf(k, sizeof k, "s%03d", i);
      n = snprintf(v, sizeof v, "round%d-value-%03d", round, i);
      assert_int_equal(tkv_put(db, k, strlen(k), v, (size_t)n), TKV_OK);
    }
  }
}

/* Offset of record i of write_single: records of 32 bytes after the
** segment header and its sync area (format 2). */
#define REC_AT(i) (64 + (i)*32)

typedef struct seen { int n; char file[4200]; uint64_t off; } seen;
static void problem_note(void *ctx, const char *file, uint64_t off,
                         const char *what){
  seen *s = ctx;
  (void)what;
  if( s->n++==0 ){
    snprintf(s->file, sizeof s->file, "%s", file);
    s->off = off;
  }
}

/* Salvage copies every undamaged record: with one value byte flipped in the
** middle of a segment, every key but the damaged one keeps its last value,
** the damaged one falls back to its older value, and the damage is reported
** with its file and offset.  tkv_check flags the same damage. */
static void test_salvage_recovers_undamaged(void **state){
  char dir[4096], seg[4300], out[4300];
  tkv_db *db;
  seen s;
  tkv_salvage_report rep;
  long long size;
  (void)state;
  snprintf(dir, sizeof dir, "%s", tu_tmpdir("salvage"));
  db = open_dir(tu_path(dir, "kv"), 1u << 20);
  write_single(db);
  assert_int_equal(tkv_close(db), TKV_OK);
  snprintf(seg, sizeof seg, "%s/kv/0000000001.seg", dir);
  size = tu_file_size(seg);
  assert_true(size>4000);
  /* Record 300 of 400 (the second-round value of s100): after the 64-byte
  ** header and sync area, records of 12 + 4 + 16 bytes; flip a byte of its
  ** value. */
  assert_int_equal(tu_flip_byte(seg, REC_AT(300) + 12 + 4 + 3, 0x10), 0);
  memset(&s, 0, sizeof s);
  assert_int_equal(tkv_check(tu_path(dir, "kv"), problem_note, NULL, &s, NULL),
                   TKV_CORRUPT);
  assert_true(s.n>=1);
  assert_non_null(strstr(s.file, "0000000001.seg"));
  assert_int_equal(s.off, REC_AT(300));
  memset(&s, 0, sizeof s);
  snprintf(out, sizeof out, "%s/saved", dir);
  assert_int_equal(tkv_salvage(tu_path(dir, "kv"), out, problem_note, NULL, &s,
                               &rep), TKV_OK);
  assert_int_equal(rep.damaged, 1);
  assert_int_equal(s.off, REC_AT(300));
  assert_int_equal(rep.records, 399);
  assert_int_equal(rep.keys, 200);
  db = open_dir(out, 0);
  for(int i=0; i<200; i++){
    char k[16], want[64];
    void *v;
    size_t n;
    int wn;
    snprintf(k, sizeof k, "s%03d", i);
    wn = snprintf(want, sizeof want, "round%d-value-%03d", i==100 ? 0 : 1, i);
    assert_int_equal(tkv_get(db, k, strlen(k), &v, &n), TKV_OK);
    assert_int_equal(n, (size_t)wn);
    assert_memory_equal(v, want, n);
    tkv_free(v);
  }
  assert_int_equal(tkv_close(db), TKV_OK);
  /* The source was only read: it still fails the same way. */
  assert_int_equal(tkv_check(tu_path(dir, "kv"), NULL, NULL, NULL, NULL),
                   TKV_CORRUPT);
  /* A salvage never writes into an existing store. */
  assert_int_equal(tkv_salvage(tu_path(dir, "kv"), out, NULL, NULL, NULL, NULL),
                   TKV_INVALID);
  tu_rmrf(dir);
}

/* tkv_check refuses a store another handle has open (the LOCK) and says
** where to check it; tkv_segments adds up to the stats. */
static void test_check_locked_and_segments(void **state){
  char dir[4096];
  tkv_db *db;
  tkv_segment_info *a;
  tkv_stats st;
  uint64_t live = 0;
  int n;
  (void)state;
  snprintf(dir, sizeof dir, "%s", tu_tmpdir("segs"));
  db = open_dir(tu_path(dir, "kv"), 4096);
  for(uint32_t j=1; j<=40; j++) assert_int_equal(write_txn(db, j), TKV_OK);
  assert_int_equal(tkv_check(tu_path(dir, "kv"), NULL, NULL, NULL, NULL),
                   TKV_LOCKED);
  assert_non_null(strstr(tkv_errmsg(), "tinkv_check"));
  assert_int_equal(tkv_segments(db, &a, &n), TKV_OK);
  assert_int_equal(tkv_stats_get(db, &st), TKV_OK);
  assert_int_equal((uint64_t)n, st.files);
  for(int i=0; i<n; i++){
    assert_true(a[i].live_bytes<=a[i].bytes);
    live += a[i].live_bytes;
  }
  assert_int_equal(live, st.live_bytes);
  assert_int_equal(a[n-1].active, 1);
  tkv_free(a);
  assert_int_equal(tkv_close(db), TKV_OK);
  assert_int_equal(tkv_check(tu_path(dir, "kv"), problem_fail, NULL, NULL, NULL),
                   TKV_OK);
  tu_rmrf(dir);
}

/* The stats JSON (one writer for SQL and REST) has every field, and counts
** checks and backups with their durations. */
static void test_stats_json(void **state){
  static const char *const azField[] = {
    "keys", "live_bytes", "stale_bytes", "files", "disk_bytes",
    "compactions", "last_reclaimed", "keydir_bytes", "compact_threshold",
    "checks", "last_check_usec", "backups", "last_backup_usec",
    "last_compact_rc", "last_compact_status", "path",
  };
  char dir[4096], bk[4200], *json, want[64];
  tkv_db *db;
  tkv_stats st;
  (void)state;
  snprintf(dir, sizeof dir, "%s", tu_tmpdir("stats"));
  snprintf(bk, sizeof bk, "%s/bk", dir);
  db = open_dir(tu_path(dir, "kv"), 4096);
  for(uint32_t j=1; j<=30; j++) assert_int_equal(write_txn(db, j), TKV_OK);
  assert_int_equal(tkv_check_db(db, problem_fail, NULL, NULL, NULL), TKV_OK);
  assert_int_equal(tkv_check_db(db, problem_fail, NULL, NULL, NULL), TKV_OK);
  assert_int_equal(tkv_backup(db, bk, 0, NULL, NULL, NULL), TKV_OK);
  assert_int_equal(tkv_stats_get(db, &st), TKV_OK);
  assert_int_equal(st.checks, 2);
  assert_int_equal(st.backups, 1);
  assert_true(st.last_backup_usec>0);
  assert_int_equal(tkv_stats_json(db, "shown/path", &json), TKV_OK);
  assert_true(json[0]=='{' && json[strlen(json)-1]=='}');
  for(size_t i=0; i<sizeof(azField)/sizeof(azField[0]); i++){
    snprintf(want, sizeof want, "\"%s\":", azField[i]);
    if( !strstr(json, want) ) fail_msg("no %s in %s", azField[i], json);
  }
  assert_non_null(strstr(json, "\"checks\":2,"));
  assert_non_null(strstr(json, "\"path\":\"shown/path\"}"));
  tkv_free(json);
  assert_int_equal(tkv_close(db), TKV_OK);
  tu_rmrf(dir);
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_stats_json),
    cmocka_unit_test(test_backup_under_writer),
    cmocka_unit_test(test_incremental_backup),
    cmocka_unit_test(test_salvage_recovers_undamaged),
    cmocka_unit_test(test_check_locked_and_segments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
