/*
** Crash harness.  A writer process commits numbered transactions (the
** workload of workload.h) through the C API or through SQL, and reports
** each one on a pipe only after its commit returned.  This process kills
** the writer with SIGKILL at a random moment, reopens the store and checks
** that:
**   - the store opens (a torn tail is cut, nothing is reported corrupt);
**   - it holds exactly the state after commit j, for the j its counter key
**     names: no partial transaction and no rolled-back one is visible;
**   - j >= the last acknowledged commit in sync modes full and normal (a
**     killed process loses nothing those modes promise), and j is at most
**     one past it (the commit in flight) in every mode;
**   - the store accepts writes again.
** Segments are small (rotation every few transactions) and compaction runs
** both automatically (a small compact_threshold) and by request, so kills
** land in rotation, compaction and recovery too.
**
**   crash [-r ROUNDS] [-m full|normal|off|all] [-a c|sql|all] [-s SEED]
**         [-t MAXMS] [-d DIR] [-x EXTENSION]
**
** Prints one line per (interface, sync mode) with rounds, commits checked
** and losses, then "crash: P passed, F failed"; exits non-zero on any loss
** or check failure.
*/
#include "workload.h"
#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SEG_SIZE "8192"
#define COMPACT_AT "16384"

static const char *mode_name[] = { "full", "normal", "off" };
static const char *ext_path = "build/tinkv";

/* Figures of one (interface, mode) run. */
typedef struct figures {
  long rounds, acked, checked, lost, dropped, bad;
} figures;

/* Write all of buf to fd or exit (the writer's acknowledgement). */
static void ack(int fd, uint32_t n){
  if( write(fd, &n, sizeof n)!=(ssize_t)sizeof n ) _exit(5);
}

/* Options of the C API writer and checker. */
static tkv_options store_options(int mode, int create){
  tkv_options o;
  tkv_options_init(&o);
  o.sync = (tkv_sync_mode)mode;
  o.max_file_size = atoi(SEG_SIZE);
  o.compact_threshold = atoi(COMPACT_AT);
  o.create = create;
  return o;
}

/* The C API writer: commits start, start+1, ... until killed. */
static void writer_c(const char *dir, int mode, uint32_t start, int fd){
  tkv_options o = store_options(mode, 1);
  tkv_db *db;
  int rc = tkv_open(dir, &o, &db);
  if( rc ){ fprintf(stderr, "writer: open: %s\n", tkv_errmsg()); _exit(3); }
  for(uint32_t n=start; ; n++){
    if( n%13==0 ){
      /* A transaction that is rolled back: it must leave no trace. */
      rc = tkv_begin(db);
      if( !rc ) rc = tkv_put(db, "k000", 4, "rolled back", 11);
      if( !rc ) rc = tkv_put(db, WL_COUNTER, 3, "999999", 6);
      if( !rc ) rc = tkv_rollback(db);
      if( rc ){ fprintf(stderr, "writer: rollback: %s\n", tkv_errmsg()); _exit(4); }
    }
    rc = wl_run_txn(db, n);
    if( rc ){ fprintf(stderr, "writer: commit %u: %s\n", n, wl_err); _exit(4); }
    ack(fd, n);
    if( n%29==0 ){
      rc = tkv_compact(db, NULL);
      if( rc && rc!=TKV_BUSY ){
        fprintf(stderr, "writer: compact: %s\n", tkv_errmsg());
        _exit(4);
      }
    }
  }
}

/* Run SQL, exit the writer on error. */
static void sql_do(sqlite3 *db, const char *sql){
  char *err = NULL;
  if( sqlite3_exec(db, sql, NULL, NULL, &err) ){
    fprintf(stderr, "writer: %s: %s\n", sql, err);
    _exit(4);
  }
}

/* Open the database file next to the store with the extension loaded and
** the tinkv table kv created (if not yet). NULL on error (message printed). */
static sqlite3 *sql_open(const char *dir, int mode){
  char file[4200], *sql, *err = NULL;
  sqlite3 *db = NULL;
  snprintf(file, sizeof file, "%s.db", dir);
  if( sqlite3_open(file, &db) ){
    fprintf(stderr, "open %s: %s\n", file, sqlite3_errmsg(db));
    sqlite3_close(db);
    return NULL;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_enable_load_extension(db, 1);
  if( sqlite3_load_extension(db, ext_path, NULL, &err) ){
    fprintf(stderr, "load %s: %s\n", ext_path, err);
    sqlite3_free(err);
    sqlite3_close(db);
    return NULL;
  }
  sql = sqlite3_mprintf("CREATE VIRTUAL TABLE IF NOT EXISTS kv USING "
                        "tinkv(path='%q', sync=%s, max_file_size=" SEG_SIZE
                        ", compact_threshold=" COMPACT_AT ")",
                        dir, mode_name[mode]);
  if( sqlite3_exec(db, sql, NULL, NULL, &err) ){
    fprintf(stderr, "%s: %s\n", sql, err);
    sqlite3_free(err);
    sqlite3_free(sql);
    sqlite3_close(db);
    return NULL;
  }
  sqlite3_free(sql);
  return db;
}

/* The SQL writer: the same transactions through INSERT/DELETE/COMMIT. */
static void writer_sql(const char *dir, int mode, uint32_t start, int fd){
  sqlite3 *db = sql_open(dir, mode);
  sqlite3_stmt *ins = NULL, *del = NULL;
  wl_op ops[WL_MAXOPS];
  if( !db ) _exit(3);
  if( sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO kv(key, value) "
                         "VALUES(?1, ?2)", -1, &ins, NULL)
   || sqlite3_prepare_v2(db, "DELETE FROM kv WHERE key=?1", -1, &del, NULL) ){
    fprintf(stderr, "writer: prepare: %s\n", sqlite3_errmsg(db));
    _exit(4);
  }
  for(uint32_t n=start; ; n++){
    int nop = wl_txn(n, ops);
    char key[8], num[12];
    if( n%13==0 ){
      sql_do(db, "BEGIN; INSERT OR REPLACE INTO kv VALUES('k000', 'rolled back');"
                 "INSERT OR REPLACE INTO kv VALUES('__n', '999999'); ROLLBACK");
    }
    sql_do(db, "BEGIN");
    for(int i=0; i<=nop; i++){
      sqlite3_stmt *st = (i<nop && ops[i].del) ? del : ins;
      if( i<nop ){
        wl_key(ops[i].key, key);
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        if( !ops[i].del ){
          sqlite3_bind_blob(st, 2, ops[i].val, (int)ops[i].vlen, SQLITE_TRANSIENT);
        }
      }else{
        snprintf(num, sizeof num, "%u", n);
        sqlite3_bind_text(st, 1, WL_COUNTER, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, num, (int)strlen(num), SQLITE_TRANSIENT);
      }
      if( sqlite3_step(st)!=SQLITE_DONE ){
        fprintf(stderr, "writer: commit %u: %s\n", n, sqlite3_errmsg(db));
        _exit(4);
      }
      sqlite3_reset(st);
    }
    sql_do(db, "COMMIT");
    ack(fd, n);
    if( n%29==0 ) sql_do(db, "SELECT tinkv_compact('kv')");
  }
}

/* Check the store after a kill through the C API: *pj receives the commit
** it holds.  0 if good, else -1 with why. */
static int check_c(const char *dir, int mode, wl_model *m, uint32_t *pj,
                   char *why, size_t nwhy){
  tkv_options o = store_options(mode, 0);
  tkv_db *db;
  int rc = tkv_open(dir, &o, &db);
  *pj = 0;
  if( rc==TKV_NOTSTORE || (rc==TKV_INVALID && access(dir, F_OK)) ){
    wl_model_to(m, 0);     /* killed before the store existed */
    return 0;
  }
  if( rc ){
    snprintf(why, nwhy, "reopen: %s: %s", tkv_strerror(rc), tkv_errmsg());
    return -1;
  }
  rc = wl_read_counter(db, pj);
  if( rc ){
    snprintf(why, nwhy, "read counter: %s", tkv_errmsg());
    tkv_close(db);
    return -1;
  }
  wl_model_to(m, *pj);
  if( wl_check_store(db, m, why, nwhy) ){ tkv_close(db); return -1; }
  rc = tkv_put(db, "__probe", 7, "written after a crash", 21);
  if( rc ){
    snprintf(why, nwhy, "write after reopen: %s", tkv_errmsg());
    tkv_close(db);
    return -1;
  }
  rc = tkv_close(db);
  if( rc ){ snprintf(why, nwhy, "close: %s", tkv_errmsg()); return -1; }
  return 0;
}

/* The same check through SQL. */
static int check_sql(const char *dir, int mode, wl_model *m, uint32_t *pj,
                     char *why, size_t nwhy){
  sqlite3 *db;
  sqlite3_stmt *st = NULL;
  int rc, count = 0, bad = 0;
  *pj = 0;
  db = sql_open(dir, mode);
  if( !db ){ snprintf(why, nwhy, "reopen through SQL failed"); return -1; }
  rc = sqlite3_prepare_v2(db, "SELECT key, value FROM kv", -1, &st, NULL);
  if( rc==SQLITE_OK ) rc = SQLITE_ROW;
  while( rc==SQLITE_ROW && (rc = sqlite3_step(st))==SQLITE_ROW ){
    const char *k = (const char*)sqlite3_column_text(st, 0);
    if( k && !strcmp(k, WL_COUNTER) ){
      *pj = (uint32_t)strtoul((const char*)sqlite3_column_text(st, 1), NULL, 10);
    }
  }
  if( rc!=SQLITE_DONE ){
    snprintf(why, nwhy, "scan: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return -1;
  }
  wl_model_to(m, *pj);
  sqlite3_reset(st);
  while( (rc = sqlite3_step(st))==SQLITE_ROW ){
    const char *k = (const char*)sqlite3_column_text(st, 0);
    const void *v;
    int vlen, i;
    if( !k || !strncmp(k, "__", 2) ) continue;
    count++;
    v = sqlite3_column_blob(st, 1);
    vlen = sqlite3_column_bytes(st, 1);
    i = (k[0]=='k') ? atoi(k + 1) : -1;
    if( i<0 || i>=WL_NKEYS || !m->val[i] || (size_t)vlen!=m->vlen[i]
     || memcmp(v, m->val[i], (size_t)vlen) ){
      snprintf(why, nwhy, "row %s differs from the state after commit %u", k,
               *pj);
      bad = 1;
      break;
    }
  }
  sqlite3_finalize(st);
  if( !bad && count!=wl_model_count(m) ){
    snprintf(why, nwhy, "%d rows after commit %u, expected %d", count, *pj,
             wl_model_count(m));
    bad = 1;
  }
  if( !bad && sqlite3_exec(db, "INSERT OR REPLACE INTO kv VALUES('__probe', "
                           "'written after a crash')", NULL, NULL, NULL) ){
    snprintf(why, nwhy, "write after reopen: %s", sqlite3_errmsg(db));
    bad = 1;
  }
  if( sqlite3_close(db) && !bad ){
    snprintf(why, nwhy, "close: %s", sqlite3_errmsg(db));
    bad = 1;
  }
  return bad ? -1 : 0;
}

/* Microseconds of a monotonic clock. */
static long long now_us(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
** One run: `rounds` kills of a writer using interface `sql` in sync `mode`
** on a fresh store under base.  Returns 0 if nothing was lost or wrong.
*/
static int run(const char *base, int sql, int mode, long rounds, int maxms,
               uint64_t *seed, figures *f){
  char dir[4096], why[1024];
  wl_model m;
  uint32_t j = 0;
  memset(&m, 0, sizeof m);
  memset(f, 0, sizeof *f);
  snprintf(dir, sizeof dir, "%s/%s-%s", base, sql ? "sql" : "c", mode_name[mode]);
  tu_rmrf(dir);
  {
    char dbf[4200];
    snprintf(dbf, sizeof dbf, "%s.db", dir);
    unlink(dbf);
  }
  for(long r=0; r<rounds; r++){
    int p[2], status;
    uint32_t acked = j, a, got;
    long long deadline;
    int early;
    pid_t pid;
    if( pipe(p) ){ perror("pipe"); exit(2); }
    fflush(NULL);
    pid = fork();
    if( pid<0 ){ perror("fork"); exit(2); }
    if( pid==0 ){
      close(p[0]);
      if( sql ) writer_sql(dir, mode, j + 1, p[1]);
      else writer_c(dir, mode, j + 1, p[1]);
      _exit(0);
    }
    close(p[1]);
    /* Let it run for a random time, collecting acknowledgements: one
    ** round in four from its start (kills in open and recovery), the
    ** others from its first commit. */
    early = tu_rand(seed) % 4 == 0;
    deadline = now_us() + (long long)(tu_rand(seed) % ((uint64_t)maxms * 1000 + 1));
    for(;;){
      struct pollfd pf = { p[0], POLLIN, 0 };
      long long left = deadline - now_us();
      int pr;
      if( left<=0 ) break;
      pr = poll(&pf, 1, (int)(left / 1000) + 1);
      if( pr<0 && errno==EINTR ) continue;
      if( pr<=0 ) break;
      if( read(p[0], &a, sizeof a)!=(ssize_t)sizeof a ) break;
      if( !early && acked==j ){
        deadline = now_us()
                 + (long long)(tu_rand(seed) % ((uint64_t)maxms * 1000 + 1));
      }
      acked = a;
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    while( read(p[0], &a, sizeof a)==(ssize_t)sizeof a ) acked = a;
    close(p[0]);
    f->rounds++;
    if( !WIFSIGNALED(status) ){
      fprintf(stderr, "crash %s/%s round %ld: the writer exited (status %d)\n",
              sql ? "sql" : "c", mode_name[mode], r, status);
      f->bad++;
      break;
    }
    f->acked += acked - j;
    got = 0;
    if( (sql ? check_sql : check_c)(dir, mode, &m, &got, why, sizeof why) ){
      fprintf(stderr, "crash %s/%s round %ld: %s\n", sql ? "sql" : "c",
              mode_name[mode], r, why);
      f->bad++;
      break;
    }
    if( got < acked ){
      if( mode==TKV_SYNC_OFF ){
        f->dropped += acked - got;
      }else{
        fprintf(stderr, "crash %s/%s round %ld: LOST commits %u..%u (store "
                "holds commit %u)\n", sql ? "sql" : "c", mode_name[mode], r,
                got + 1, acked, got);
        f->lost += acked - got;
      }
    }else if( got > acked + 1 ){
      fprintf(stderr, "crash %s/%s round %ld: store holds commit %u, only %u "
              "acknowledged\n", sql ? "sql" : "c", mode_name[mode], r, got, acked);
      f->bad++;
      break;
    }
    if( got>j ) f->checked += (long)((got < acked ? got : acked) - j);
    j = got;
  }
  wl_model_clear(&m);
  return f->lost || f->bad ? -1 : 0;
}

int main(int argc, char **argv){
  long rounds = 20;
  int maxms = 30, opt, amask = 3, mlo = 0, mhi = 2, passed = 0, failed = 0;
  uint64_t seed = (uint64_t)time(NULL);
  const char *base = NULL;
  while( (opt = getopt(argc, argv, "r:m:a:s:t:d:x:"))!=-1 ){
    switch( opt ){
      case 'r': rounds = atol(optarg); break;
      case 'm':
        if( !strcmp(optarg, "all") ){ mlo = 0; mhi = 2; break; }
        for(mlo=0; mlo<3 && strcmp(optarg, mode_name[mlo]); mlo++){}
        if( mlo==3 ){ fprintf(stderr, "unknown mode %s\n", optarg); return 2; }
        mhi = mlo;
        break;
      case 'a': amask = !strcmp(optarg, "c") ? 1 : !strcmp(optarg, "sql") ? 2 : 3; break;
      case 's': seed = strtoull(optarg, NULL, 10); break;
      case 't': maxms = atoi(optarg); break;
      case 'd': base = optarg; break;
      case 'x': ext_path = optarg; break;
      default:
        fprintf(stderr, "usage: crash [-r ROUNDS] [-m full|normal|off|all] "
                "[-a c|sql|all] [-s SEED] [-t MAXMS] [-d DIR] [-x EXT]\n");
        return 2;
    }
  }
  if( !base ) base = tu_tmpdir("crash");
  else mkdir(base, 0755);
  printf("crash: seed %llu, %ld rounds per run, kills within %d ms\n",
         (unsigned long long)seed, rounds, maxms);
  for(int sql=0; sql<2; sql++){
    if( !(amask & (1<<sql)) ) continue;
    for(int mode=mlo; mode<=mhi; mode++){
      figures f;
      long long t0 = now_us();
      int rc = run(base, sql, mode, rounds, maxms, &seed, &f);
      printf("crash %s/%s: %ld rounds, %ld commits acknowledged, %ld checked, "
             "%ld lost, %ld dropped%s, %ld bad, %.1f s\n", sql ? "sql" : "c",
             mode_name[mode], f.rounds, f.acked, f.checked, f.lost, f.dropped,
             mode==TKV_SYNC_OFF ? " (allowed by sync=off)" : "", f.bad,
             (double)(now_us() - t0) / 1e6);
      fflush(stdout);
      if( rc ) failed++; else passed++;
    }
  }
  if( !failed ) tu_rmrf(base);
  else printf("crash: stores kept in %s\n", base);
  printf("crash: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
