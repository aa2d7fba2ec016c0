/*
** Tests of failures (core/testhook.h): a file-system call that fails with
** ENOSPC or EIO, at every point of a workload of single writes,
** transactions and segment rotations, and an allocation that fails at
** every point of each operation.  Each failure must be reported (TKV_IO or
** TKV_NOMEM, with a message), must leave the open store as it was before
** the failed operation, must not stop the operations after it, and after a
** reopen the store must hold exactly what the successful operations wrote.
**
** One allowance: when an fdatasync fails after its write succeeded, the
** bytes may or may not be on disk, so for that one operation either
** outcome is accepted after the reopen (never for any other operation).
** And one exception to "must not stop the operations after it": a failed
** fdatasync of a commit makes the engine refuse writes (TKV_BROKEN) until
** it is reopened, since a second fdatasync could report success for pages
** the kernel dropped.
*/
#include "engine_check.h"

#include <errno.h>
#include <unistd.h>

#define SMALL_SEG 4096
#define WL_KEYS 40

/* --------------------------------------------------------- The workload. */

/* One write of the workload. */
typedef struct wop {
  int del;
  char key[16];
  size_t klen;
  uint8_t val[256];
  size_t vlen;
} wop;

static void apply_op(model *m, const wop *op){
  if( op->del ) model_del(m, op->key, op->klen);
  else model_put(m, op->key, op->klen, op->val, op->vlen);
}

static int run_op(tkv_db *db, const wop *op){
  return op->del ? tkv_delete(db, op->key, op->klen)
                 : tkv_put(db, op->key, op->klen, op->val, op->vlen);
}

/* A random write on keys "w00".."w39": a delete of a key present in m, or
** a put of 50..249 bytes. */
static void make_op(wop *op, const model *m, uint64_t *s){
  memset(op, 0, sizeof *op);
  op->klen = (size_t)snprintf(op->key, sizeof op->key, "w%02d",
                              (int)(tu_rand(s) % WL_KEYS));
  op->del = tu_rand(s) % 4 == 0 && model_get(m, op->key, op->klen);
  if( !op->del ){
    op->vlen = 50 + (size_t)(tu_rand(s) % 200);
    fill_value(op->val, op->vlen, tu_rand(s));
  }
}

/* What the store must hold: m; or alt, when an operation failed at a sync
** and may have reached the disk. */
typedef struct expect {
  fault_plan *plan;
  model m;
  model alt;
  int has_alt;
  int failures;
  int broken;          /* the engine refused an operation: TKV_BROKEN */
  int fired;           /* plan->fired before the current operation */
  char what[160];      /* the operation, for messages */
} expect;

static void expect_apply(expect *x, const wop *op){
  apply_op(&x->m, op);
  if( x->has_alt ) apply_op(&x->alt, op);
}

/* An operation succeeded: a fault injected during it may only have hit a
** hint file (hints are optional), a space reservation that was retried
** smaller, or a read-only map (reads then use pread). */
static void check_success(expect *x){
  fault_plan *p = x->plan;
  if( p->fired==x->fired ) return;
  if( p->first_op==TKV_IO_PREALLOC || p->first_op==TKV_IO_MMAP ) return;
  if( strstr(base_name(p->path), ".hint") ) return;
  fail_msg("%s: the %s failure on %s was not reported", x->what,
           io_op_name(p->first_op), base_name(p->path));
}

/* An operation failed: only because of the injected fault, once, with
** TKV_IO and a message giving the error. */
static void check_failure(expect *x, int rc, tkv_db *db){
  fault_plan *p = x->plan;
  char why[600];
  if( p->fired==x->fired ){
    fail_msg("%s failed with no fault injected: %s: %s", x->what,
             tkv_strerror(rc), tkv_errmsg());
  }
  if( rc!=TKV_IO ){
    fail_msg("%s: %s failure gave %s (%s), expected an I/O error", x->what,
             io_op_name(p->first_op), tkv_strerror(rc), tkv_errmsg());
  }
  if( !msg_has(tkv_errmsg(), strerror(p->err)) ){
    fail_msg("%s: message without the error: %s", x->what, tkv_errmsg());
  }
  if( ++x->failures>1 ){
    fail_msg("%s: a second failure after a single fault: %s", x->what,
             tkv_errmsg());
  }
  /* The open store shows nothing of the failed operation. */
  if( store_diff(db, &x->m, why, sizeof why) ){
    fail_msg("%s: after the failure: %s", x->what, why);
  }
}

/* After a commit's fdatasync failed, the engine refuses writes until it is
** reopened: a TKV_BROKEN then ends the workload.  Nonzero if rc is that. */
static int refused_after_sync(expect *x, int rc){
  if( rc!=TKV_BROKEN || x->plan->first_op!=TKV_IO_SYNC || !x->failures ){
    return 0;
  }
  x->broken = 1;
  return 1;
}

/* The failed operation may be on disk when its sync failed: alt gets it. */
static void allow_either(expect *x, const wop *ops, int n){
  if( x->plan->first_op!=TKV_IO_SYNC ) return;
  model_copy(&x->alt, &x->m);
  for(int i=0; i<n; i++) apply_op(&x->alt, &ops[i]);
  x->has_alt = 1;
}

/* A single write outside a transaction. */
static void step_single(tkv_db *db, expect *x, uint64_t *s){
  wop op;
  int rc;
  make_op(&op, &x->m, s);
  snprintf(x->what, sizeof x->what, "%s %s", op.del ? "delete" : "put",
           op.key);
  x->fired = x->plan->fired;
  rc = run_op(db, &op);
  if( refused_after_sync(x, rc) ) return;
  if( rc==TKV_OK ){
    check_success(x);
    expect_apply(x, &op);
  }else{
    check_failure(x, rc, db);
    allow_either(x, &op, 1);
  }
}

/*
** A transaction of 2..6 writes.  A failed write leaves the transaction
** open without it; a failed commit leaves it open too, and is then rolled
** back (retry==0) or committed again (retry==1).
*/
static void step_txn(tkv_db *db, expect *x, uint64_t *s, int retry){
  wop ops[6];
  model pending = {0};
  int n = 0, nops = 2 + (int)(tu_rand(s) % 5), rc;
  snprintf(x->what, sizeof x->what, "begin");
  x->fired = x->plan->fired;
  rc = tkv_begin(db);
  if( refused_after_sync(x, rc) ) return;
  if( rc ){
    check_failure(x, rc, db);
    return;
  }
  check_success(x);
  model_copy(&pending, &x->m);
  for(int i=0; i<nops; i++){
    make_op(&ops[n], &pending, s);
    snprintf(x->what, sizeof x->what, "%s %s in a transaction",
             ops[n].del ? "delete" : "put", ops[n].key);
    x->fired = x->plan->fired;
    rc = run_op(db, &ops[n]);
    if( rc ){
      /* Not part of the transaction; checked against its view. */
      model saved = x->m;
      x->m = pending;
      check_failure(x, rc, db);
      x->m = saved;
      continue;
    }
    check_success(x);
    apply_op(&pending, &ops[n]);
    n++;
  }
  snprintf(x->what, sizeof x->what, "commit of %d writes", n);
  x->fired = x->plan->fired;
  rc = tkv_commit(db);
  if( rc==TKV_OK ){
    check_success(x);
    for(int i=0; i<n; i++) expect_apply(x, &ops[i]);
  }else{
    model saved = x->m;
    assert_true(tkv_in_transaction(db));
    x->m = pending;
    check_failure(x, rc, db);
    x->m = saved;
    if( retry && x->plan->first_op==TKV_IO_SYNC ){
      /* Not acknowledged by a second try either. */
      rc = tkv_commit(db);
      if( rc!=TKV_BROKEN ){
        fail_msg("commit again after a failed fdatasync: %s: %s",
                 tkv_strerror(rc), tkv_errmsg());
      }
      x->broken = 1;
      rc = tkv_rollback(db);
      if( rc ) fail_msg("rollback: %s: %s", tkv_strerror(rc), tkv_errmsg());
      allow_either(x, ops, n);
    }else if( retry ){
      rc = tkv_commit(db);
      if( rc ) fail_msg("commit again: %s: %s", tkv_strerror(rc),
                        tkv_errmsg());
      for(int i=0; i<n; i++) expect_apply(x, &ops[i]);
    }else{
      rc = tkv_rollback(db);
      if( rc ) fail_msg("rollback: %s: %s", tkv_strerror(rc), tkv_errmsg());
      allow_either(x, ops, n);
    }
  }
  assert_false(tkv_in_transaction(db));
  model_clear(&pending);
}

/* The store the workloads start from: 80 puts of up to 40 keys, over a
** few segments. */
static void make_template(const char *dir, model *m){
  tkv_options o = store_options(TKV_SYNC_NORMAL, SMALL_SEG, UINT64_MAX);
  tkv_db *db = open_with(dir, &o);
  uint64_t s = 99;
  for(int i=0; i<80; i++){
    wop op;
    make_op(&op, m, &s);
    op.del = 0;
    if( !op.vlen ){ op.vlen = 10; memset(op.val, 'x', 10); }
    assert_ok(run_op(db, &op));
    apply_op(m, &op);
  }
  close_ok(db);
}

/*
** For n = 1, 2, ...: the nth call of `op` fails with `err` during a
** workload of `steps` operations (single writes and transactions) on a copy
** of the template, with small segments so that it rotates.  Stops when the
** workload makes fewer than n such calls.  Returns the number of runs.
*/
static int fault_every_call(fixture *f, const char *tmpl, const model *base,
                            int op, int err, tkv_sync_mode sync, int steps){
  tkv_options o = store_options(sync, SMALL_SEG, UINT64_MAX);
  int segs_before = tu_count_files(tmpl, ".seg");
  long nth;
  for(nth=1; nth<1000; nth++){
    fault_plan plan;
    expect x;
    tkv_db *db;
    char why[600];
    uint64_t s = 1234;
    int rc;
    memset(&x, 0, sizeof x);
    x.plan = &plan;
    model_copy(&x.m, base);
    crash_image(tmpl, f->dir);
    db = open_with(f->dir, &o);
    fault_arm(&plan, op, nth, err);
    for(int i=0; i<steps && !x.broken; i++){
      if( tu_rand(&s) % 5 == 0 ) step_txn(db, &x, &s, (int)(nth & 1));
      else step_single(db, &x, &s);
    }
    fault_off();
    assert_store_is(db, &x.m);
    /* The workload rotated into new segments. */
    if( !x.broken ){
      assert_true(tu_count_files(f->dir, ".seg") >= segs_before + 1);
    }
    rc = tkv_close(db);
    /* An engine whose commit fdatasync failed says so at close too. */
    if( rc && !(rc==TKV_BROKEN && plan.fired && plan.first_op==TKV_IO_SYNC) ){
      fail_msg("%s #%ld: close: %s", io_op_name(op), nth, tkv_errmsg());
    }
    db = open_with(f->dir, &o);
    if( store_diff(db, &x.m, why, sizeof why)
     && (!x.has_alt || store_diff(db, &x.alt, why, sizeof why)) ){
      fail_msg("%s #%ld failed (%s, %s): after reopen: %s", io_op_name(op),
               nth, base_name(plan.path), x.what, why);
    }
    close_ok(db);
    model_clear(&x.m);
    model_clear(&x.alt);
    if( !plan.fired ) break;
  }
  return (int)nth;
}

/* Writes failing with ENOSPC (sync=normal) and EIO (sync=full). */
static void test_write_failures(void **state){
  fixture *f = *state;
  char tmpl[4400];
  model base = {0};
  snprintf(tmpl, sizeof tmpl, "%s/template", f->root);
  make_template(tmpl, &base);
  assert_true(fault_every_call(f, tmpl, &base, TKV_IO_WRITE, ENOSPC,
                               TKV_SYNC_NORMAL, 45) > 30);
  assert_true(fault_every_call(f, tmpl, &base, TKV_IO_WRITE, EIO,
                               TKV_SYNC_FULL, 15) > 10);
  model_clear(&base);
}

/* fdatasync of a segment or hint, and fsync of the directory after a new
** segment, failing with EIO (sync=full). */
static void test_sync_failures(void **state){
  fixture *f = *state;
  char tmpl[4400];
  model base = {0};
  snprintf(tmpl, sizeof tmpl, "%s/template", f->root);
  make_template(tmpl, &base);
  assert_true(fault_every_call(f, tmpl, &base, TKV_IO_SYNC, EIO,
                               TKV_SYNC_FULL, 20) > 15);
  assert_true(fault_every_call(f, tmpl, &base, TKV_IO_DIRSYNC, EIO,
                               TKV_SYNC_FULL, 20) > 1);
  model_clear(&base);
}

/* Space reservation, file creation at rotation, cutting the reserve of a
** sealed segment, renaming its hint into place. */
static void test_prealloc_open_truncate_rename_failures(void **state){
  fixture *f = *state;
  char tmpl[4400];
  model base = {0};
  snprintf(tmpl, sizeof tmpl, "%s/template", f->root);
  make_template(tmpl, &base);
  assert_true(fault_every_call(f, tmpl, &base, TKV_IO_PREALLOC, ENOSPC,
                               TKV_SYNC_NORMAL, 60) > 2);
  assert_true(fault_every_call(f, tmpl, &base, TKV_IO_OPEN, EIO,
                               TKV_SYNC_NORMAL, 60) > 2);
  assert_true(fault_every_call(f, tmpl, &base, TKV_IO_TRUNCATE, EIO,
                               TKV_SYNC_NORMAL, 60) >= 1);
  assert_true(fault_every_call(f, tmpl, &base, TKV_IO_RENAME, EIO,
                               TKV_SYNC_NORMAL, 60) > 1);
  model_clear(&base);
}

/* A transaction larger than the write buffer, whose records reach the file
** before the commit: each write of it fails in turn.  The failed write is
** not part of the transaction; the rest commits whole. */
static void test_write_failure_in_large_transaction(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 0, UINT64_MAX);
  uint8_t *val = malloc(8192);
  long nth;
  assert_non_null(val);
  for(nth=1; nth<100; nth++){
    fault_plan plan;
    model m = {0}, pending = {0};
    tkv_db *db;
    char key[16];
    int failed = 0, rc;
    tu_rmrf(f->dir);
    db = open_with(f->dir, &o);
    put_str(db, &m, "before", "the transaction");
    model_copy(&pending, &m);
    assert_ok(tkv_begin(db));
    fault_arm(&plan, TKV_IO_WRITE, nth, ENOSPC);
    for(int i=0; i<200; i++){
      snprintf(key, sizeof key, "big%03d", i);
      fill_value(val, 8192, (uint64_t)i);
      rc = tkv_put(db, key, strlen(key), val, 8192);
      if( rc ){
        assert_int_equal(rc, TKV_IO);
        assert_true(msg_has(tkv_errmsg(), strerror(ENOSPC)));
        failed++;
        continue;
      }
      model_put(&pending, key, strlen(key), val, 8192);
    }
    rc = tkv_commit(db);
    fault_off();
    if( rc ){
      assert_int_equal(rc, TKV_IO);
      failed++;
      assert_ok(tkv_commit(db));
    }
    assert_int_equal(failed, plan.fired ? 1 : 0);
    assert_store_is(db, &pending);
    reopen_with(&db, f->dir, &o);
    assert_store_is(db, &pending);
    close_ok(db);
    model_clear(&m);
    model_clear(&pending);
    if( !plan.fired ) break;
  }
  assert_true(nth>2);
  free(val);
}

/* Reads without the read-only map (it cannot be made), the first pread
** failing when armed. */
typedef struct read_fault {
  int armed;
  int fired;
} read_fault;

static int read_hook(int op, const char *path, void *ctx){
  read_fault *r = ctx;
  (void)path;
  if( op==TKV_IO_MMAP ) return ENOMEM;
  if( op==TKV_IO_READ && r->armed ){
    r->armed = 0;
    r->fired++;
    return EIO;
  }
  return 0;
}

/* A read that fails is TKV_IO with a message; the next read works.  Small
** and large records, and with no map at all the store still works. */
static void test_read_failure(void **state){
  fixture *f = *state;
  read_fault rf = {0, 0};
  tkv_db *db;
  uint8_t big[10000];
  void *val = NULL;
  size_t vlen;
  fill_value(big, sizeof big, 3);
  tkv_test_set_io_hook(read_hook, &rf);
  db = open_store(f->dir);
  put_str(db, NULL, "k", "value");
  assert_ok(tkv_put(db, "big", 3, big, sizeof big));
  assert_ok(tkv_sync(db));
  rf.armed = 1;
  assert_tkv(TKV_IO, tkv_get(db, "k", 1, &val, &vlen));
  assert_int_equal(rf.fired, 1);
  assert_null(val);
  assert_true(msg_has(tkv_errmsg(), strerror(EIO)));
  assert_true(msg_has(tkv_errmsg(), ".seg"));
  expect_str(db, "k", "value");
  rf.armed = 1;
  assert_tkv(TKV_IO, tkv_get(db, "big", 3, &val, &vlen));
  assert_int_equal(rf.fired, 2);
  expect_val(db, "big", 3, big, sizeof big);
  assert_ok(tkv_compact(db, NULL));
  expect_val(db, "big", 3, big, sizeof big);
  reopen_with(&db, f->dir, NULL);
  expect_str(db, "k", "value");
  fault_off();
  close_ok(db);
}

/* The nth file-system call of tkv_open fails (a store that needs a torn
** tail cut and segment scans): the open reports it, or succeeds when only
** a hint could not be written (its segment is read again for it) or a
** segment not mapped; either way the store has all its data. */
static void test_failures_during_open(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, SMALL_SEG, UINT64_MAX);
  char tmpl[4400];
  model base = {0};
  char **hints;
  int nhint;
  long nth;
  snprintf(tmpl, sizeof tmpl, "%s/template", f->root);
  make_template(tmpl, &base);
  /* A torn tail and two missing hints. */
  assert_int_equal(tu_append(seg_path(tmpl, newest_seg(tmpl), ".seg"),
                             "torn", 4), 0);
  hints = tu_list_files(tmpl, ".hint", &nhint);
  assert_true(nhint>=2);
  unlink(tu_path(tmpl, hints[0]));
  unlink(tu_path(tmpl, hints[nhint-1]));
  tu_free_names(hints);
  for(nth=1; nth<1000; nth++){
    fault_plan plan;
    tkv_db *db = NULL;
    int rc;
    crash_image(tmpl, f->dir);
    fault_arm(&plan, 0, nth, EIO);
    rc = tkv_open(f->dir, &o, &db);
    fault_off();
    if( rc ){
      if( !plan.fired ) fail_msg("open failed by itself: %s", tkv_errmsg());
      assert_int_equal(rc, TKV_IO);
      assert_null(db);
      assert_true(msg_has(tkv_errmsg(), strerror(EIO)));
      db = open_with(f->dir, &o);
    }else if( plan.fired && plan.first_op!=TKV_IO_MMAP
           && plan.first_op!=TKV_IO_READ ){
      if( !strstr(base_name(plan.path), ".hint") ){
        fail_msg("open hid the %s failure on %s", io_op_name(plan.first_op),
                 base_name(plan.path));
      }
    }
    assert_store_is(db, &base);
    close_ok(db);
    if( !plan.fired ) break;
  }
  assert_true(nth>10);
  model_clear(&base);
}

/* ------------------------------------------ A rollback that cannot cut. */

/*
** tkv_rollback of a transaction whose COMMIT record is already in the file,
** while the file cannot be truncated: if the rollback reports success, the
** transaction must stay rolled back after a reopen.  after_prepare: the
** COMMIT record was written by a successful tkv_prepare; else by a
** tkv_commit that then failed at its sync.
*/
static void rollback_when_truncate_fails(fixture *f, int after_prepare){
  tkv_options o = store_options(TKV_SYNC_FULL, 0, UINT64_MAX);
  fault_plan plan;
  model m = {0};
  tkv_db *db = open_with(f->dir, &o);
  char why[600];
  int rc;
  put_str(db, &m, "k", "committed");
  assert_ok(tkv_begin(db));
  put_str(db, NULL, "k", "rolled back");
  put_str(db, NULL, "n", "rolled back");
  if( after_prepare ){
    assert_ok(tkv_prepare(db));
    fault_arm(&plan, TKV_IO_TRUNCATE, 1, EIO);
    plan.sticky = 1;
  }else{
    fault_arm(&plan, TKV_IO_SYNC, 1, EIO);
    plan.then_op = TKV_IO_TRUNCATE;
    assert_tkv(TKV_IO, tkv_commit(db));
    assert_true(tkv_in_transaction(db));
  }
  rc = tkv_rollback(db);
  fault_off();
  assert_false(tkv_in_transaction(db));
  assert_store_is(db, &m);
  if( after_prepare ) close_ok(db);
  else assert_tkv(TKV_BROKEN, tkv_close(db));   /* its fdatasync failed */
  if( rc==TKV_OK ){
    db = open_with(f->dir, &o);
    if( store_diff(db, &m, why, sizeof why) ){
      fail_msg("%s, then a rollback that returned ok: after reopen the "
               "transaction is back: %s",
               after_prepare ? "prepare succeeded" : "commit failed at sync",
               why);
    }
    close_ok(db);
  }
  model_clear(&m);
}

static void test_rollback_after_prepare_when_truncate_fails(void **state){
  rollback_when_truncate_fails(*state, 1);
}

static void test_rollback_after_failed_commit_when_truncate_fails(
  void **state
){
  rollback_when_truncate_fails(*state, 0);
}

/* A single put whose sync fails and whose bytes cannot be cut off (the
** truncate fails; the zeroing write does it): the put reports the failure;
** the engine then refuses writes until it is reopened (a failed fdatasync
** cannot be retried safely), still reads, and after a reopen the put is
** there or not (the one allowed uncertainty), everything else exact, and
** the store works again. */
static void test_put_when_sync_and_truncate_fail(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 0, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  fault_plan plan;
  model m = {0}, alt = {0};
  char why[600];
  put_str(db, &m, "a", "1");
  put_str(db, &m, "k", "old");
  fault_arm(&plan, TKV_IO_SYNC, 1, EIO);
  plan.then_op = TKV_IO_TRUNCATE;
  assert_tkv(TKV_IO, tkv_put(db, "k", 1, "failed", 6));
  fault_off();
  expect_str(db, "k", "old");
  model_copy(&alt, &m);
  model_put(&alt, "k", 1, "failed", 6);
  assert_tkv(TKV_BROKEN, tkv_put(db, "b", 1, "2", 1));
  assert_tkv(TKV_BROKEN, tkv_begin(db));
  assert_store_is(db, &m);
  assert_tkv(TKV_BROKEN, tkv_close(db));
  db = open_with(f->dir, &o);
  if( store_diff(db, &m, why, sizeof why) ){
    char why2[600];
    if( store_diff(db, &alt, why2, sizeof why2) ){
      fail_msg("after reopen: %s", why);
    }
  }
  put_str(db, NULL, "b", "2");
  assert_ok(tkv_begin(db));
  put_str(db, NULL, "c", "3");
  assert_ok(tkv_commit(db));
  close_ok(db);
  model_clear(&m);
  model_clear(&alt);
}

/* ------------------------------------------------- Allocation failures. */

/* One operation run with allocations failing: fn(db, arg) returns a TKV
** status.  Every operation here can be repeated after it succeeded and
** then leaves the store as it was after its first success. */
typedef int (*alloc_op_fn)(tkv_db *db, void *arg);

/*
** Run op with the nth allocation failing (and every one after it when
** sticky), for n = 1, 2, ... until the op makes fewer than n allocations.
** A failure must be TKV_NOMEM and leave the open store as it was (before,
** or after when an earlier run succeeded); a success may have absorbed the
** failure (a hint not written), and the store must then equal after.
*/
static void alloc_fail_each(tkv_db *db, const model *before,
                            const model *after, int sticky, const char *what,
                            alloc_op_fn fn, void *arg){
  int done = 0;
  for(long nth=1; nth<100000; nth++){
    char why[600];
    long made;
    int rc;
    tkv_test_alloc_count(1);
    tkv_test_fail_alloc(nth, sticky);
    rc = fn(db, arg);
    tkv_test_fail_alloc(0, 0);
    made = tkv_test_alloc_count(1);
    if( rc==TKV_OK ){
      done = 1;
    }else if( rc!=TKV_NOMEM ){
      fail_msg("%s, allocation %ld failing: %s (%s)", what, nth,
               tkv_strerror(rc), tkv_errmsg());
    }else if( !msg_has(tkv_errmsg(), "memory") ){
      fail_msg("%s, allocation %ld failing: message %s", what, nth,
               tkv_errmsg());
    }
    if( store_diff(db, done ? after : before, why, sizeof why) ){
      fail_msg("%s, allocation %ld failing (%s): %s", what, nth,
               tkv_strerror(rc), why);
    }
    if( made<nth ){
      if( rc ) fail_msg("%s fails with no allocation failing", what);
      return;
    }
  }
  fail_msg("%s: too many allocations", what);
}

typedef struct kv_arg {
  const char *key;
  const void *val;
  size_t vlen;
} kv_arg;

static int op_put(tkv_db *db, void *arg){
  kv_arg *a = arg;
  return tkv_put(db, a->key, strlen(a->key), a->val, a->vlen);
}

/* A delete that finds its key already gone has nothing left to do. */
static int op_delete(tkv_db *db, void *arg){
  kv_arg *a = arg;
  int rc = tkv_delete(db, a->key, strlen(a->key));
  return rc==TKV_NOTFOUND ? TKV_OK : rc;
}

static int op_get(tkv_db *db, void *arg){
  kv_arg *a = arg;
  void *val = NULL;
  size_t vlen;
  int rc = tkv_get(db, a->key, strlen(a->key), &val, &vlen);
  if( rc ) return rc;
  assert_int_equal(vlen, a->vlen);
  assert_memory_equal(val, a->val, vlen);
  tkv_free(val);
  return TKV_OK;
}

static int op_cursor_walk(tkv_db *db, void *arg){
  tkv_cursor *cur = NULL;
  size_t n = 0;
  int rc = tkv_cursor_open(db, &cur);
  if( !rc ) rc = tkv_cursor_seek(cur, NULL, 0);
  while( !rc && tkv_cursor_valid(cur) ){
    n++;
    rc = tkv_cursor_next(cur);
  }
  if( !rc && tkv_cursor_seek_id(cur, 1)==TKV_NOMEM ) rc = TKV_NOMEM;
  tkv_cursor_close(cur);
  if( !rc ) assert_int_equal(n, *(size_t*)arg);
  return rc;
}

/* A transaction on handle arg: three puts, a savepoint, a delete rolled
** back to the savepoint, commit. */
typedef struct txn_arg {
  tkv_db *db;
  const char *suffix;
} txn_arg;

static int op_txn(tkv_db *unused, void *arg){
  txn_arg *a = arg;
  char key[32];
  int rc = tkv_begin(a->db);
  (void)unused;
  for(int i=0; !rc && i<3; i++){
    snprintf(key, sizeof key, "t%d-%s", i, a->suffix);
    rc = tkv_put(a->db, key, strlen(key), "txn", 3);
  }
  if( !rc ) rc = tkv_savepoint(a->db, 4);
  if( !rc ) rc = tkv_delete(a->db, "new01", 5);
  if( !rc ) rc = tkv_rollback_to(a->db, 4);
  if( !rc ) rc = tkv_commit(a->db);
  if( rc && tkv_in_transaction(a->db) ) assert_ok(tkv_rollback(a->db));
  return rc;
}

static int op_compact(tkv_db *db, void *arg){
  (void)arg;
  return tkv_compact(db, NULL);
}

/* tkv_open of dir with allocation n failing, n = 1, 2, ...: TKV_NOMEM
** until it succeeds; returns the handle. */
static tkv_db *open_with_alloc_failures(const char *dir, const tkv_options *o,
                                        int sticky){
  for(long nth=1; nth<100000; nth++){
    tkv_db *db = NULL;
    int rc;
    tkv_test_alloc_count(1);
    tkv_test_fail_alloc(nth, sticky);
    rc = tkv_open(dir, o, &db);
    tkv_test_fail_alloc(0, 0);
    if( rc==TKV_OK ){
      if( tkv_test_alloc_count(1)<nth ) return db;
      close_ok(db);
      continue;
    }
    if( rc!=TKV_NOMEM ){
      fail_msg("open, allocation %ld failing: %s (%s)", nth, tkv_strerror(rc),
               tkv_errmsg());
    }
    assert_null(db);
  }
  fail_msg("open: too many allocations");
  return NULL;
}

static void alloc_failures(fixture *f, int sticky){
  tkv_options o = store_options(TKV_SYNC_NORMAL, SMALL_SEG, UINT64_MAX);
  char tmpl[4400], key[32], val[300];
  model m = {0}, next = {0};
  tkv_db *db, *db2;
  kv_arg kv;
  txn_arg ta;
  size_t n;
  snprintf(tmpl, sizeof tmpl, "%s/template%d", f->root, sticky);
  make_template(tmpl, &m);
  tu_rmrf(f->dir);
  crash_image(tmpl, f->dir);

  /* Open: with hints, then with a segment to scan and a tail to cut. */
  db = open_with_alloc_failures(f->dir, &o, sticky);
  assert_store_is(db, &m);
  close_ok(db);
  unlink(seg_path(f->dir, oldest_seg(f->dir), ".hint"));
  tu_append(seg_path(f->dir, newest_seg(f->dir), ".seg"), "torn", 4);
  db = open_with_alloc_failures(f->dir, &o, sticky);
  assert_store_is(db, &m);

  /* Writes: new keys (with rotations), overwrites, deletes. */
  for(int i=0; i<40; i++){
    size_t vlen = 100 + (size_t)i*5;
    snprintf(key, sizeof key, "new%02d", i);
    fill_value((uint8_t*)val, vlen, (uint64_t)i);
    kv.key = key; kv.val = val; kv.vlen = vlen;
    model_copy(&next, &m);
    model_put(&next, key, strlen(key), val, vlen);
    alloc_fail_each(db, &m, &next, sticky, "put", op_put, &kv);
    model_copy(&m, &next);
    if( i%4==0 ){
      kv.val = "short"; kv.vlen = 5;
      model_put(&next, key, strlen(key), "short", 5);
      alloc_fail_each(db, &m, &next, sticky, "overwrite", op_put, &kv);
      model_copy(&m, &next);
    }
    if( i%5==0 ){
      model_del(&next, key, strlen(key));
      alloc_fail_each(db, &m, &next, sticky, "delete", op_delete, &kv);
      model_copy(&m, &next);
    }
  }

  /* Reads. */
  kv.key = "new01";
  kv.val = model_get(&m, "new01", 5)->val;
  kv.vlen = model_get(&m, "new01", 5)->vlen;
  alloc_fail_each(db, &m, &m, sticky, "get", op_get, &kv);
  n = m.n;
  alloc_fail_each(db, &m, &m, sticky, "cursor walk", op_cursor_walk, &n);

  /* Transactions, on a handle that never had one and on one that had. */
  assert_ok(tkv_open(f->dir, NULL, &db2));
  for(int h=0; h<2; h++){
    ta.db = h ? db : db2;
    ta.suffix = h ? "b" : "a";
    model_copy(&next, &m);
    for(int i=0; i<3; i++){
      snprintf(key, sizeof key, "t%d-%s", i, ta.suffix);
      model_put(&next, key, strlen(key), "txn", 3);
    }
    alloc_fail_each(db, &m, &next, sticky, "transaction", op_txn, &ta);
    model_copy(&m, &next);
  }
  close_ok(db2);

  /* Compaction; then deletes, another compaction and a reopen must not
  ** bring anything back from a failed one. */
  alloc_fail_each(db, &m, &m, sticky, "compaction", op_compact, NULL);
  for(int i=0; i<40; i+=3){
    snprintf(key, sizeof key, "new%02d", i);
    if( model_del(&m, key, strlen(key)) ){
      assert_ok(tkv_delete(db, key, strlen(key)));
    }
  }
  alloc_fail_each(db, &m, &m, sticky, "second compaction", op_compact, NULL);
  reopen_with(&db, f->dir, &o);
  {
    char why[600];
    if( store_diff(db, &m, why, sizeof why) ){
      fail_msg("compactions with allocations failing, deletes, a compaction "
               "and a reopen: %s", why);
    }
  }
  close_ok(db);
  model_clear(&m);
  model_clear(&next);
}

static void test_alloc_failures_once(void **state){
  alloc_failures(*state, 0);
}

static void test_alloc_failures_sticky(void **state){
  alloc_failures(*state, 1);
}

/* Each compaction with one allocation failing, then deletes, a compaction
** and a reopen: a failed compaction must leave nothing on disk that
** replays later. */
static void compaction_alloc_failure_then_reopen(fixture *f, int sticky){
  tkv_options o = store_options(TKV_SYNC_NORMAL, SMALL_SEG, UINT64_MAX);
  char tmpl[4400], key[32];
  model base = {0};
  long nth, total;
  tkv_db *db;
  snprintf(tmpl, sizeof tmpl, "%s/template", f->root);
  tu_rmrf(tmpl);
  make_template(tmpl, &base);
  /* How many allocations a compaction makes. */
  crash_image(tmpl, f->dir);
  db = open_with(f->dir, &o);
  tkv_test_alloc_count(1);
  assert_ok(tkv_compact(db, NULL));
  total = tkv_test_alloc_count(1);
  close_ok(db);
  assert_true(total>3);
  for(nth=1; nth<=total; nth++){
    model m = {0};
    char why[600];
    int rc;
    crash_image(tmpl, f->dir);
    model_copy(&m, &base);
    db = open_with(f->dir, &o);
    tkv_test_fail_alloc(nth, sticky);
    rc = tkv_compact(db, NULL);
    tkv_test_fail_alloc(0, 0);
    if( rc ) assert_int_equal(rc, TKV_NOMEM);
    for(int i=0; i<WL_KEYS; i+=2){
      snprintf(key, sizeof key, "w%02d", i);
      if( model_del(&m, key, strlen(key)) ){
        assert_ok(tkv_delete(db, key, strlen(key)));
      }
    }
    assert_ok(tkv_compact(db, NULL));
    reopen_with(&db, f->dir, &o);
    if( store_diff(db, &m, why, sizeof why) ){
      fail_msg("compaction with allocation %ld of %ld failing (%s), then "
               "deletes, a compaction and a reopen: %s", nth, total,
               tkv_strerror(rc), why);
    }
    close_ok(db);
    model_clear(&m);
  }
  model_clear(&base);
}

static void test_alloc_failure_in_compaction_then_reopen(void **state){
  compaction_alloc_failure_then_reopen(*state, 0);
  compaction_alloc_failure_then_reopen(*state, 1);
}

/* ------------------------------------------------- After the failure. */

/* When a rollback can neither cut the file nor overwrite the records, the
** engine refuses writes (TKV_BROKEN, saying to reopen) but still reads;
** after a reopen it works, with the transaction there or not (its rollback
** reported the failure). */
static void test_failed_rollback_breaks_engine_until_reopen(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 0, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  fault_plan plan;
  model m = {0}, alt = {0};
  char why[600];
  int rc;
  put_str(db, &m, "k", "committed");
  model_copy(&alt, &m);
  assert_ok(tkv_begin(db));
  put_str(db, &alt, "k", "in the transaction");
  put_str(db, &alt, "n", "in the transaction");
  assert_ok(tkv_prepare(db));
  fault_arm(&plan, TKV_IO_TRUNCATE, 1, EIO);
  plan.sticky = 1;
  plan.then_op = TKV_IO_WRITE;
  rc = tkv_rollback(db);
  fault_off();
  assert_false(tkv_in_transaction(db));
  if( rc==TKV_OK ) fail_msg("rollback reported success though it could "
                            "neither truncate nor write");
  assert_int_equal(rc, TKV_BROKEN);
  assert_true(msg_has(tkv_errmsg(), strerror(EIO)));
  assert_tkv(TKV_BROKEN, tkv_put(db, "x", 1, "y", 1));
  assert_true(msg_has(tkv_errmsg(), "reopen"));
  assert_tkv(TKV_BROKEN, tkv_delete(db, "k", 1));
  assert_tkv(TKV_BROKEN, tkv_begin(db));
  assert_tkv(TKV_BROKEN, tkv_compact(db, NULL));
  expect_str(db, "k", "committed");
  tkv_close(db);
  db = open_with(f->dir, &o);
  if( store_diff(db, &m, why, sizeof why) ){
    assert_store_is(db, &alt);
  }
  put_str(db, NULL, "after", "reopen");
  close_ok(db);
  model_clear(&m);
  model_clear(&alt);
}

/* A store whose next commit starts an automatic compaction. */
static void make_stale_template(const char *dir, model *m){
  tkv_options o = store_options(TKV_SYNC_NORMAL, SMALL_SEG, UINT64_MAX);
  tkv_db *db = open_with(dir, &o);
  uint64_t s = 5;
  for(int i=0; i<150; i++){
    wop op;
    make_op(&op, m, &s);
    assert_ok(run_op(db, &op));
    apply_op(m, &op);
  }
  assert_true(stats_of(db).stale_bytes > 8192);
  close_ok(db);
}

/*
** After a successful tkv_prepare, tkv_commit cannot fail: it does no merge
** work, it only wakes the background merge.  That merge failing (an
** allocation or a file-system call, at every point) leaves its status in
** the stats, and the store whole, now and after a reopen (a failed
** fdatasync of the active segment also refuses writes until then).
*/
static void test_failed_automatic_compaction_keeps_commit(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, SMALL_SEG, 8192);
  char tmpl[4400];
  model base = {0};
  long total_allocs = 0;
  snprintf(tmpl, sizeof tmpl, "%s/template", f->root);
  make_stale_template(tmpl, &base);
  for(int kind=0; kind<2; kind++){
    for(long nth=1; nth<100000; nth++){
      model m = {0};
      fault_plan plan;
      tkv_stats st;
      tkv_db *db;
      long made = 0;
      int fired, rc;
      crash_image(tmpl, f->dir);
      model_copy(&m, &base);
      db = open_with(f->dir, &o);
      assert_ok(tkv_begin(db));
      put_str(db, &m, "committed", "despite the compaction");
      assert_ok(tkv_prepare(db));
      /* The merge thread is not running yet: the hooks are set while no
      ** other thread uses the engine. */
      if( kind==0 ){
        tkv_test_alloc_count(1);
        tkv_test_fail_alloc(nth, 1);
        rc = tkv_commit(db);
        tkv_test_merge_wait(db);
        tkv_test_fail_alloc(0, 0);
        made = tkv_test_alloc_count(1);
        fired = made>=nth;
      }else{
        fault_arm(&plan, 0, nth, EIO);
        rc = tkv_commit(db);
        tkv_test_merge_wait(db);
        fault_off();
        fired = plan.fired;
      }
      if( rc ) fail_msg("commit after prepare failed (%s %ld): %s",
                        kind ? "file-system call" : "allocation", nth,
                        tkv_errmsg());
      st = stats_of(db);
      if( !fired ){
        assert_true(st.compactions>=1);
        assert_int_equal(st.last_compact_rc, TKV_OK);
        if( kind==0 ) total_allocs = made;
      }else if( st.compactions==0 ){
        assert_true(st.last_compact_rc==(kind ? TKV_IO : TKV_NOMEM));
      }
      assert_store_is(db, &m);
      /* A failed fdatasync of the active segment (the merge syncs it before
      ** deleting inputs, and ahead of its sealing) breaks the engine:
      ** a later sync could wrongly succeed (BROKEN_SYNC).  Close says so;
      ** the reopened store still holds every commit. */
      rc = tkv_close(db);
      db = NULL;
      if( rc && !(kind==1 && fired && rc==TKV_BROKEN) ){
        fail_msg("tkv_close: %s: %s", tkv_strerror(rc), tkv_errmsg());
      }
      db = open_with(f->dir, &o);
      assert_store_is(db, &m);
      close_ok(db);
      model_clear(&m);
      if( !fired ){
        if( getenv("TKV_TEST_VERBOSE") ){
          print_message("%s: %ld runs\n", kind ? "io" : "alloc", nth);
        }
        break;
      }
    }
  }
  assert_true(total_allocs > 5);
  model_clear(&base);
}

int main(void){
  const struct CMUnitTest tests[] = {
    CORE_TEST(test_write_failures),
    CORE_TEST(test_sync_failures),
    CORE_TEST(test_prealloc_open_truncate_rename_failures),
    CORE_TEST(test_write_failure_in_large_transaction),
    CORE_TEST(test_read_failure),
    CORE_TEST(test_failures_during_open),
    CORE_TEST(test_rollback_after_prepare_when_truncate_fails),
    CORE_TEST(test_rollback_after_failed_commit_when_truncate_fails),
    CORE_TEST(test_put_when_sync_and_truncate_fail),
    CORE_TEST(test_failed_rollback_breaks_engine_until_reopen),
    CORE_TEST(test_failed_automatic_compaction_keeps_commit),
    CORE_TEST(test_alloc_failures_once),
    CORE_TEST(test_alloc_failures_sticky),
    CORE_TEST(test_alloc_failure_in_compaction_then_reopen),
  };
  return run_core_tests(tests);
}
