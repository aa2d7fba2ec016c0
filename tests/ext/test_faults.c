/*
** Allocation failures inside the engine, seen through SQL: a workload runs
** again and again with the Nth allocation of the engine failing, for every
** N until it runs clean.  Each statement must either succeed or fail with
** an error (out of memory or I/O) and the connection must stay usable and
** close cleanly; under AddressSanitizer this also checks for leaks.
**
** The hook is the engine's tkv_test_fail_alloc (core/testhook.h), looked
** up in the loaded extension itself.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>

#include "sqlhelp.h"
#include "testutil.h"

typedef void (*FailAllocFn)(long, int);

/* The engine's fault hook in the loaded extension. */
static FailAllocFn faultHook(void){
  const char *zSo = getenv("TINKV_SO");
  char zPath[4096];
  void *h;
  snprintf(zPath, sizeof zPath, "%s.so", zSo ? zSo : "build/tinkv");
  h = dlopen(zPath, RTLD_NOW|RTLD_NOLOAD);
  if( h==0 ) return 0;
  return (FailAllocFn)(uintptr_t)dlsym(h, "tkv_test_fail_alloc");
}

static const char *const azWork[] = {
  "INSERT INTO kv VALUES('a', 1), (2, 'two'), (x'03', 3.5)",
  "BEGIN",
  "INSERT INTO kv SELECT key || 'x', value FROM kv WHERE typeof(key)='text'",
  "SAVEPOINT s",
  "UPDATE kv SET key = 'moved' WHERE key = 'a'",
  "ROLLBACK TO s",
  "DELETE FROM kv WHERE key = 2",
  "COMMIT",
  "REPLACE INTO kv VALUES('a', zeroblob(5000))",
  "SELECT key, value FROM kv WHERE key >= 'a' ORDER BY key",
  "SELECT count(*) FROM kv WHERE key LIKE 'A%'",
  "SELECT tinkv_compact('kv')",
  "SELECT tinkv_stats('kv')",
};

/* Run the workload; return the number of statements that failed. */
static int runWorkload(sqlite3 *db){
  size_t i;
  int nFail = 0;
  for(i=0; i<sizeof(azWork)/sizeof(azWork[0]); i++){
    int rc = sqlite3_exec(db, azWork[i], 0, 0, 0);
    if( rc!=SQLITE_OK ){
      int rcPrimary = rc & 0xff;
      nFail++;
      if( rcPrimary!=SQLITE_NOMEM && rcPrimary!=SQLITE_IOERR
       && rcPrimary!=SQLITE_ERROR && rcPrimary!=SQLITE_BUSY ){
        fprintf(stderr, "%s: unexpected %d %s\n", azWork[i], rc,
                sqlite3_errmsg(db));
        fail();
      }
    }
  }
  if( !sqlite3_get_autocommit(db) ) sqlite3_exec(db, "ROLLBACK", 0, 0, 0);
  return nFail;
}

/* Fail the Nth engine allocation (and all later ones when bSticky). */
static void runFaults(int bSticky){
  FailAllocFn setFault = faultHook();
  long n;
  int nRun = 0;
  if( setFault==0 ){
    /* Load once so that the extension is in the process, then look. */
    sqlite3 *db = sh_open(":memory:");
    setFault = faultHook();
    sqlite3_close(db);
    if( setFault==0 ) skip();
  }
  for(n=1; n<2000; n++){
    char zDir[4096];
    sqlite3 *db = sh_open(":memory:");
    int nFail;
    snprintf(zDir, sizeof zDir, "%s", tu_tmpdir("faults"));
    sh_exec(db, "CREATE VIRTUAL TABLE kv USING tinkv('%q/kv', sync=off)",
            zDir);
    setFault = faultHook();
    assert_non_null(setFault);
    setFault(n, bSticky);
    nFail = runWorkload(db);
    setFault(0, 0);
    /* The table still answers after the failures. */
    assert_int_equal(sqlite3_exec(db, "SELECT count(*) FROM kv", 0, 0, 0),
                     SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    tu_rmrf(zDir);
    nRun++;
    if( nFail==0 ) break;
  }
  printf("engine allocation failures%s: %d runs\n",
         bSticky ? " (sticky)" : "", nRun);
  assert_true(n<2000);
}

static void test_engine_alloc_failures(void **state){
  (void)state;
  runFaults(0);
}

static void test_engine_alloc_failures_sticky(void **state){
  (void)state;
  runFaults(1);
}

int main(void){
  /* The installed extension exports only the public API; the build keeps
  ** a copy that also exports the fault hooks, beside the tests. */
  const char *zSo = getenv("TINKV_SO");
  char zHooks[4096];
  snprintf(zHooks, sizeof zHooks, "%s", zSo ? zSo : "build/tinkv");
  if( strrchr(zHooks, '/') ) *strrchr(zHooks, '/') = 0;
  else snprintf(zHooks, sizeof zHooks, ".");
  if( strlen(zHooks)+sizeof("/tests/hooks/tinkv")<sizeof zHooks ){
    strcat(zHooks, "/tests/hooks/tinkv");
    setenv("TINKV_SO", zHooks, 1);
  }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_engine_alloc_failures),
    cmocka_unit_test(test_engine_alloc_failures_sticky),
  };
  return cmocka_run_group_tests(tests, 0, 0);
}
