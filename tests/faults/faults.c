/*
** Fault injection, in the manner of SQLite's malloc and I/O error tests.
** A fixed workload (create a store, commit transactions across segment
** rotations, compact by request and automatically, close, reopen, more
** commits, compact, close) runs again and again: in run N the Nth call of
** a kind fails, for N = 1, 2, 3, ... until a run completes with no failure
** injected.  The kinds are
**   io:     every file-system call of core/io.c (open, read, write, sync,
**           truncate, fallocate, rename, unlink, mkdir, directory sync,
**           lock), failing with ENOSPC, EIO or EACCES in turn;
**   io+:    the same, every call from the Nth on failing (a full disk);
**   malloc: the Nth allocation of core/ (then the same, sticky).
** Each run must end with a clear error (the status of the kind injected and
** a message naming the file, or TKV_BROKEN), never a crash; the handle
** then either works again or reports TKV_BROKEN; and a reopen with no
** fault finds exactly the transactions whose commit returned TKV_OK.
**
**   faults [-k io|io+|malloc|malloc+|all] [-m full|normal|off|all] [-v]
**
** Prints the points exercised per kind and "faults: P passed, F failed".
*/
#include "workload.h"
#include "testutil.h"
#include "testhook.h"
#include "io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NTXN1 24   /* commits before the reopen */
#define NTXN2 12   /* commits after it */

static const char *mode_name[] = { "full", "normal", "off" };
static const char *op_name[] = { "?", "open", "read", "write", "sync",
  "rename", "unlink", "truncate", "prealloc", "mkdir", "dirsync", "lock",
  "rmdir", "mmap" };
static int verbose;

/* State of the I/O fault hook. */
typedef struct io_fault {
  long calls;        /* calls seen */
  long fail_at;      /* the call that fails (0: none) */
  int sticky;        /* fail every call from fail_at on */
  int err;           /* the errno injected */
  int fired;         /* a failure was injected */
  int op;            /* the first call failed: its op and path */
  char path[4096];
} io_fault;

/* The I/O hook: fail call number fail_at (and later ones if sticky). */
static int io_hook(int op, const char *path, void *ctx){
  io_fault *f = ctx;
  f->calls++;
  if( f->fail_at==0 || f->calls<f->fail_at ) return 0;
  if( f->calls>f->fail_at && !f->sticky ) return 0;
  if( !f->fired ){
    f->fired = 1;
    f->op = op;
    snprintf(f->path, sizeof f->path, "%s", path ? path : "");
  }
  return f->err;
}

/* Result of one run of the workload. */
typedef struct run_result {
  uint32_t acked;    /* last commit that returned TKV_OK */
  int rc;            /* first failure, or TKV_OK */
  char msg[600];     /* its message */
  const char *step;  /* what failed */
  int rollback_rc;   /* a failed commit: status of its rollback */
} run_result;

/* Record the first failure of a run. */
static int failed(run_result *r, int rc, const char *step, const char *msg){
  r->rc = rc;
  r->step = step;
  snprintf(r->msg, sizeof r->msg, "%s", msg);
  return rc;
}

/* Commit transactions from..to; stop at the first failure.  With `more`,
** after a failure try one more commit on the same handle: it must succeed
** or say TKV_BROKEN. */
static int commit_range(tkv_db *db, uint32_t from, uint32_t to,
                        run_result *r){
  for(uint32_t n=from; n<=to; n++){
    int rc = wl_run_txn(db, n);
    if( rc ){
      r->rollback_rc = wl_rollback_rc;
      return failed(r, rc, "commit", wl_err);
    }
    r->acked = n;
    if( n%9==0 ){
      rc = tkv_compact(db, NULL);
      if( rc ) return failed(r, rc, "compact", tkv_errmsg());
    }
  }
  return TKV_OK;
}

/* Read every key and walk a cursor: a read fails clearly or is right. */
static int read_all(tkv_db *db, run_result *r){
  static wl_model m;
  tkv_cursor *c = NULL;
  int rc;
  wl_model_to(&m, r->acked);
  for(int i=0; i<WL_NKEYS; i++){
    char key[8];
    void *v = NULL;
    size_t vlen = 0;
    wl_key(i, key);
    rc = tkv_get(db, key, strlen(key), &v, &vlen);
    if( rc==TKV_NOTFOUND && !m.val[i] ) continue;
    if( rc ) return failed(r, rc, "read", tkv_errmsg());
    if( !m.val[i] || vlen!=m.vlen[i] || memcmp(v, m.val[i], vlen) ){
      tkv_free(v);
      return failed(r, TKV_CORRUPT, "read", "a read returned a wrong value");
    }
    tkv_free(v);
  }
  rc = tkv_cursor_open(db, &c);
  if( !rc ) rc = tkv_cursor_seek(c, NULL, 0);
  while( !rc && tkv_cursor_valid(c) ){
    void *v = NULL;
    size_t vlen;
    rc = tkv_cursor_value(c, &v, &vlen);
    tkv_free(v);
    if( !rc ) rc = tkv_cursor_next(c);
  }
  if( rc ) failed(r, rc, "cursor", tkv_errmsg());
  tkv_cursor_close(c);
  return rc;
}

/* The workload.  Returns TKV_OK or the first failure (in r). */
static int workload(const char *dir, int mode, run_result *r, tkv_db **pdb){
  tkv_options o;
  tkv_db *db = NULL;
  int rc;
  tkv_options_init(&o);
  o.sync = (tkv_sync_mode)mode;
  o.max_file_size = 4096;
  o.compact_threshold = 6000;
  o.create = 1;
  memset(r, 0, sizeof *r);
  *pdb = NULL;
  rc = tkv_open(dir, &o, &db);
  if( rc ) return failed(r, rc, "open", tkv_errmsg());
  *pdb = db;
  rc = commit_range(db, 1, NTXN1, r);
  if( rc ) return rc;
  *pdb = NULL;
  rc = tkv_close(db);
  if( rc ) return failed(r, rc, "close", tkv_errmsg());
  o.create = 0;
  rc = tkv_open(dir, &o, &db);
  if( rc ) return failed(r, rc, "reopen", tkv_errmsg());
  *pdb = db;
  rc = read_all(db, r);
  if( rc ) return rc;
  rc = commit_range(db, NTXN1 + 1, NTXN1 + NTXN2, r);
  if( rc ) return rc;
  rc = tkv_delete(db, "k_absent", 8);
  if( rc!=TKV_NOTFOUND ) return failed(r, rc ? rc : TKV_MISUSE, "delete", tkv_errmsg());
  rc = tkv_compact(db, NULL);
  if( rc ) return failed(r, rc, "compact", tkv_errmsg());
  *pdb = NULL;
  rc = tkv_close(db);
  if( rc ) return failed(r, rc, "close", tkv_errmsg());
  return TKV_OK;
}

/* Is rc/msg the clear error expected for the fault injected? */
static int clear_error(int kind_io, int err, const run_result *r,
                       const io_fault *f){
  if( r->rc==TKV_BROKEN ) return 1;
  if( kind_io ){
    /* The errno's text and a path in the store (or the store itself). */
    return r->rc==TKV_IO && strstr(r->msg, strerror(err))
        && (strstr(r->msg, "/") || !f->path[0]);
  }
  return r->rc==TKV_NOMEM && r->msg[0];
}

/* Reopen dir with no fault and check it holds commit `acked` exactly or,
** with `prefix` (sync=off and writes that never reached the OS), the state
** of some commit up to `acked`, or with `doubt` (a failed commit whose
** rollback failed too) that of acked or acked+1. */
static int verify(const char *dir, uint32_t acked, int prefix, int doubt,
                  wl_model *m, char *why, size_t nwhy){
  tkv_options o;
  tkv_db *db;
  int rc;
  tkv_options_init(&o);
  o.create = 0;
  rc = tkv_open(dir, &o, &db);
  if( rc==TKV_NOTSTORE && acked==0 ) return 0;
  if( rc==TKV_INVALID && acked==0 && access(dir, F_OK) ) return 0;
  if( rc ){
    snprintf(why, nwhy, "reopen: %s: %s", tkv_strerror(rc), tkv_errmsg());
    return -1;
  }
  if( prefix || doubt ){
    uint32_t j = 0;
    rc = wl_read_counter(db, &j);
    if( !rc && prefix && j<=acked ) acked = j;
    if( !rc && doubt && j==acked+1 ) acked = j;
  }
  wl_model_to(m, acked);
  rc = wl_check_store(db, m, why, nwhy);
  if( !rc && tkv_put(db, "__after", 7, "x", 1) ){
    snprintf(why, nwhy, "write after reopen: %s", tkv_errmsg());
    rc = -1;
  }
  if( tkv_close(db) && !rc ){
    snprintf(why, nwhy, "close after reopen: %s", tkv_errmsg());
    rc = -1;
  }
  return rc;
}

/*
** Run the loop for one kind in one sync mode.  Returns the number of
** failing points; *ppoints receives the points exercised.
*/
static int fault_loop(const char *base, int kind, int mode, long *ppoints){
  static const int errs[] = { ENOSPC, EIO, EACCES };
  const int kind_io = kind<2, sticky = kind & 1;
  static const char *kind_name[] = { "io", "io+", "malloc", "malloc+" };
  wl_model m;
  int bad = 0;
  long n;
  memset(&m, 0, sizeof m);
  for(n=1; ; n++){
    char dir[4096], why[1024];
    run_result r;
    io_fault f;
    tkv_db *db;
    int rc, fired, prefix, doubt;
    snprintf(dir, sizeof dir, "%s/store", base);
    tu_rmrf(dir);
    memset(&f, 0, sizeof f);
    f.fail_at = n;
    f.sticky = sticky;
    f.err = errs[n % 3];
    if( kind_io ){
      tkv_test_set_io_hook(io_hook, &f);
    }else{
      tkv_test_alloc_count(1);
      tkv_test_fail_alloc(n, sticky);
    }
    rc = workload(dir, mode, &r, &db);
    if( db && r.rc ){
      /* The handle after a transient fault: works again or says BROKEN. */
      if( !sticky ){
        int rc2 = wl_run_txn(db, r.acked + 1);
        if( rc2==TKV_OK ) r.acked++;
        else if( rc2!=TKV_BROKEN ){
          printf("faults %s/%s #%ld: after \"%s\", the next commit fails: "
                 "%s\n", kind_name[kind], mode_name[mode], n, r.msg, wl_err);
          bad++;
        }
      }
      tkv_close(db);
    }
    if( kind_io ){
      fired = f.fired;
      tkv_test_set_io_hook(NULL, NULL);
    }else{
      fired = tkv_test_alloc_count(0) >= n;
      tkv_test_fail_alloc(0, 0);
    }
    if( verbose ){
      printf("  #%ld %s%s%s: %s %s\n", n, fired ? "fail " : "no fault",
             fired && kind_io ? op_name[f.op] : "", fired && kind_io ? " " : "",
             r.step ? r.step : "done", r.rc ? r.msg : "");
    }
    if( !fired ){
      if( rc ){
        printf("faults %s/%s #%ld: no fault injected, yet %s failed: %s\n",
               kind_name[kind], mode_name[mode], n, r.step, r.msg);
        bad++;
      }
      break;
    }
    if( rc==TKV_OK ){
      /* The fault was absorbed (a hint file, a cleanup): fine if the data
      ** is right. */
    }else if( !clear_error(kind_io, f.err, &r, &f) ){
      printf("faults %s/%s #%ld: %s of %s failed: unclear error after %s: "
             "%s (%s)\n", kind_name[kind], mode_name[mode], n,
             kind_io ? op_name[f.op] : "allocation", kind_io ? f.path : "",
             r.step, tkv_strerror(r.rc), r.msg);
      bad++;
    }
    /* sync=off: commits still in the buffer die with a failed close or a
    ** disk that fails every write. */
    prefix = mode==TKV_SYNC_OFF
          && (sticky || (r.step && !strcmp(r.step, "close")));
    doubt = r.step && !strcmp(r.step, "commit") && r.rollback_rc!=TKV_OK;
    if( verify(dir, r.acked, prefix, doubt, &m, why, sizeof why) ){
      printf("faults %s/%s #%ld: %s%s%s failing in %s (%s): %s\n",
             kind_name[kind], mode_name[mode], n,
             kind_io ? op_name[f.op] : "allocation", kind_io ? " of " : "",
             kind_io ? f.path : "", r.step ? r.step : "nothing", r.msg, why);
      bad++;
    }
    if( bad>20 ) break;
  }
  wl_model_clear(&m);
  *ppoints = n - 1;
  return bad;
}

int main(int argc, char **argv){
  int opt, klo = 0, khi = 3, mlo = 0, mhi = 2, passed = 0, failures = 0;
  long total = 0;
  const char *base;
  while( (opt = getopt(argc, argv, "k:m:v"))!=-1 ){
    switch( opt ){
      case 'k':
        if( !strcmp(optarg, "io") ) klo = khi = 0;
        else if( !strcmp(optarg, "io+") ) klo = khi = 1;
        else if( !strcmp(optarg, "malloc") ) klo = khi = 2;
        else if( !strcmp(optarg, "malloc+") ) klo = khi = 3;
        else{ klo = 0; khi = 3; }
        break;
      case 'm':
        if( !strcmp(optarg, "all") ){ mlo = 0; mhi = 2; break; }
        for(mlo=0; mlo<3 && strcmp(optarg, mode_name[mlo]); mlo++){}
        if( mlo==3 ) return 2;
        mhi = mlo;
        break;
      case 'v': verbose = 1; break;
      default:
        fprintf(stderr, "usage: faults [-k io|io+|malloc|malloc+|all] "
                "[-m full|normal|off|all] [-v]\n");
        return 2;
    }
  }
  base = tu_tmpdir("faults");
  for(int kind=klo; kind<=khi; kind++){
    static const char *kind_name[] = { "io", "io+", "malloc", "malloc+" };
    for(int mode=mlo; mode<=mhi; mode++){
      long points = 0;
      int bad = fault_loop(base, kind, mode, &points);
      total += points;
      printf("faults %s/%s: %ld fault points, %d failing\n", kind_name[kind],
             mode_name[mode], points, bad);
      fflush(stdout);
      if( bad ) failures++; else passed++;
    }
  }
  tu_rmrf(base);
  printf("faults: %ld fault points exercised\n", total);
  printf("faults: %d passed, %d failed\n", passed, failures);
  return failures ? 1 : 0;
}
