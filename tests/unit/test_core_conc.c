/*
** Tests of the engine under threads: readers during compactions (manual and
** automatic) never see a segment table being changed under them, and
** readers and writers both make progress however many of the other side
** keep the engine busy.
**
** The progress tests print what they measured (operations done, median and
** worst latency) but pass or fail only on "finished at all within 30 s":
** the machine running them may be loaded, and a latency threshold would
** make them flaky.  On an engine whose lock lets one side starve the other,
** the starved side does not finish in 30 s.
*/
#include "engine_check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_LIMIT_S 30      /* "finishes at all" */

static double now_s(void){
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec/1e9;
}

static int cmp_double(const void *a, const void *b){
  double x = *(const double*)a, y = *(const double*)b;
  return x<y ? -1 : x>y;
}

/* Median and worst of n latencies (sorts them). */
static void report(const char *what, double *lat, int n){
  if( n==0 ){
    print_message("%s: none finished\n", what);
    return;
  }
  qsort(lat, (size_t)n, sizeof *lat, cmp_double);
  print_message("%s: %d done, median %.2f ms, worst %.2f ms\n", what, n,
                lat[n/2]*1e3, lat[n-1]*1e3);
}

/* ------------------------------------------ Reads during compactions. */

#define RACE_KEYS 400
#define RACE_VLEN 100

typedef struct race_reader {
  tkv_db *db;
  atomic_int stop;
  atomic_long reads;
  atomic_long errors;
  char why[256];
} race_reader;

static void race_value(char *v, int i){
  memset(v, 'a' + i%26, RACE_VLEN);
}

/* Read random keys until told to stop; every key must be there with its
** value. */
static void *race_read(void *arg){
  race_reader *r = arg;
  uint64_t s = 7;
  while( !atomic_load(&r->stop) ){
    char key[32], want[RACE_VLEN];
    void *v = NULL;
    size_t n = 0;
    int i = (int)(tu_rand(&s) % RACE_KEYS), rc;
    snprintf(key, sizeof key, "key%05d", i);
    race_value(want, i);
    rc = tkv_get(r->db, key, strlen(key), &v, &n);
    if( rc || n!=RACE_VLEN || memcmp(v, want, RACE_VLEN) ){
      if( atomic_fetch_add(&r->errors, 1)==0 ){
        snprintf(r->why, sizeof r->why, "%s: rc=%d %s", key, rc,
                 rc ? tkv_errmsg() : "wrong value");
      }
    }
    tkv_free(v);
    atomic_fetch_add(&r->reads, 1);
  }
  return NULL;
}

/* Fill a store with small segments: enough of them that a compaction must
** grow the segment table (old segments plus outputs pass its first
** allocation). */
static void race_fill(tkv_db *db){
  for(int i=0; i<RACE_KEYS; i++){
    char key[32], val[RACE_VLEN];
    snprintf(key, sizeof key, "key%05d", i);
    race_value(val, i);
    assert_ok(tkv_put(db, key, strlen(key), val, RACE_VLEN));
  }
  assert_true(stats_of(db).files>=10);
}

static void race_start(race_reader *r, pthread_t *th, const char *dir){
  memset(r, 0, sizeof *r);
  assert_ok(tkv_open(dir, NULL, &r->db));
  assert_int_equal(pthread_create(th, NULL, race_read, r), 0);
  /* Let the reader get going. */
  while( atomic_load(&r->reads)<10 ) usleep(100);
}

static void race_stop(race_reader *r, pthread_t th){
  atomic_store(&r->stop, 1);
  assert_int_equal(pthread_join(th, NULL), 0);
  close_ok(r->db);
  if( atomic_load(&r->errors) ){
    fail_msg("%ld failed reads, first: %s", atomic_load(&r->errors), r->why);
  }
}

/* tkv_compact on one handle while another reads: the compaction grows the
** segment table, which the reader walks.  Before the fix this was a
** use-after-free (AddressSanitizer at once; SIGSEGV in optimized builds). */
static void test_reads_during_compaction(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 4096, UINT64_MAX);
  long reads = 0;
  for(int it=0; it<20; it++){
    race_reader r;
    pthread_t th;
    tkv_db *db;
    tu_rmrf(f->dir);
    db = open_with(f->dir, &o);
    race_fill(db);
    race_start(&r, &th, f->dir);
    assert_ok(tkv_compact(db, NULL));
    reads += atomic_load(&r.reads);
    race_stop(&r, th);
    close_ok(db);
  }
  print_message("reads during 20 compactions: %ld\n", reads);
}

/* The same with the automatic (background) merges that commits start. */
static void test_reads_during_auto_compaction(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 4096, UINT64_MAX);
  tkv_options auto_o = store_options(TKV_SYNC_NORMAL, 4096, 30000);
  for(int it=0; it<10; it++){
    race_reader r;
    pthread_t th;
    tkv_db *db;
    uint64_t before;
    int i;
    tu_rmrf(f->dir);
    db = open_with(f->dir, &o);
    race_fill(db);
    reopen_with(&db, f->dir, &auto_o);
    before = stats_of(db).compactions;
    race_start(&r, &th, f->dir);
    for(i=0; i<RACE_KEYS && stats_of(db).compactions==before; i++){
      char key[32], val[RACE_VLEN];
      snprintf(key, sizeof key, "key%05d", i);
      race_value(val, i);
      assert_ok(tkv_put(db, key, strlen(key), val, RACE_VLEN));
    }
    tkv_test_merge_wait(db);      /* merges run in the background */
    race_stop(&r, th);
    assert_true(stats_of(db).compactions>before);
    close_ok(db);
  }
}

/* -------------------------------------- Scans during writes and merges.
**
** A cursor reads ahead of itself (store.c, CURSOR_AHEAD): a scout iterator
** touches entries and records some rows in front.  A scanner on its own
** handle walks the whole store again and again while this thread
** overwrites, deletes, writes transactions bigger than a segment and
** merges, so the scout keeps meeting entries that changed, moved or went.
** Every scan must see the keys nobody touches, in order, and each key it
** sees with a value of that key.
*/

#define SCAN_STABLE 300          /* "s%05d": written once, never touched */
#define SCAN_CHURN 600           /* "c%05d": overwritten and deleted */

typedef struct scanner {
  tkv_db *db;
  atomic_int stop;
  atomic_long scans;
  atomic_int failed;
  char why[256];
} scanner;

static void scan_fail(scanner *sc, const char *fmt, const char *key, int rc){
  if( atomic_exchange(&sc->failed, 1)==0 ){
    snprintf(sc->why, sizeof sc->why, fmt, key, rc,
             rc ? tkv_errmsg() : "");
  }
}

/* The value of key at version v: the key, '=', the version, padding. */
static size_t scan_value(char *out, size_t cap, const char *key, unsigned v){
  int n = snprintf(out, cap, "%s=%u;", key, v);
  size_t len = (size_t)n + (v % 7) * 20;
  memset(out + n, 'x', len - (size_t)n);
  return len;
}

static void *scan_loop(void *arg){
  scanner *sc = arg;
  while( !atomic_load(&sc->stop) && !atomic_load(&sc->failed) ){
    tkv_cursor *c;
    char prev[64] = "", key[64];
    unsigned stable = 0;
    int rc = tkv_cursor_open(sc->db, &c);
    if( !rc ) rc = tkv_cursor_seek(c, NULL, 0);
    while( !rc && tkv_cursor_valid(c) ){
      const void *k;
      size_t kl, vl;
      void *v;
      tkv_cursor_key(c, &k, &kl);
      if( kl==0 || kl>=sizeof key ){
        scan_fail(sc, "a key of a bad length (%s, rc=%d %s)", "", 0);
        break;
      }
      memcpy(key, k, kl);
      key[kl] = 0;
      if( strcmp(prev, key)>=0 ){
        scan_fail(sc, "key %s out of order (rc=%d %s)", key, 0);
        break;
      }
      memcpy(prev, key, kl + 1);
      if( key[0]=='s' ) stable++;
      rc = tkv_cursor_value(c, &v, &vl);
      if( rc==TKV_NOTFOUND ){            /* deleted since the step: fine */
        rc = tkv_cursor_next(c);
        continue;
      }
      if( rc ){
        scan_fail(sc, "value of %s: rc=%d %s", key, rc);
        break;
      }
      if( vl<=kl || memcmp(v, key, kl) || ((char*)v)[kl]!='=' ){
        scan_fail(sc, "%s has another key's value (rc=%d %s)", key, 0);
      }
      tkv_free(v);
      rc = tkv_cursor_next(c);
    }
    if( rc && !atomic_load(&sc->failed) ) scan_fail(sc, "scan at %s: rc=%d %s",
                                                    prev, rc);
    if( !rc && !atomic_load(&sc->failed) && stable!=SCAN_STABLE ){
      char n[32];
      snprintf(n, sizeof n, "%u", stable);
      scan_fail(sc, "a scan saw %s of the untouched keys (rc=%d %s)", n, 0);
    }
    if( c ) tkv_cursor_close(c);
    atomic_fetch_add(&sc->scans, 1);
  }
  return NULL;
}

static void scan_put(tkv_db *db, const char *prefix, int i, unsigned v){
  char key[32], val[256];
  size_t n;
  snprintf(key, sizeof key, "%s%05d", prefix, i);
  n = scan_value(val, sizeof val, key, v);
  assert_ok(tkv_put(db, key, strlen(key), val, n));
}

static void test_scans_during_writes_and_merges(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 8192, 16384);
  tkv_db *db = open_with(f->dir, &o);
  scanner sc;
  pthread_t th;
  uint64_t seed = 11;
  double t0;
  memset(&sc, 0, sizeof sc);
  for(int i=0; i<SCAN_STABLE; i++) scan_put(db, "s", i, 0);
  assert_ok(tkv_open(f->dir, NULL, &sc.db));
  assert_int_equal(pthread_create(&th, NULL, scan_loop, &sc), 0);
  t0 = now_s();
  for(unsigned round=1; round<=60 || atomic_load(&sc.scans)<20; round++){
    int big = round%10==0;
    if( now_s() - t0>PROGRESS_LIMIT_S || atomic_load(&sc.failed) ) break;
    assert_ok(tkv_begin(db));
    for(int j=0; j<(big ? SCAN_CHURN : 40); j++){
      int i = big ? j : (int)(tu_rand(&seed) % SCAN_CHURN);
      char key[32];
      snprintf(key, sizeof key, "c%05d", i);
      if( tu_rand(&seed)%4==0 ){
        int rc = tkv_delete(db, key, strlen(key));
        assert_true(rc==TKV_OK || rc==TKV_NOTFOUND);
      }else{
        scan_put(db, "c", i, round);
      }
    }
    assert_ok(tkv_commit(db));
    if( round%15==0 ) assert_ok(tkv_compact(db, NULL));
  }
  tkv_test_merge_wait(db);
  atomic_store(&sc.stop, 1);
  assert_int_equal(pthread_join(th, NULL), 0);
  close_ok(sc.db);
  print_message("%ld full scans beside the writes, %llu merges\n",
                atomic_load(&sc.scans),
                (unsigned long long)stats_of(db).compactions);
  close_ok(db);
  if( atomic_load(&sc.failed) ) fail_msg("%s", sc.why);
  assert_true(atomic_load(&sc.scans)>=1);
}

/* ------------------------------------------------- Starvation, both ways. */

#define BIG_VLEN (4u << 20)

typedef struct side {
  const char *dir;
  atomic_int stop;            /* the other side is done (or gave up) */
  atomic_long ops;
  atomic_int failed;
  char why[256];
} side;

static void side_fail(side *s, int rc){
  if( atomic_exchange(&s->failed, 1)==0 ){
    snprintf(s->why, sizeof s->why, "rc=%d %s", rc, tkv_errmsg());
  }
}

/* Read the big value again and again, on its own handle. */
static void *big_reader(void *arg){
  side *s = arg;
  tkv_db *db;
  int rc = tkv_open(s->dir, NULL, &db);
  if( rc ){ side_fail(s, rc); return NULL; }
  while( !atomic_load(&s->stop) ){
    void *v = NULL;
    size_t n;
    rc = tkv_get(db, "big", 3, &v, &n);
    if( rc || n!=BIG_VLEN ){ side_fail(s, rc); break; }
    tkv_free(v);
    atomic_fetch_add(&s->ops, 1);
  }
  tkv_close(db);
  return NULL;
}

/* Write small keys again and again, on its own handle (the engine has one
** writer at a time: the others wait for the slot, not for the readers). */
static void *small_writer(void *arg){
  side *s = arg;
  tkv_db *db;
  long i = 0;
  int rc = tkv_open(s->dir, NULL, &db);
  if( rc ){ side_fail(s, rc); return NULL; }
  while( !atomic_load(&s->stop) ){
    char key[32];
    snprintf(key, sizeof key, "w%ld", i++ % 64);
    rc = tkv_put(db, key, strlen(key), "some value", 10);
    if( rc ){ side_fail(s, rc); break; }
    atomic_fetch_add(&s->ops, 1);
  }
  tkv_close(db);
  return NULL;
}

/* The timed side: n operations of one kind, latencies into lat. */
typedef struct timed {
  tkv_db *db;
  int write;                  /* puts of new keys, else gets of "big" */
  int n;
  double *lat;
  atomic_int done;            /* operations finished */
  atomic_int finished;
  int rc;
  char why[256];
} timed;

static void *timed_run(void *arg){
  timed *t = arg;
  for(int i=0; i<t->n; i++){
    char key[32];
    void *v = NULL;
    size_t n;
    double t0 = now_s();
    int rc;
    if( t->write ){
      snprintf(key, sizeof key, "new%d", i);
      rc = tkv_put(t->db, key, strlen(key), "x", 1);
    }else{
      rc = tkv_get(t->db, "big", 3, &v, &n);
      tkv_free(v);
    }
    if( rc ){
      t->rc = rc;
      snprintf(t->why, sizeof t->why, "%s", tkv_errmsg());
      break;
    }
    t->lat[i] = now_s() - t0;
    atomic_store(&t->done, i + 1);
  }
  atomic_store(&t->finished, 1);
  return NULL;
}

/*
** nbusy threads of one kind keep the engine busy; the timed side does
** `n` operations of the other kind.  Fails if the timed side does not
** finish within PROGRESS_LIMIT_S.
*/
static void progress_run(fixture *f, int busy_readers, int nbusy, int n){
  tkv_options o = store_options(TKV_SYNC_NORMAL, 0, UINT64_MAX);
  pthread_t th[16];
  side s;
  timed t;
  tkv_db *db;
  uint8_t *big = calloc(1, BIG_VLEN);
  double start;
  char what[96];
  int done;
  assert_non_null(big);
  assert_true(nbusy<=16);
  db = open_with(f->dir, &o);
  fill_value(big, BIG_VLEN, 1);
  assert_ok(tkv_put(db, "big", 3, big, BIG_VLEN));
  free(big);
  /* A compaction leaves the value in a sealed, mapped segment. */
  assert_ok(tkv_compact(db, NULL));

  memset(&s, 0, sizeof s);
  s.dir = f->dir;
  for(int i=0; i<nbusy; i++){
    assert_int_equal(pthread_create(&th[i], NULL,
                                    busy_readers ? big_reader : small_writer,
                                    &s), 0);
  }
  while( atomic_load(&s.ops)<(long)nbusy && !atomic_load(&s.failed) ){
    usleep(1000);
  }

  memset(&t, 0, sizeof t);
  t.db = db;
  t.write = busy_readers;
  t.n = n;
  t.lat = calloc((size_t)n, sizeof *t.lat);
  assert_non_null(t.lat);
  {
    pthread_t tt;
    assert_int_equal(pthread_create(&tt, NULL, timed_run, &t), 0);
    start = now_s();
    while( !atomic_load(&t.finished) && now_s() - start < PROGRESS_LIMIT_S ){
      usleep(10000);
    }
    done = atomic_load(&t.done);
    /* Stop the busy side: a starved timed side then finishes too. */
    atomic_store(&s.stop, 1);
    for(int i=0; i<nbusy; i++) pthread_join(th[i], NULL);
    pthread_join(tt, NULL);
  }
  snprintf(what, sizeof what, "%d %s while %d %s run", n,
           busy_readers ? "puts" : "gets of 4 MiB", nbusy,
           busy_readers ? "readers of 4 MiB" : "writers");
  report(what, t.lat, done);
  print_message("  (the busy side did %ld operations)\n", atomic_load(&s.ops));
  free(t.lat);
  close_ok(db);
  if( s.failed ) fail_msg("busy side: %s", s.why);
  if( t.rc ) fail_msg("timed side: %s", t.why);
  if( done<n ){
    fail_msg("starved: %d of %d %s finished in %d s", done, n,
             busy_readers ? "puts" : "gets", PROGRESS_LIMIT_S);
  }
}

/* Readers that keep overlapping do not keep a writer out. */
static void test_readers_do_not_starve_writers(void **state){
  progress_run(*state, 1, 4, 20);
}

/* Writers that keep writing do not keep a reader out. */
static void test_writers_do_not_starve_readers(void **state){
  progress_run(*state, 0, 4, 50);
}

/* ------------------------------------- Syncs beside commits (server). */

typedef struct syncer_arg {
  tkv_db *db;
  atomic_int stop;
  atomic_long syncs;
  int rc;
} syncer_arg;

static void *sync_loop(void *p){
  syncer_arg *a = p;
  while( !atomic_load(&a->stop) && a->rc==TKV_OK ){
    a->rc = tkv_sync_concurrent(a->db);
    atomic_fetch_add(&a->syncs, 1);
  }
  return NULL;
}

/*
** tkv_sync_concurrent from one thread while another writes at sync=normal
** through the same handle, transactions and autocommits, across segment
** rotations (small segments) and the merges they start: no call fails,
** and after a sync that began once a commit returned, the commit is
** durable (checked by the engine's own assertions and by a reopen that
** finds every key).
*/
static void test_sync_concurrent_beside_commits(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 8192, 64*1024);
  tkv_db *db = open_with(f->dir, &o);
  syncer_arg a = {.db = db};
  pthread_t th;
  char k[32], v[64];
  assert_int_equal(pthread_create(&th, NULL, sync_loop, &a), 0);
  for(int i=0; i<3000; i++){
    snprintf(k, sizeof k, "k%05d", i % 1000);
    snprintf(v, sizeof v, "value %d", i);
    if( i%3==0 ){
      assert_ok(tkv_begin(db));
      assert_ok(tkv_put(db, k, strlen(k), v, strlen(v)));
      assert_ok(tkv_commit(db));
    }else{
      assert_ok(tkv_put(db, k, strlen(k), v, strlen(v)));
    }
  }
  atomic_store(&a.stop, 1);
  pthread_join(th, NULL);
  if( a.rc ) fail_msg("tkv_sync_concurrent: %s", tkv_strerror(a.rc));
  assert_ok(tkv_sync_concurrent(db));
  print_message("syncs beside 3000 commits: %ld\n", atomic_load(&a.syncs));
  reopen_with(&db, f->dir, &o);
  assert_int_equal(tkv_count(db), 1000);
  for(int i=2000; i<3000; i++){
    void *got;
    size_t n;
    snprintf(k, sizeof k, "k%05d", i % 1000);
    snprintf(v, sizeof v, "value %d", i);
    assert_ok(tkv_get(db, k, strlen(k), &got, &n));
    assert_int_equal(n, strlen(v));
    assert_memory_equal(got, v, n);
    tkv_free(got);
  }
  close_ok(db);
}

int main(void){
  const struct CMUnitTest tests[] = {
    CORE_TEST(test_reads_during_compaction),
    CORE_TEST(test_reads_during_auto_compaction),
    CORE_TEST(test_scans_during_writes_and_merges),
    CORE_TEST(test_readers_do_not_starve_writers),
    CORE_TEST(test_writers_do_not_starve_readers),
    CORE_TEST(test_sync_concurrent_beside_commits),
  };
  return run_core_tests(tests);
}
