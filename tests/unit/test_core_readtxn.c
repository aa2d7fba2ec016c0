/*
** Tests of read transactions (core/readtxn.c, tkv_read_begin): a handle's
** view that does not change while other handles of the process, and other
** processes, commit, delete, write keys again and merge.  Each test keeps
** a model of the store as the read transaction began and checks every
** way of reading against it (tkv_count, tkv_get, a cursor walk, ids).
*/
#include "engine_check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#define NKEYS 2000

static tkv_options rtx_options(void){
  /* Small segments and no automatic merge: the tests merge when they say. */
  return store_options(TKV_SYNC_NORMAL, 32768, UINT64_MAX);
}

static void key_of(char *buf, size_t n, int i){
  snprintf(buf, n, "key-%05d", i);
}

/* Put keys [0, n) with values "v<round>-<i>". */
static void fill(tkv_db *db, model *m, int n, int round){
  assert_ok(tkv_begin(db));
  for(int i=0; i<n; i++){
    char k[32], v[64];
    key_of(k, sizeof k, i);
    snprintf(v, sizeof v, "v%d-%d-%s", round, i, "padding-padding-padding");
    put_str(db, m, k, v);
  }
  assert_ok(tkv_commit(db));
}

/* Change the store every way a commit can: overwrite, delete, add, and
** delete then write again in one transaction (a new row). */
static void churn(tkv_db *db, model *m, int round){
  assert_ok(tkv_begin(db));
  for(int i=0; i<NKEYS; i+=3){
    char k[32], v[64];
    key_of(k, sizeof k, i);
    snprintf(v, sizeof v, "churn%d-%d", round, i);
    put_str(db, m, k, v);
  }
  for(int i=1; i<NKEYS; i+=7){
    char k[32];
    key_of(k, sizeof k, i);
    if( model_get(m, k, strlen(k)) ) del_str(db, m, k);
  }
  for(int i=NKEYS; i<NKEYS+200; i++){
    char k[32];
    key_of(k, sizeof k, i + round*1000);
    put_str(db, m, k, "new");
  }
  for(int i=5; i<NKEYS; i+=11){
    char k[32];
    key_of(k, sizeof k, i);
    if( model_get(m, k, strlen(k)) ) del_str(db, m, k);
    put_str(db, m, k, "reborn");
  }
  assert_ok(tkv_commit(db));
}

/* A second handle's commits of every kind do not change the view. */
static void test_view_stays_while_another_handle_commits(void **state){
  fixture *f = *state;
  tkv_options o = rtx_options();
  tkv_db *a = open_with(f->dir, &o), *b = open_with(f->dir, &o);
  model m = {0}, at = {0};
  fill(b, &m, NKEYS, 0);
  model_copy(&at, &m);
  assert_ok(tkv_read_begin(a));
  assert_int_equal(tkv_in_read(a), 1);
  assert_tkv(TKV_MISUSE, tkv_read_begin(a));
  for(int r=1; r<=3; r++){
    churn(b, &m, r);
    assert_store_is(a, &at);
    assert_store_is(b, &m);
  }
  assert_ok(tkv_read_end(a));
  assert_int_equal(tkv_in_read(a), 0);
  assert_tkv(TKV_MISUSE, tkv_read_end(a));
  assert_store_is(a, &m);
  close_ok(a);
  close_ok(b);
  model_clear(&m);
  model_clear(&at);
}

/* Ids: a row deleted (or deleted and written again) since the view began
** keeps its id in the view, and a row created since has none there. */
static void test_view_keeps_ids(void **state){
  fixture *f = *state;
  tkv_options o = rtx_options();
  tkv_db *a = open_with(f->dir, &o), *b = open_with(f->dir, &o);
  uint64_t id_gone = 0, id_reborn = 0, id_new = 0, id;
  tkv_cursor *c = NULL;
  const void *k;
  size_t klen;
  assert_ok(tkv_put(b, "gone", 4, "1", 1));
  assert_ok(tkv_put(b, "reborn", 6, "2", 1));
  assert_ok(tkv_lookup(b, "gone", 4, &id_gone, NULL));
  assert_ok(tkv_lookup(b, "reborn", 6, &id_reborn, NULL));
  assert_ok(tkv_read_begin(a));
  assert_ok(tkv_begin(b));
  assert_ok(tkv_delete(b, "gone", 4));
  assert_ok(tkv_delete(b, "reborn", 6));
  assert_ok(tkv_put(b, "reborn", 6, "3", 1));
  assert_ok(tkv_put(b, "new", 3, "4", 1));
  assert_ok(tkv_commit(b));
  assert_ok(tkv_lookup(b, "new", 3, &id_new, NULL));
  assert_ok(tkv_lookup(b, "reborn", 6, &id, NULL));
  assert_true(id!=id_reborn);
  /* The view. */
  assert_ok(tkv_lookup(a, "gone", 4, &id, NULL));
  assert_true(id==id_gone);
  assert_ok(tkv_lookup(a, "reborn", 6, &id, NULL));
  assert_true(id==id_reborn);
  expect_str(a, "reborn", "2");
  expect_absent_str(a, "new");
  assert_ok(tkv_cursor_open(a, &c));
  assert_ok(tkv_cursor_seek_id(c, id_gone));
  tkv_cursor_key(c, &k, &klen);
  assert_true(klen==4 && memcmp(k, "gone", 4)==0);
  assert_ok(tkv_cursor_seek_id(c, id_reborn));
  tkv_cursor_key(c, &k, &klen);
  assert_true(klen==6 && memcmp(k, "reborn", 6)==0);
  assert_tkv(TKV_NOTFOUND, tkv_cursor_seek_id(c, id_new));
  tkv_cursor_close(c);
  assert_int_equal(tkv_count(a), 2);
  assert_ok(tkv_read_end(a));
  assert_tkv(TKV_NOTFOUND, tkv_lookup(a, "gone", 4, NULL, NULL));
  assert_int_equal(tkv_count(a), 2);
  close_ok(a);
  close_ok(b);
}

/* A cursor walking the view while another handle deletes the keys ahead
** of it (and behind it) sees each key of the view once, in order. */
static void test_cursor_walks_the_view_while_keys_go(void **state){
  fixture *f = *state;
  tkv_options o = rtx_options();
  tkv_db *a = open_with(f->dir, &o), *b = open_with(f->dir, &o);
  model m = {0};
  tkv_cursor *c = NULL;
  size_t i = 0;
  fill(b, &m, NKEYS, 0);
  assert_ok(tkv_read_begin(a));
  assert_ok(tkv_cursor_open(a, &c));
  assert_ok(tkv_cursor_seek(c, NULL, 0));
  while( tkv_cursor_valid(c) ){
    const void *k;
    size_t klen;
    void *v = NULL;
    size_t vlen = 0;
    tkv_cursor_key(c, &k, &klen);
    assert_true(i<m.n);
    assert_int_equal(key_cmp(k, klen, m.v[i].key, m.v[i].klen), 0);
    assert_ok(tkv_cursor_value(c, &v, &vlen));
    assert_true(vlen==m.v[i].vlen && memcmp(v, m.v[i].val, vlen)==0);
    tkv_free(v);
    if( i%100==0 ){
      /* Delete the next 50 keys and a few behind, add some between. */
      char kk[40];
      assert_ok(tkv_begin(b));
      for(size_t j=i+1; j<i+51 && j<m.n; j++){
        assert_ok(tkv_delete(b, m.v[j].key, m.v[j].klen));
      }
      if( i>0 ) assert_ok(tkv_delete(b, m.v[i-1].key, m.v[i-1].klen));
      snprintf(kk, sizeof kk, "%.*s+", (int)klen, (const char*)k);
      assert_ok(tkv_put(b, kk, strlen(kk), "x", 1));
      assert_ok(tkv_commit(b));
    }
    i++;
    assert_ok(tkv_cursor_next(c));
  }
  assert_int_equal(i, m.n);
  tkv_cursor_close(c);
  assert_ok(tkv_read_end(a));
  close_ok(a);
  close_ok(b);
  model_clear(&m);
}

/* A cursor opened in a view and used after it ends goes on with the
** store as it is, in key order (it walked the view's own index, which is
** gone with it). */
static void test_cursor_outlives_its_view(void **state){
  fixture *f = *state;
  tkv_options o = rtx_options();
  tkv_db *a = open_with(f->dir, &o), *b = open_with(f->dir, &o);
  model m = {0};
  tkv_cursor *c = NULL;
  uint8_t last[64];
  size_t lastn = 0, i = 0;
  fill(b, &m, NKEYS, 0);
  assert_ok(tkv_read_begin(a));
  for(size_t j=0; j<m.n; j+=2){
    assert_ok(tkv_delete(b, m.v[j].key, m.v[j].klen));
  }
  assert_ok(tkv_cursor_open(a, &c));
  assert_ok(tkv_cursor_seek(c, NULL, 0));
  while( tkv_cursor_valid(c) ){
    const void *k;
    size_t klen;
    tkv_cursor_key(c, &k, &klen);
    assert_true(klen<=sizeof last);
    if( i>0 ) assert_true(key_cmp(last, lastn, k, klen)<0);
    memcpy(last, k, klen);
    lastn = klen;
    if( i==NKEYS/2 ) assert_ok(tkv_read_end(a));
    i++;
    assert_ok(tkv_cursor_next(c));
  }
  /* Half in the view (every key), then every other key of the rest. */
  assert_true(i>NKEYS/2 && i<NKEYS);
  tkv_cursor_close(c);
  close_ok(a);
  close_ok(b);
  model_clear(&m);
}

/* Merges move and delete files while the view is open: it keeps reading
** the values it began with (their files stay until it ends), and the
** space comes back once it ends. */
static void test_view_survives_merges(void **state){
  fixture *f = *state;
  tkv_options o = rtx_options();
  tkv_db *a = open_with(f->dir, &o), *b = open_with(f->dir, &o);
  model m = {0}, at = {0};
  uint64_t r1 = 0, r2 = 0;
  fill(b, &m, NKEYS, 0);
  model_copy(&at, &m);
  assert_ok(tkv_read_begin(a));
  for(int r=1; r<=4; r++){
    fill(b, &m, NKEYS, r);                 /* every value replaced */
    churn(b, &m, r);
    assert_ok(tkv_compact(b, &r1));
    assert_store_is(a, &at);
    assert_store_is(b, &m);
  }
  /* The stats say what the view holds back. */
  assert_int_equal(stats_of(b).read_txns, 1);
  assert_true(stats_of(b).held_bytes>0);
  assert_true(stats_of(b).disk_bytes>stats_of(b).held_bytes);
  assert_ok(tkv_read_end(a));
  assert_int_equal(stats_of(b).read_txns, 0);
  assert_store_is(a, &m);
  /* The inputs the view held back go at the next merge. */
  assert_ok(tkv_compact(b, &r2));
  assert_true(r2>0);
  assert_true(stats_of(b).held_bytes==0);
  assert_store_is(b, &m);
  reopen_with(&b, f->dir, &o);
  assert_store_is(b, &m);
  close_ok(a);
  close_ok(b);
  model_clear(&m);
  model_clear(&at);
}

/* Several views begun at different moments each keep their own. */
static void test_views_of_different_moments(void **state){
  fixture *f = *state;
  tkv_options o = rtx_options();
  enum { NV = 4 };
  tkv_db *v[NV], *w = open_with(f->dir, &o);
  model m = {0}, at[NV];
  memset(at, 0, sizeof at);
  fill(w, &m, NKEYS, 0);
  for(int i=0; i<NV; i++){
    v[i] = open_with(f->dir, &o);
    model_copy(&at[i], &m);
    assert_ok(tkv_read_begin(v[i]));
    churn(w, &m, i + 1);
    if( i==1 ) assert_ok(tkv_compact(w, NULL));
  }
  for(int i=0; i<NV; i++) assert_store_is(v[i], &at[i]);
  /* End them out of order; the rest keep their views. */
  assert_ok(tkv_read_end(v[1]));
  assert_store_is(v[1], &m);
  churn(w, &m, 9);
  for(int i=0; i<NV; i++){
    if( i!=1 ) assert_store_is(v[i], &at[i]);
  }
  assert_ok(tkv_read_end(v[0]));
  assert_ok(tkv_read_end(v[3]));
  assert_store_is(v[2], &at[2]);
  assert_ok(tkv_read_end(v[2]));
  for(int i=0; i<NV; i++){
    assert_store_is(v[i], &m);
    close_ok(v[i]);
    model_clear(&at[i]);
  }
  close_ok(w);
  model_clear(&m);
}

/* A write transaction may follow a read transaction on the same handle
** only if nothing changed since it began (else the write could rest on
** stale reads): TKV_BUSY, and the view stays open. */
static void test_read_becomes_write_only_if_current(void **state){
  fixture *f = *state;
  tkv_options o = rtx_options();
  tkv_db *a = open_with(f->dir, &o), *b = open_with(f->dir, &o);
  assert_ok(tkv_put(b, "x", 1, "1", 1));
  assert_ok(tkv_read_begin(a));
  assert_ok(tkv_begin(a));                 /* nothing changed */
  assert_int_equal(tkv_in_read(a), 0);
  assert_ok(tkv_put(a, "x", 1, "2", 1));
  assert_ok(tkv_commit(a));
  assert_ok(tkv_read_begin(a));
  assert_ok(tkv_put(b, "x", 1, "3", 1));
  assert_tkv(TKV_BUSY, tkv_begin(a));
  assert_tkv(TKV_BUSY, tkv_put(a, "y", 1, "1", 1));
  assert_int_equal(tkv_in_read(a), 1);
  expect_str(a, "x", "2");
  expect_absent_str(a, "y");
  assert_ok(tkv_read_end(a));
  expect_str(a, "x", "3");
  assert_ok(tkv_put(a, "y", 1, "1", 1));
  /* Closing a handle ends its read transaction. */
  assert_ok(tkv_read_begin(a));
  assert_ok(tkv_put(b, "x", 1, "4", 1));
  close_ok(a);
  expect_str(b, "x", "4");
  close_ok(b);
}

/* Keys with expiry times: the view keeps the times it began with. */
static void test_view_keeps_expiry_times(void **state){
  fixture *f = *state;
  tkv_options o = rtx_options();
  tkv_db *a = open_with(f->dir, &o), *b = open_with(f->dir, &o);
  uint64_t far = tkv_clock_ms() + 3600*1000, at = 0;
  assert_ok(tkv_write_expire(b, "t", 1, "1", 1, 0, far, NULL));
  assert_ok(tkv_put(b, "p", 1, "2", 1));
  assert_ok(tkv_read_begin(a));
  assert_ok(tkv_write_expire(b, "t", 1, "9", 1, 0, far + 1000, NULL));
  assert_ok(tkv_write_expire(b, "p", 1, "8", 1, 0, 1, NULL));   /* expired */
  assert_ok(tkv_expire_get(a, "t", 1, &at));
  assert_true(at==far);
  assert_ok(tkv_expire_get(a, "p", 1, &at));
  assert_true(at==0);
  expect_str(a, "p", "2");
  assert_int_equal(tkv_count(a), 2);
  assert_int_equal(tkv_count(b), 1);
  assert_ok(tkv_read_end(a));
  assert_int_equal(tkv_count(a), 1);
  close_ok(a);
  close_ok(b);
}

static int child_status(pid_t pid){
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if( !WIFEXITED(status) ) return -1;
  return WEXITSTATUS(status);
}

/* In another process: churn the store `rounds` times, merging after each
** (with compact), then close.  The exit code says what failed. */
static int writer_main(const char *dir, int rounds, int compact){
  tkv_options o = rtx_options();
  tkv_db *db = NULL;
  char buf[64];
  if( tkv_open(dir, &o, &db) ) return 10;
  tkv_busy_timeout(db, 30000);
  for(int r=0; r<rounds; r++){
    if( tkv_begin(db) ) return 11;
    for(int i=0; i<NKEYS; i++){
      key_of(buf, sizeof buf, i);
      if( i%5==0 ){
        if( tkv_delete(db, buf, strlen(buf)) && i>0 ) continue;
      }else{
        char v[64];
        snprintf(v, sizeof v, "child%d-%d", r, i);
        if( tkv_put(db, buf, strlen(buf), v, strlen(v)) ) return 12;
      }
    }
    key_of(buf, sizeof buf, NKEYS + r);
    if( tkv_put(db, buf, strlen(buf), "c", 1) ) return 13;
    if( tkv_commit(db) ) return 14;
    if( compact && tkv_compact(db, NULL) ) return 15;
  }
  return tkv_close(db) ? 16 : 0;
}

static pid_t start_writer(const char *dir, int rounds, int compact){
  pid_t pid = fork();
  assert_true(pid>=0);
  if( pid==0 ) _exit(writer_main(dir, rounds, compact));
  return pid;
}

/* Another process commits and merges while this one has a view open: the
** view does not move, the files it reads stay, and after it ends this
** process sees the other's work. */
static void test_view_while_another_process_writes_and_merges(void **state){
  fixture *f = *state;
  tkv_options o = rtx_options();
  tkv_db *a = open_with(f->dir, &o), *b;
  model m = {0}, at = {0};
  fill(a, &m, NKEYS, 0);
  model_copy(&at, &m);
  assert_ok(tkv_read_begin(a));
  assert_int_equal(child_status(start_writer(f->dir, 3, 1)), 0);
  assert_store_is(a, &at);
  /* A second process's merge again, this one also having followed. */
  b = open_with(f->dir, &o);
  assert_ok(tkv_compact(b, NULL));
  assert_store_is(a, &at);
  assert_int_equal(child_status(start_writer(f->dir, 2, 1)), 0);
  assert_store_is(a, &at);
  assert_ok(tkv_read_end(a));
  /* Now the other processes' last state. */
  {
    void *v = NULL;
    size_t n = 0;
    char k[32];
    key_of(k, sizeof k, 1);
    assert_ok(tkv_get(a, k, strlen(k), &v, &n));
    assert_true(n==strlen("child1-1") && memcmp(v, "child1-1", n)==0);
    tkv_free(v);
    key_of(k, sizeof k, 5);
    expect_absent_str(a, k);
  }
  assert_int_equal(tkv_count(a), tkv_count(b));
  close_ok(b);
  close_ok(a);
  model_clear(&m);
  model_clear(&at);
}

/* ------------------------------------------- Under concurrent transfers. */

#define NACCT   400
#define BALANCE 1000

typedef struct bank {
  const char *dir;
  tkv_options o;
  _Atomic int stop;
  _Atomic long views;       /* read transactions checked */
  _Atomic long transfers;
  char why[300];            /* first failure, "" if none */
  pthread_mutex_t mu;
} bank;

static void bank_fail(bank *b, const char *fmt, const char *detail, long x){
  pthread_mutex_lock(&b->mu);
  if( !b->why[0] ) snprintf(b->why, sizeof b->why, fmt, detail, x);
  pthread_mutex_unlock(&b->mu);
  atomic_store(&b->stop, 1);
}

static long val_of(const void *v, size_t n){
  char buf[32];
  if( n>=sizeof buf ) return -1;
  memcpy(buf, v, n);
  buf[n] = 0;
  return strtol(buf, NULL, 10);
}

/* One walk of the handle's view: the total, the number of accounts and a
** hash of every (key, value) in order.  0, or -1 on an error. */
static int bank_walk(tkv_db *db, long *ptotal, long *pn, uint64_t *phash){
  tkv_cursor *c = NULL;
  uint64_t h = 1469598103934665603ull;
  long total = 0, n = 0;
  int rc = tkv_cursor_open(db, &c);
  if( !rc ) rc = tkv_cursor_seek(c, NULL, 0);
  while( !rc && tkv_cursor_valid(c) ){
    const void *k;
    size_t klen, vlen = 0;
    void *v = NULL;
    tkv_cursor_key(c, &k, &klen);
    rc = tkv_cursor_value(c, &v, &vlen);
    if( rc ) break;
    total += val_of(v, vlen);
    n++;
    for(size_t i=0; i<klen; i++) h = (h ^ ((const uint8_t*)k)[i]) * 1099511628211ull;
    for(size_t i=0; i<vlen; i++) h = (h ^ ((const uint8_t*)v)[i]) * 1099511628211ull;
    tkv_free(v);
    rc = tkv_cursor_next(c);
  }
  tkv_cursor_close(c);
  *ptotal = total;
  *pn = n;
  *phash = h;
  return rc ? -1 : 0;
}

/* A reader thread: views, each walked twice, with point reads between;
** every walk must find the whole balance, and both walks the same rows. */
static void *bank_reader(void *arg){
  bank *b = arg;
  tkv_db *db = NULL;
  if( tkv_open(b->dir, &b->o, &db) ){
    bank_fail(b, "reader open: %s%ld", tkv_errmsg(), 0);
    return NULL;
  }
  while( !atomic_load(&b->stop) ){
    long t1, n1, t2, n2;
    uint64_t h1, h2;
    if( tkv_read_begin(db) ){
      bank_fail(b, "read_begin: %s%ld", tkv_errmsg(), 0);
      break;
    }
    if( bank_walk(db, &t1, &n1, &h1) ){
      bank_fail(b, "walk: %s%ld", tkv_errmsg(), 0);
      break;
    }
    usleep(2000);         /* let transfers and merges happen */
    if( (long)tkv_count(db)!=n1 ){
      bank_fail(b, "count moved in a view%s: %ld", "", (long)tkv_count(db));
    }
    if( bank_walk(db, &t2, &n2, &h2) ){
      bank_fail(b, "walk: %s%ld", tkv_errmsg(), 0);
      break;
    }
    if( t1!=(long)NACCT*BALANCE ) bank_fail(b, "total%s %ld", "", t1);
    if( t2!=t1 || n2!=n1 || h2!=h1 ){
      bank_fail(b, "the view changed%s (total %ld)", "", t2);
    }
    tkv_read_end(db);
    atomic_fetch_add(&b->views, 1);
  }
  tkv_close(db);
  return NULL;
}

/* The writer: transfers between random accounts; now and then an account
** closes and its balance goes to a new one (a delete and a create). */
static void *bank_writer(void *arg){
  bank *b = arg;
  tkv_db *db = NULL;
  uint64_t seed = 12345;
  int next_new = 0;
  if( tkv_open(b->dir, &b->o, &db) ){
    bank_fail(b, "writer open: %s%ld", tkv_errmsg(), 0);
    return NULL;
  }
  while( !atomic_load(&b->stop) ){
    tkv_cursor *c = NULL;
    char k1[40], k2[40], v[32];
    const void *k;
    size_t klen, n = 0;
    void *p = NULL;
    long a1, a2, x;
    int rc = tkv_begin(db);
    /* Two accounts: the first at or after random bytes. */
    if( !rc ) rc = tkv_cursor_open(db, &c);
    for(int i=0; !rc && i<2; i++){
      char r[16];
      snprintf(r, sizeof r, "acct-%c", 'a' + (int)(tu_rand(&seed)%26));
      rc = tkv_cursor_seek(c, r, strlen(r));
      if( !rc && !tkv_cursor_valid(c) ) rc = tkv_cursor_seek(c, NULL, 0);
      if( !rc ){
        tkv_cursor_key(c, &k, &klen);
        snprintf(i ? k2 : k1, sizeof k1, "%.*s", (int)klen, (const char*)k);
      }
    }
    tkv_cursor_close(c);
    if( !rc && strcmp(k1, k2)==0 ){ tkv_rollback(db); continue; }
    if( !rc ) rc = tkv_get(db, k1, strlen(k1), &p, &n);
    a1 = rc ? 0 : val_of(p, n);
    tkv_free(p);
    p = NULL;
    if( !rc ) rc = tkv_get(db, k2, strlen(k2), &p, &n);
    a2 = rc ? 0 : val_of(p, n);
    tkv_free(p);
    if( !rc && tu_rand(&seed)%8==0 ){
      /* Close k1 into a new account. */
      char kn[40];
      snprintf(kn, sizeof kn, "acct-%c-new%06d", 'a' + next_new%26, next_new);
      next_new++;
      rc = tkv_delete(db, k1, strlen(k1));
      snprintf(v, sizeof v, "%ld", a1);
      if( !rc ) rc = tkv_put(db, kn, strlen(kn), v, strlen(v));
    }else if( !rc ){
      x = a1 ? (long)(tu_rand(&seed) % (uint64_t)(a1 + 1)) : 0;
      snprintf(v, sizeof v, "%ld", a1 - x);
      rc = tkv_put(db, k1, strlen(k1), v, strlen(v));
      snprintf(v, sizeof v, "%ld", a2 + x);
      if( !rc ) rc = tkv_put(db, k2, strlen(k2), v, strlen(v));
    }
    if( !rc ) rc = tkv_commit(db);
    if( rc ){
      bank_fail(b, "transfer: %s%ld", tkv_errmsg(), 0);
      tkv_rollback(db);
      break;
    }
    atomic_fetch_add(&b->transfers, 1);
  }
  tkv_close(db);
  return NULL;
}

/* Two threads in read transactions walk the store twice each while a
** third moves money between accounts, closes and opens accounts, and the
** background merge (a small threshold) runs: every view holds the whole
** balance and does not change. */
static void test_views_under_concurrent_transfers(void **state){
  fixture *f = *state;
  bank b;
  pthread_t r[2], w;
  tkv_db *db;
  memset(&b, 0, sizeof b);
  pthread_mutex_init(&b.mu, NULL);
  b.dir = f->dir;
  b.o = store_options(TKV_SYNC_OFF, 16384, 32768);
  db = open_with(f->dir, &b.o);
  assert_ok(tkv_begin(db));
  for(int i=0; i<NACCT; i++){
    char k[40], v[32];
    snprintf(k, sizeof k, "acct-%c-%05d", 'a' + i%26, i);
    snprintf(v, sizeof v, "%d", BALANCE);
    assert_ok(tkv_put(db, k, strlen(k), v, strlen(v)));
  }
  assert_ok(tkv_commit(db));
  for(int i=0; i<2; i++){
    assert_int_equal(pthread_create(&r[i], NULL, bank_reader, &b), 0);
  }
  assert_int_equal(pthread_create(&w, NULL, bank_writer, &b), 0);
  for(int ms=0; ms<3000 && !atomic_load(&b.stop); ms+=10) usleep(10000);
  atomic_store(&b.stop, 1);
  pthread_join(w, NULL);
  for(int i=0; i<2; i++) pthread_join(r[i], NULL);
  if( b.why[0] ) fail_msg("%s", b.why);
  if( atomic_load(&b.views)<5 || atomic_load(&b.transfers)<100
   || stats_of(db).compactions<1 ){
    fail_msg("too little happened: %ld views, %ld transfers, %llu merges",
             atomic_load(&b.views), atomic_load(&b.transfers),
             (unsigned long long)stats_of(db).compactions);
  }
  close_ok(db);
  pthread_mutex_destroy(&b.mu);
}

int main(void){
  const struct CMUnitTest tests[] = {
    CORE_TEST(test_view_stays_while_another_handle_commits),
    CORE_TEST(test_view_keeps_ids),
    CORE_TEST(test_cursor_walks_the_view_while_keys_go),
    CORE_TEST(test_cursor_outlives_its_view),
    CORE_TEST(test_view_survives_merges),
    CORE_TEST(test_views_of_different_moments),
    CORE_TEST(test_read_becomes_write_only_if_current),
    CORE_TEST(test_view_keeps_expiry_times),
    CORE_TEST(test_view_while_another_process_writes_and_merges),
    CORE_TEST(test_views_under_concurrent_transfers),
  };
  return run_core_tests(tests);
}
