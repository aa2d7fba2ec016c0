/*
** Concurrency: several threads share one store, some through their own C
** API handle, some through their own SQLite connection to one database
** (every tinkv table of the process on one directory shares one engine),
** reading and writing while another thread compacts again and again.  Each
** writer owns its keys and checks after every write that it reads back
** what it wrote; at the end a fresh handle must see every writer's last
** values.  Reader threads meanwhile read every writer's keys and walk
** cursors over the store (what they read must be a value some writer
** wrote), and a churn thread opens and closes handles of its own.  Built
** with ThreadSanitizer by `make tsan`.
**
** Then last closes racing opens: threads that each open the store, write,
** read back and close it again and again, with no other handle open, so
** that an open often meets the last close of another thread; every open
** must succeed (the process's own closing engine is no other process).
**
** Then another process: while a child process holds the store, an open
** here succeeds too (the store is shared); after the child is killed with
** SIGKILL the open succeeds.
**
**   concurrent [-n OPS]
** Prints "concurrent: P passed, F failed".
*/
#include "tinkv.h"
#include "testutil.h"

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NC 3     /* C API writer threads */
#define NS 3     /* SQL writer threads */
#define NK 40    /* keys per writer */
#define NR 2     /* reader threads */
#define NCH 4    /* threads of the open/close race */

int sqlite3_tinkv_init(sqlite3 *db, char **pzErr, const void *pApi);

static char dir[2048], dbfile[2100];
static long nops = 400;
static int errors;
static int done;
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;

/* Record a failure. */
static void fail(const char *who, const char *what){
  pthread_mutex_lock(&err_mu);
  errors++;
  if( errors<10 ) fprintf(stderr, "concurrent: %s: %s\n", who, what);
  pthread_mutex_unlock(&err_mu);
}

/* A C API writer: puts, transactions, reads back. */
static void *c_writer(void *arg){
  int id = (int)(intptr_t)arg;
  tkv_options o;
  tkv_db *db;
  char who[32];
  snprintf(who, sizeof who, "c%d", id);
  tkv_options_init(&o);
  o.sync = TKV_SYNC_NORMAL;
  if( tkv_open(dir, &o, &db) ){ fail(who, tkv_errmsg()); return NULL; }
  for(long i=0; i<nops; i++){
    char key[32], val[64];
    void *v = NULL;
    size_t vlen = 0;
    int rc;
    snprintf(key, sizeof key, "c%d-%ld", id, i % NK);
    snprintf(val, sizeof val, "value %ld of %s", i, key);
    if( i%5==0 ){
      rc = tkv_begin(db);
      if( !rc ) rc = tkv_put(db, key, strlen(key), val, strlen(val));
      if( !rc ) rc = tkv_commit(db);
      if( rc && tkv_in_transaction(db) ) tkv_rollback(db);
      if( rc==TKV_BUSY ) continue;
    }else{
      rc = tkv_put(db, key, strlen(key), val, strlen(val));
    }
    if( rc ){ fail(who, tkv_errmsg()); break; }
    rc = tkv_get(db, key, strlen(key), &v, &vlen);
    if( rc || vlen!=strlen(val) || memcmp(v, val, vlen) ){
      fail(who, rc ? tkv_errmsg() : "read back a different value");
    }
    tkv_free(v);
  }
  tkv_close(db);
  return NULL;
}

/* An SQL writer on its own connection. */
/* The SQL writers' connections, opened by main before the threads start:
** every connection's auto-extension init stores the SQLite API pointer in
** the extension's global (SQLITE_EXTENSION_INIT2), which ThreadSanitizer
** reports against the extension's calls on other threads.  The engine is
** what this test is about. */
static sqlite3 *sql_conn[NS];

static void *sql_writer(void *arg){
  int id = (int)(intptr_t)arg;
  sqlite3 *db = sql_conn[id];
  char who[32];
  snprintf(who, sizeof who, "sql%d", id);
  if( !db ){ fail(who, "open"); return NULL; }
  sqlite3_busy_timeout(db, 10000);
  for(long i=0; i<nops; i++){
    char *sql, *err = NULL;
    sqlite3_stmt *st = NULL;
    sql = sqlite3_mprintf("INSERT OR REPLACE INTO kv VALUES('s%d-%ld', "
                          "'value %ld')", id, i % NK, i);
    if( sqlite3_exec(db, sql, NULL, NULL, &err) ){
      fail(who, err);
      sqlite3_free(err);
    }
    sqlite3_free(sql);
    sql = sqlite3_mprintf("SELECT value FROM kv WHERE key='s%d-%ld'", id, i % NK);
    if( sqlite3_prepare_v2(db, sql, -1, &st, NULL)
     || sqlite3_step(st)!=SQLITE_ROW ){
      fail(who, sqlite3_errmsg(db));
    }else{
      char want[32];
      snprintf(want, sizeof want, "value %ld", i);
      if( strcmp((const char*)sqlite3_column_text(st, 0), want) ){
        fail(who, "read back a different value");
      }
    }
    sqlite3_finalize(st);
    sqlite3_free(sql);
    if( i%50==0 ){
      sqlite3_exec(db, "SELECT count(*) FROM kv", NULL, NULL, NULL);
    }
  }
  sqlite3_close(db);
  return NULL;
}

/* Nonzero if v (n bytes) is a value the writers of key could have written:
** "value N of KEY" (C API writers), or any SQL row (encoded by the
** extension, not checked here). */
static int plausible(const char *key, const void *v, size_t n){
  char tail[48];
  int len;
  if( key[0]!='c' ) return 1;
  len = snprintf(tail, sizeof tail, " of %s", key);
  return n>6 && n>(size_t)len && !memcmp(v, "value ", 6)
      && !memcmp((const char*)v + n - (size_t)len, tail, (size_t)len);
}

/* Read the writers' keys and walk the store until the writers are done. */
static void *reader(void *arg){
  int id = (int)(intptr_t)arg;
  tkv_db *db;
  char who[32];
  uint64_t s = (uint64_t)id + 11;
  snprintf(who, sizeof who, "r%d", id);
  if( tkv_open(dir, NULL, &db) ){ fail(who, tkv_errmsg()); return NULL; }
  while( !__atomic_load_n(&done, __ATOMIC_ACQUIRE) ){
    char key[32];
    void *v = NULL;
    size_t n = 0;
    int rc;
    snprintf(key, sizeof key, "c%d-%d", (int)(tu_rand(&s) % NC),
             (int)(tu_rand(&s) % NK));
    rc = tkv_get(db, key, strlen(key), &v, &n);
    if( rc==TKV_OK && !plausible(key, v, n) ) fail(who, "read a wrong value");
    else if( rc && rc!=TKV_NOTFOUND ) fail(who, tkv_errmsg());
    tkv_free(v);
    if( tu_rand(&s) % 64 == 0 ){
      tkv_cursor *c;
      if( tkv_cursor_open(db, &c) ){ fail(who, tkv_errmsg()); break; }
      rc = tkv_cursor_seek(c, NULL, 0);
      for(int i=0; !rc && i<50 && tkv_cursor_valid(c); i++){
        const void *k;
        size_t klen;
        tkv_cursor_key(c, &k, &klen);
        rc = tkv_cursor_value(c, &v, &n);
        if( rc==TKV_OK ){
          char kz[64];
          snprintf(kz, sizeof kz, "%.*s", (int)(klen<63 ? klen : 63),
                   (const char*)k);
          if( !plausible(kz, v, n) ) fail(who, "cursor read a wrong value");
          tkv_free(v);
        }else if( rc==TKV_NOTFOUND ){
          rc = TKV_OK;          /* deleted since the cursor reached it */
        }
        if( !rc ) rc = tkv_cursor_next(c);
      }
      if( rc ) fail(who, tkv_errmsg());
      tkv_cursor_close(c);
    }
  }
  tkv_close(db);
  return NULL;
}

/* Open, read and close handles of the store until the writers are done
** (never the last handle: the writers hold theirs). */
static void *churn(void *arg){
  (void)arg;
  while( !__atomic_load_n(&done, __ATOMIC_ACQUIRE) ){
    tkv_db *db;
    void *v = NULL;
    size_t n;
    int rc;
    if( tkv_open(dir, NULL, &db) ){ fail("churn", tkv_errmsg()); break; }
    rc = tkv_get(db, "c0-0", 4, &v, &n);
    if( rc && rc!=TKV_NOTFOUND ) fail("churn", tkv_errmsg());
    tkv_free(v);
    if( tkv_close(db) ) fail("churn", tkv_errmsg());
    usleep(500);
  }
  return NULL;
}

/* Last closes racing opens: each thread opens, writes, reads back and
** closes, again and again. */
static char churn_dir[2100];
static void *open_close(void *arg){
  int id = (int)(intptr_t)arg;
  char who[32];
  tkv_options o;
  snprintf(who, sizeof who, "oc%d", id);
  tkv_options_init(&o);
  o.create = 1;
  o.sync = TKV_SYNC_NORMAL;
  for(long i=0; i<nops/4 + 10; i++){
    tkv_db *db;
    char key[32], val[32];
    void *v = NULL;
    size_t n = 0;
    int rc = tkv_open(churn_dir, &o, &db);
    if( rc ){ fail(who, tkv_errmsg()); break; }
    snprintf(key, sizeof key, "oc%d", id);
    snprintf(val, sizeof val, "%ld", i);
    rc = tkv_put(db, key, strlen(key), val, strlen(val));
    if( !rc ) rc = tkv_get(db, key, strlen(key), &v, &n);
    if( rc ) fail(who, tkv_errmsg());
    else if( n!=strlen(val) || memcmp(v, val, n) ) fail(who, "read back");
    tkv_free(v);
    if( tkv_close(db) ){ fail(who, tkv_errmsg()); break; }
  }
  return NULL;
}

/* Compact again and again until the writers are done. */
static void *compactor(void *arg){
  tkv_db *db;
  tkv_options o;
  (void)arg;
  tkv_options_init(&o);
  if( tkv_open(dir, &o, &db) ){ fail("compactor", tkv_errmsg()); return NULL; }
  while( !__atomic_load_n(&done, __ATOMIC_ACQUIRE) ){
    int rc = tkv_compact(db, NULL);
    if( rc && rc!=TKV_BUSY ) fail("compactor", tkv_errmsg());
    usleep(2000);
  }
  tkv_close(db);
  return NULL;
}

/* Check every writer's last values with a fresh handle. */
static void final_check(void){
  tkv_db *db;
  if( tkv_open(dir, NULL, &db) ){ fail("check", tkv_errmsg()); return; }
  for(int id=0; id<NC; id++){
    for(long i=nops-NK; i<nops; i++){
      char key[32], val[64];
      void *v = NULL;
      size_t vlen = 0;
      if( i%5==0 ) continue;   /* a transaction: may have met BUSY */
      snprintf(key, sizeof key, "c%d-%ld", id, i % NK);
      snprintf(val, sizeof val, "value %ld of %s", i, key);
      if( tkv_get(db, key, strlen(key), &v, &vlen) || vlen!=strlen(val)
       || memcmp(v, val, vlen) ){
        fail("check", key);
      }
      tkv_free(v);
    }
  }
  tkv_close(db);
}

/* The lock between processes, with the owner killed. */
static int lock_test(void){
  int p[2], rc;
  char c;
  pid_t pid;
  tkv_db *db;
  if( pipe(p) ) return -1;
  pid = fork();
  if( pid==0 ){
    tkv_db *cdb;
    close(p[0]);
    if( tkv_open(dir, NULL, &cdb) ) _exit(1);
    if( write(p[1], "x", 1)!=1 ) _exit(1);
    for(;;) pause();
  }
  close(p[1]);
  if( read(p[0], &c, 1)!=1 ){ close(p[0]); return -1; }
  close(p[0]);
  rc = tkv_open(dir, NULL, &db);
  if( rc!=TKV_OK ){
    fprintf(stderr, "concurrent: second process: rc=%d %s\n", rc, tkv_errmsg());
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
  }
  tkv_close(db);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  rc = tkv_open(dir, NULL, &db);
  if( rc ){
    fprintf(stderr, "concurrent: open after the owner was killed: %s\n",
            tkv_errmsg());
    return -1;
  }
  return tkv_close(db) ? -1 : 0;
}

int main(int argc, char **argv){
  pthread_t th[NC + NS + 1 + NR + 1];
  sqlite3 *db = NULL;
  char *sql, *err = NULL;
  int n = 0, passed = 0, failed = 0;
  if( argc>2 && !strcmp(argv[1], "-n") ) nops = atol(argv[2]);
  snprintf(dir, sizeof dir, "%s/store", tu_tmpdir("concurrent"));
  snprintf(dbfile, sizeof dbfile, "%s.db", dir);
  sqlite3_auto_extension((void (*)(void))sqlite3_tinkv_init);
  if( sqlite3_open(dbfile, &db) ) return 2;
  sql = sqlite3_mprintf("CREATE VIRTUAL TABLE kv USING tinkv(path='%q', "
                        "sync=normal, max_file_size=16384, "
                        "compact_threshold=32768)", dir);
  if( sqlite3_exec(db, sql, NULL, NULL, &err) ){
    fprintf(stderr, "concurrent: %s\n", err);
    return 2;
  }
  sqlite3_free(sql);
  for(int i=0; i<NS; i++){
    if( sqlite3_open(dbfile, &sql_conn[i]) ){
      sqlite3_close(sql_conn[i]);
      sql_conn[i] = NULL;
    }
  }
  for(int i=0; i<NC; i++) pthread_create(&th[n++], NULL, c_writer, (void*)(intptr_t)i);
  for(int i=0; i<NS; i++) pthread_create(&th[n++], NULL, sql_writer, (void*)(intptr_t)i);
  pthread_create(&th[n++], NULL, compactor, NULL);
  for(int i=0; i<NR; i++) pthread_create(&th[n++], NULL, reader, (void*)(intptr_t)i);
  pthread_create(&th[n++], NULL, churn, NULL);
  for(int i=0; i<NC + NS; i++) pthread_join(th[i], NULL);
  __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
  for(int i=NC + NS; i<n; i++) pthread_join(th[i], NULL);
  sqlite3_close(db);
  final_check();
  printf("concurrent: %d C API threads, %d SQL connections, a compactor, "
         "%d readers, an open/close thread, %ld operations each: %d errors\n",
         NC, NS, NR, nops, errors);
  if( errors ) failed++; else passed++;
  {
    int before = errors;
    snprintf(churn_dir, sizeof churn_dir, "%s-churn", dir);
    n = 0;
    for(int i=0; i<NCH; i++){
      pthread_create(&th[n++], NULL, open_close, (void*)(intptr_t)i);
    }
    for(int i=0; i<n; i++) pthread_join(th[i], NULL);
    printf("concurrent: %d threads opening and closing the store as its only "
           "handle, %ld times each: %d errors\n", NCH, nops/4 + 10,
           errors - before);
    if( errors>before ) failed++; else passed++;
  }
  if( lock_test() ) failed++; else passed++;
  printf("concurrent: lock between processes %s\n", failed && !errors ? "FAILED" : "ok");
  {
    char base[2048];
    snprintf(base, sizeof base, "%s", dir);
    *strrchr(base, '/') = 0;
    if( !failed ) tu_rmrf(base);
  }
  printf("concurrent: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
