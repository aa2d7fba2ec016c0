/*
** Several processes on one store: what sharing costs and what it buys.
**
**   (1) reads: random tkv_get of a store of N keys (16-byte keys, 100-byte
**       values) by one process with no writer, by one process while another
**       process writes, and by four processes while one writes; aggregate
**       gets/s and the latency of one get.  The writer commits a
**       transaction of 10 puts and then sleeps 1 ms, again and again
**       (sync=normal), so every reader catches up all the time.
**   (2) writes: 2, 4 and 8 processes each committing transactions of 10
**       puts of random keys among 100,000 (every process writes keys the
**       others write), busy timeout 5 s, sync=normal; against a native
**       SQLite WITHOUT ROWID table in WAL mode (synchronous=NORMAL,
**       busy_timeout 5000 ms, BEGIN IMMEDIATE, 10 prepared INSERT OR
**       REPLACE, COMMIT) under the same processes and workload.
**       Aggregate transactions/s and the latency of one transaction
**       (begin to commit returned, waiting included).
**   (3) catching up: a reader process has the store of N keys open; another
**       process commits 1,000 (then 100,000) updates in transactions of
**       100; the reader's next tkv_get, which first reads what was
**       appended, is timed, beside a get with nothing to catch up.
**   (4) open: a store of N keys (one bulk load, closed: sealed segments
**       with hints and the active one), opened by a new process alone
**       (the first open: hints and the active segment's scan) and while
**       another process has it open; and the resident memory of the open
**       process (each process holds its own keydir).
**   (5) merging beside another process: one process updates random keys
**       among N (3N updates in transactions of 100, sync=normal) while
**       its merge thread runs, alone and while a read-only process has
**       the store open and reads a key every millisecond; peak disk use
**       against the live data, and at the end (2 s after the last commit).  Before merges could run beside
**       other processes, any other open process stopped them.
**   (6) a read transaction beside a writer: one process updates random
**       keys among N (3N updates in transactions of 100, sync=normal, its
**       merge thread running), with no read transaction open and while
**       another handle of the process holds one (tkv_read_begin) from
**       start to end; updates/s, commit latency, and how long the
**       tkv_read_end of a read transaction that saw all of it takes.
**
** Every process is a fork of this one and opens the store itself (a fork
** never inherits an open store).  Latencies are kept in a shared mapping
** and summarized over all processes (p50, p99, p99.9, max).
**
** Environment: BENCH_N (keys of the read/catch-up/open store, default
** 1000000), BENCH_SHARE_SECS (seconds of each timed run, default 3),
** BENCH_REPS (runs of (1) and (2); medians of the rates, latencies of the
** median run; default 3), BENCH_DIR, BENCH_ENGINES (tinkv, SQLite),
** BENCH_SHARE_PARTS (the parts to run, e.g. "36"; default all).
*/
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "tinkv.h"

#include "bench_util.h"

#define MAXP 9                   /* processes of one run */
#define LAT_CAP (1u << 21)       /* latencies kept per process */
#define TXN_PUTS 10              /* puts per write transaction */
#define WRITE_KEYS 100000        /* key space of the write runs */
#define CATCH_TXN 100            /* updates per transaction when catching up */

/* The mapping every process of a run shares. */
typedef struct shared {
  _Atomic int ready;             /* processes that are set up */
  _Atomic int go, stop;
  _Atomic int step, done;        /* catch-up: rounds asked for, finished */
  double ops[MAXP];              /* operations each process completed */
  double cpu[MAXP];              /* CPU seconds each process used running */
  uint32_t nlat[MAXP];
  float lat[MAXP][LAT_CAP];      /* microseconds */
} shared;

static bench_cfg cfg;
static double secs = 3;
static shared *sh;

/* ------------------------------------------------------------ helpers. */

static void tk_check(int rc, const char *what) {
  if (rc != TKV_OK) bench_die("tinkv %s: %s (%s)", what, tkv_strerror(rc),
                              tkv_errmsg());
}

static tkv_db *tk_open(const char *dir, tkv_sync_mode sync) {
  tkv_options o;
  tkv_db *db;
  tkv_options_init(&o);
  o.create = 1;
  o.sync = sync;
  o.busy_timeout = 5000;
  tk_check(tkv_open(dir, &o, &db), "open");
  return db;
}

static void sleep_ms(double ms) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000) * 1e6);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* A small xorshift generator per process. */
static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* CPU seconds this process has used. */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void lat_add(int me, double us) {
  if (sh->nlat[me] < LAT_CAP) sh->lat[me][sh->nlat[me]++] = (float)us;
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* p50, p99, p99.9, max (microseconds) of the latencies of processes
** [from, to) of the last run. */
static void lat_summary(int from, int to, double *q) {
  size_t n = 0, k = 0;
  float *all;
  for (int i = from; i < to; i++) n += sh->nlat[i];
  q[0] = q[1] = q[2] = q[3] = NAN;
  if (n == 0) return;
  all = malloc(n * sizeof *all);
  if (!all) bench_die("out of memory");
  for (int i = from; i < to; i++) {
    memcpy(all + k, sh->lat[i], sh->nlat[i] * sizeof *all);
    k += sh->nlat[i];
  }
  qsort(all, n, sizeof *all, cmp_float);
  q[0] = all[(size_t)(0.5 * (double)(n - 1))];
  q[1] = all[(size_t)(0.99 * (double)(n - 1))];
  q[2] = all[(size_t)(0.999 * (double)(n - 1))];
  q[3] = all[n - 1];
  free(all);
}

static void reset_shared(void) {
  atomic_store(&sh->ready, 0);
  atomic_store(&sh->go, 0);
  atomic_store(&sh->stop, 0);
  atomic_store(&sh->step, 0);
  atomic_store(&sh->done, 0);
  for (int i = 0; i < MAXP; i++) {
    sh->ops[i] = 0;
    sh->cpu[i] = 0;
    sh->nlat[i] = 0;
  }
}

/* Wait until every process is set up, then start them all together. */
static void child_ready(void) {
  atomic_fetch_add(&sh->ready, 1);
  while (!atomic_load(&sh->go)) sleep_ms(0.1);
}

typedef void (*proc_fn)(int me, void *arg);

/*
** Run np processes: process i runs fns[i](i, arg).  Once all are set up
** they start together, run for `secs` seconds and are told to stop.
** Exits if any of them fails.
*/
static void run_procs(int np, proc_fn *fns, void *arg) {
  pid_t pid[MAXP];
  int bad = 0;
  reset_shared();
  fflush(stdout);
  fflush(stderr);
  for (int i = 0; i < np; i++) {
    pid[i] = fork();
    if (pid[i] < 0) bench_die("fork: %s", strerror(errno));
    if (pid[i] == 0) {
      fns[i](i, arg);
      fflush(stdout);
      _exit(0);
    }
  }
  while (atomic_load(&sh->ready) < np) {
    int st;
    for (int i = 0; i < np; i++)
      if (pid[i] > 0 && waitpid(pid[i], &st, WNOHANG) == pid[i])
        bench_die("a benchmark process failed while setting up");
    sleep_ms(1);
  }
  atomic_store(&sh->go, 1);
  sleep_ms(secs * 1000);
  atomic_store(&sh->stop, 1);
  for (int i = 0; i < np; i++) {
    int st = 0;
    while (waitpid(pid[i], &st, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad = 1;
  }
  if (bad) bench_die("a benchmark process failed");
}

/* Fill `dir` with keys [0, n) through one handle, then close it. */
static void tk_fill_here(const char *dir, uint64_t n) {
  tkv_db *db;
  uint8_t k[BENCH_KEY_LEN];
  bench_rmtree(dir);
  db = tk_open(dir, TKV_SYNC_OFF);
  for (uint64_t i = 0; i < n; i++) {
    if (i % 1000 == 0) tk_check(tkv_begin(db), "begin");
    bench_key(i, k);
    tk_check(tkv_put(db, k, BENCH_KEY_LEN, bench_val(i, 0), BENCH_VAL_LEN),
             "put");
    if (i % 1000 == 999 || i + 1 == n) tk_check(tkv_commit(db), "commit");
  }
  tk_check(tkv_close(db), "close");
}

/* tk_fill(dir, cfg.n) in a child process, so that this one's heap stays
** small (later forks would otherwise reuse its freed pages, hiding the
** memory an open takes). */
static void fill_child(void *arg, double *out) {
  tk_fill_here(arg, cfg.n);
  out[0] = 0;
}
static void tk_fill(char *dir) {
  double x;
  if (bench_run_child(fill_child, dir, &x, 1)) bench_die("fill failed");
}

/* --------------------------------------------------------- (1) reads. */

static char read_dir[4096];

static void reader(int me, void *arg) {
  tkv_db *db = tk_open(read_dir, TKV_SYNC_NORMAL);
  uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(me + 1), n = 0;
  uint8_t k[BENCH_KEY_LEN];
  double c0;
  (void)arg;
  child_ready();
  c0 = cpu_now();
  while (!atomic_load(&sh->stop)) {
    for (int j = 0; j < 64; j++) {
      void *v;
      size_t vl;
      double t0 = bench_now();
      bench_key(rnd(&s) % cfg.n, k);
      tk_check(tkv_get(db, k, BENCH_KEY_LEN, &v, &vl), "get");
      tkv_free(v);
      lat_add(me, (bench_now() - t0) * 1e6);
      n++;
    }
  }
  sh->ops[me] = (double)n;
  sh->cpu[me] = cpu_now() - c0;
  tk_check(tkv_close(db), "close");
}

/* The writer of the read runs: 10 puts, commit, 1 ms pause. */
static void read_writer(int me, void *arg) {
  tkv_db *db = tk_open(read_dir, TKV_SYNC_NORMAL);
  uint64_t s = 0xabcdef12345ull, n = 0;
  uint8_t k[BENCH_KEY_LEN];
  (void)arg;
  child_ready();
  while (!atomic_load(&sh->stop)) {
    tk_check(tkv_begin(db), "begin");
    for (int j = 0; j < TXN_PUTS; j++) {
      uint64_t i = rnd(&s) % cfg.n;
      bench_key(i, k);
      tk_check(tkv_put(db, k, BENCH_KEY_LEN, bench_val(i, 1), BENCH_VAL_LEN),
               "put");
    }
    tk_check(tkv_commit(db), "commit");
    n++;
    sleep_ms(1);
  }
  sh->ops[me] = (double)n;
  tk_check(tkv_close(db), "close");
}

/* One read configuration: nr readers, with or without the writer.
** res: gets/s, p50, p99, p99.9, max, writer txn/s, cores the readers
** used (their CPU seconds over the run's), gets per CPU second. */
static void read_run(int nr, int writer, double *res) {
  proc_fn fns[MAXP];
  double q[4], ops = 0, cpu = 0;
  for (int i = 0; i < nr; i++) fns[i] = reader;
  if (writer) fns[nr] = read_writer;
  run_procs(nr + writer, fns, NULL);
  for (int i = 0; i < nr; i++) {
    ops += sh->ops[i];
    cpu += sh->cpu[i];
  }
  lat_summary(0, nr, q);
  res[0] = ops / secs;
  memcpy(res + 1, q, sizeof q);
  res[5] = writer ? sh->ops[nr] / secs : NAN;
  res[6] = cpu / secs;
  res[7] = cpu > 0 ? ops / cpu : NAN;
}

/* -------------------------------------------------------- (2) writes. */

static char write_dir[4096], sql_file[4200];

static void tk_writer(int me, void *arg) {
  tkv_db *db = tk_open(write_dir, TKV_SYNC_NORMAL);
  uint64_t s = 0x2545f4914f6cdd1dull * (uint64_t)(me + 7), n = 0;
  uint8_t k[BENCH_KEY_LEN];
  (void)arg;
  child_ready();
  while (!atomic_load(&sh->stop)) {
    double t0 = bench_now();
    tk_check(tkv_begin(db), "begin");
    for (int j = 0; j < TXN_PUTS; j++) {
      uint64_t i = rnd(&s) % WRITE_KEYS;
      bench_key(i, k);
      tk_check(tkv_put(db, k, BENCH_KEY_LEN, bench_val(i, 2), BENCH_VAL_LEN),
               "put");
    }
    tk_check(tkv_commit(db), "commit");
    lat_add(me, (bench_now() - t0) * 1e6);
    n++;
  }
  sh->ops[me] = (double)n;
  tk_check(tkv_close(db), "close");
}

static void sq_check(sqlite3 *db, int rc, const char *what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
    bench_die("sqlite %s: %s", what, sqlite3_errmsg(db));
}

static sqlite3 *sq_open(void) {
  sqlite3 *db;
  int rc = sqlite3_open(sql_file, &db);
  sq_check(db, rc, "open");
  sqlite3_busy_timeout(db, 5000);
  sq_check(db, sqlite3_exec(db, "PRAGMA journal_mode=WAL;"
                            "PRAGMA synchronous=NORMAL", NULL, NULL, NULL),
           "pragma");
  return db;
}

static void sq_writer(int me, void *arg) {
  sqlite3 *db = sq_open();
  sqlite3_stmt *put;
  uint64_t s = 0x2545f4914f6cdd1dull * (uint64_t)(me + 7), n = 0;
  uint8_t k[BENCH_KEY_LEN];
  (void)arg;
  sq_check(db, sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO kv VALUES(?,?)",
                                  -1, &put, NULL), "prepare");
  child_ready();
  while (!atomic_load(&sh->stop)) {
    double t0 = bench_now();
    sq_check(db, sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
             "begin");
    for (int j = 0; j < TXN_PUTS; j++) {
      uint64_t i = rnd(&s) % WRITE_KEYS;
      bench_key(i, k);
      sqlite3_bind_blob(put, 1, k, BENCH_KEY_LEN, SQLITE_STATIC);
      sqlite3_bind_blob(put, 2, bench_val(i, 2), BENCH_VAL_LEN, SQLITE_STATIC);
      sq_check(db, sqlite3_step(put), "insert");
      sqlite3_reset(put);
    }
    sq_check(db, sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), "commit");
    lat_add(me, (bench_now() - t0) * 1e6);
    n++;
  }
  sh->ops[me] = (double)n;
  sqlite3_finalize(put);
  sqlite3_close(db);
}

static void tk_write_setup(void) {
  tkv_db *db;
  uint8_t k[BENCH_KEY_LEN];
  bench_rmtree(write_dir);
  db = tk_open(write_dir, TKV_SYNC_OFF);
  tk_check(tkv_begin(db), "begin");
  for (uint64_t i = 0; i < WRITE_KEYS; i++) {
    bench_key(i, k);
    tk_check(tkv_put(db, k, BENCH_KEY_LEN, bench_val(i, 0), BENCH_VAL_LEN),
             "put");
    if (i % 1000 == 999) {
      tk_check(tkv_commit(db), "commit");
      tk_check(tkv_begin(db), "begin");
    }
  }
  tk_check(tkv_commit(db), "commit");
  tk_check(tkv_close(db), "close");
}

static void sq_write_setup(void) {
  sqlite3 *db;
  sqlite3_stmt *put;
  uint8_t k[BENCH_KEY_LEN];
  char wal[4300];
  unlink(sql_file);
  snprintf(wal, sizeof wal, "%s-wal", sql_file);
  unlink(wal);
  snprintf(wal, sizeof wal, "%s-shm", sql_file);
  unlink(wal);
  db = sq_open();
  sq_check(db, sqlite3_exec(db, "CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB)"
                            " WITHOUT ROWID; BEGIN", NULL, NULL, NULL),
           "create");
  sq_check(db, sqlite3_prepare_v2(db, "INSERT INTO kv VALUES(?,?)", -1, &put,
                                  NULL), "prepare");
  for (uint64_t i = 0; i < WRITE_KEYS; i++) {
    bench_key(i, k);
    sqlite3_bind_blob(put, 1, k, BENCH_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(put, 2, bench_val(i, 0), BENCH_VAL_LEN, SQLITE_STATIC);
    sq_check(db, sqlite3_step(put), "insert");
    sqlite3_reset(put);
  }
  sqlite3_finalize(put);
  sq_check(db, sqlite3_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE)",
                            NULL, NULL, NULL), "commit");
  sqlite3_close(db);
}

/* One write configuration: np processes of `fn` on a fresh store.
** res: txn/s, p50, p99, p99.9, max. */
static void write_run(int np, int sql, double *res) {
  proc_fn fns[MAXP];
  double q[4], ops = 0;
  if (sql) sq_write_setup(); else tk_write_setup();
  for (int i = 0; i < np; i++) fns[i] = sql ? sq_writer : tk_writer;
  run_procs(np, fns, NULL);
  for (int i = 0; i < np; i++) ops += sh->ops[i];
  lat_summary(0, np, q);
  res[0] = ops / secs;
  memcpy(res + 1, q, sizeof q);
}

/* ---------------------------------------------------- (3) catching up. */

static int catch_records, catch_rounds;

/* Waits for each round's writes, then times the next get (latency slot
** 0) and one more with nothing new (slot 1). */
static void catch_reader(int me, void *arg) {
  tkv_db *db = tk_open(read_dir, TKV_SYNC_NORMAL);
  uint64_t s = 0x1234567ull;
  uint8_t k[BENCH_KEY_LEN];
  (void)me;
  (void)arg;
  child_ready();
  for (int r = 1; r <= catch_rounds; r++) {
    for (int j = 0; j < 2; j++) {
      void *v;
      size_t vl;
      double t0;
      if (j == 0)
        while (atomic_load(&sh->done) < r) sleep_ms(0.05);
      bench_key(rnd(&s) % cfg.n, k);
      t0 = bench_now();
      tk_check(tkv_get(db, k, BENCH_KEY_LEN, &v, &vl), "get");
      lat_add(j, (bench_now() - t0) * 1e6);
      tkv_free(v);
    }
    atomic_store(&sh->step, r);
  }
  tk_check(tkv_close(db), "close");
}

static void catch_writer(int me, void *arg) {
  tkv_db *db = tk_open(read_dir, TKV_SYNC_NORMAL);
  uint64_t s = 0x7777777ull;
  uint8_t k[BENCH_KEY_LEN];
  (void)me;
  (void)arg;
  child_ready();
  for (int r = 1; r <= catch_rounds; r++) {
    for (int w = 0; w < catch_records; w++) {
      uint64_t i = rnd(&s) % cfg.n;
      if (w % CATCH_TXN == 0) tk_check(tkv_begin(db), "begin");
      bench_key(i, k);
      tk_check(tkv_put(db, k, BENCH_KEY_LEN, bench_val(i, 3), BENCH_VAL_LEN),
               "put");
      if (w % CATCH_TXN == CATCH_TXN - 1 || w + 1 == catch_records)
        tk_check(tkv_commit(db), "commit");
    }
    atomic_store(&sh->done, r);
    while (atomic_load(&sh->step) < r) sleep_ms(0.05);
  }
  tk_check(tkv_close(db), "close");
}

/* res: p50, p99, max of the catching-up get, p50 of a plain get. */
static void catch_run(int records, int rounds, double *res) {
  proc_fn fns[2] = { catch_reader, catch_writer };
  double q[4];
  pid_t pid[2];
  int bad = 0;
  catch_records = records;
  catch_rounds = rounds;
  reset_shared();
  fflush(stdout);
  for (int i = 0; i < 2; i++) {
    pid[i] = fork();
    if (pid[i] < 0) bench_die("fork: %s", strerror(errno));
    if (pid[i] == 0) {
      fns[i](i, NULL);
      _exit(0);
    }
  }
  while (atomic_load(&sh->ready) < 2) sleep_ms(1);
  atomic_store(&sh->go, 1);
  for (int left = 2; left > 0; left--) {  /* one failing stops the other */
    int st = 0;
    pid_t p = waitpid(-1, &st, 0);
    if (p < 0 && errno == EINTR) { left++; continue; }
    if (p < 0) break;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      bad = 1;
      for (int i = 0; i < 2; i++) if (pid[i] != p) kill(pid[i], SIGKILL);
    }
  }
  if (bad) bench_die("a catch-up process failed");
  lat_summary(0, 1, q);
  res[0] = q[0];
  res[1] = q[1];
  res[2] = q[3];
  lat_summary(1, 2, q);
  res[3] = q[0];
}

/* ----------------------------------------------------------- (4) open. */

/* Resident memory of this process now (VmRSS), bytes. */
static double rss_now(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  double v = NAN;
  if (!f) return NAN;
  while (fgets(line, sizeof line, f)) {
    unsigned long long x;
    if (sscanf(line, "VmRSS: %llu kB", &x) == 1) v = (double)x * 1024;
  }
  fclose(f);
  return v;
}

/* In a new process: out[0] = ms to open, out[1] = RSS growth by the open. */
static void open_child(void *arg, double *out) {
  tkv_db *db;
  tkv_options o;
  double r0, t0;
  (void)arg;
  malloc_trim(0);     /* give back free heap pages inherited from the parent */
  r0 = rss_now();
  tkv_options_init(&o);
  t0 = bench_now();
  tk_check(tkv_open(read_dir, &o, &db), "open");
  out[0] = (bench_now() - t0) * 1e3;
  out[1] = rss_now() - r0;
  tk_check(tkv_close(db), "close");
}

/* A process that holds the store open until killed. */
static pid_t holder_start(void) {
  int pfd[2];
  char c;
  pid_t pid;
  if (pipe(pfd)) bench_die("pipe: %s", strerror(errno));
  fflush(stdout);
  pid = fork();
  if (pid < 0) bench_die("fork: %s", strerror(errno));
  if (pid == 0) {
    tkv_db *db = tk_open(read_dir, TKV_SYNC_NORMAL);
    (void)db;
    if (write(pfd[1], "x", 1) != 1) _exit(1);
    for (;;) pause();
  }
  close(pfd[1]);
  if (read(pfd[0], &c, 1) != 1) bench_die("the holding process failed");
  close(pfd[0]);
  return pid;
}

/* ------------------------------------------------------------ output. */

static const char *us(double v, char *b, size_t n) {
  if (isnan(v)) snprintf(b, n, "-");
  else if (v >= 10000) snprintf(b, n, "%.1f ms", v / 1000);
  else if (v >= 100) snprintf(b, n, "%.0f us", v);
  else snprintf(b, n, "%.1f us", v);
  return b;
}

/* Median over reps of res[r][0], returning the index of the median run
** (its latencies are reported). */
static int median_run(double res[][8], int reps) {
  double v[16];
  double m;
  int best = 0;
  for (int r = 0; r < reps; r++) v[r] = res[r][0];
  m = bench_median(v, reps);
  for (int r = 0; r < reps; r++)
    if (fabs(res[r][0] - m) < fabs(res[best][0] - m)) best = r;
  return best;
}

/* ------------------------------------------- (5) merging beside others. */

/* A read-only process: a get every millisecond until killed. */
static void merge_reader(const char *dir) {
  tkv_options o;
  tkv_db *db;
  uint8_t k[BENCH_KEY_LEN];
  uint64_t s = 7;
  tkv_options_init(&o);
  o.readonly = 1;
  if (tkv_open(dir, &o, &db)) _exit(2);
  for (;;) {
    void *v;
    size_t n;
    bench_key(rnd(&s) % cfg.n, k);
    if (tkv_get(db, k, BENCH_KEY_LEN, &v, &n) == TKV_OK) tkv_free(v);
    else _exit(3);
    sleep_ms(1);
  }
}

/* out: updates/s, peak disk / live, final disk / live, merges. */
static void merge_child(void *arg, double *out) {
  int with_reader = *(int *)arg;
  uint8_t k[BENCH_KEY_LEN];
  uint64_t s = 1, n3 = 3 * cfg.n;
  double live = (double)cfg.n * (BENCH_KEY_LEN + BENCH_VAL_LEN), peak = 0, t0;
  pid_t pid = 0;
  tkv_stats st;
  tkv_db *db;
  tk_fill_here(write_dir, cfg.n);
  if (with_reader) {
    pid = fork();
    if (pid < 0) bench_die("fork: %s", strerror(errno));
    if (pid == 0) merge_reader(write_dir);
  }
  db = tk_open(write_dir, TKV_SYNC_NORMAL);
  t0 = bench_now();
  for (uint64_t i = 0; i < n3; i++) {
    if (i % 100 == 0) tk_check(tkv_begin(db), "begin");
    bench_key(rnd(&s) % cfg.n, k);
    tk_check(tkv_put(db, k, BENCH_KEY_LEN, bench_val(i, 1), BENCH_VAL_LEN),
             "put");
    if (i % 100 == 99 || i + 1 == n3) {
      tk_check(tkv_commit(db), "commit");
      if (i % 20000 == 19999) {
        double d = bench_disk_bytes(write_dir);
        if (d > peak) peak = d;
      }
    }
  }
  out[0] = (double)n3 / (bench_now() - t0);
  sleep_ms(2000);                 /* the last merges and deletions */
  tk_check(tkv_stats_get(db, &st), "stats");
  out[1] = peak / live;
  out[2] = bench_disk_bytes(write_dir) / live;
  out[3] = (double)st.compactions;
  if (pid > 0) {
    int status = 0;
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  }
  tk_check(tkv_close(db), "close");
}

/* (6): out[0] updates/s, out[1..4] commit p50/p99/p99.9/max (us),
** out[5] ms of tkv_read_end, out[6] peak disk against the live data. */
static void rtx_child(void *arg, double *out) {
  int with_read = *(int *)arg;
  uint8_t k[BENCH_KEY_LEN];
  uint64_t s = 7;
  double live = (double)cfg.n * (BENCH_KEY_LEN + BENCH_VAL_LEN), peak = 0;
  double t0, q[4];
  tkv_db *db, *rd;
  tk_fill_here(write_dir, cfg.n);
  db = tk_open(write_dir, TKV_SYNC_NORMAL);
  rd = tk_open(write_dir, TKV_SYNC_NORMAL);
  reset_shared();
  if (with_read) tk_check(tkv_read_begin(rd), "read_begin");
  t0 = bench_now();
  for (uint64_t i = 0; i < 3 * cfg.n; i += 100) {
    double a = bench_now();
    tk_check(tkv_begin(db), "begin");
    for (int j = 0; j < 100; j++) {
      bench_key(rnd(&s) % cfg.n, k);
      tk_check(tkv_put(db, k, BENCH_KEY_LEN, bench_val(i + j, 2),
                       BENCH_VAL_LEN), "put");
    }
    tk_check(tkv_commit(db), "commit");
    lat_add(0, (bench_now() - a) * 1e6);
    if (i % 20000 == 0) {
      double d = bench_disk_bytes(write_dir);
      if (d > peak) peak = d;
    }
  }
  out[0] = (double)(3 * cfg.n) / (bench_now() - t0);
  lat_summary(0, 1, q);
  for (int i = 0; i < 4; i++) out[1 + i] = q[i];
  out[5] = NAN;
  if (with_read) {
    double a = bench_now();
    tk_check(tkv_read_end(rd), "read_end");
    out[5] = (bench_now() - a) * 1e3;
  }
  out[6] = peak / live;
  tk_check(tkv_close(rd), "close");
  tk_check(tkv_close(db), "close");
}

/* Whether part n runs: all of them, or those BENCH_SHARE_PARTS lists
** (digits, e.g. "46"). */
static int part(int n) {
  const char *p = getenv("BENCH_SHARE_PARTS");
  return !p || !*p || strchr(p, '0' + n) != NULL;
}

int main(void) {
  char b[8][32], dflt[4096];
  const char *e = getenv("BENCH_SHARE_SECS");
  double base = NAN, one = NAN, four = NAN;
  int reps;
  snprintf(dflt, sizeof dflt, "build/bench/tmp");
  bench_cfg_load(&cfg, dflt);
  reps = cfg.reps > 15 ? 15 : cfg.reps;
  if (e && *e) secs = atof(e);
  if (!(secs > 0)) bench_die("bad BENCH_SHARE_SECS");
  bench_mkdirs(cfg.dir);
  snprintf(read_dir, sizeof read_dir, "%s/share-read", cfg.dir);
  snprintf(write_dir, sizeof write_dir, "%s/share-write", cfg.dir);
  snprintf(sql_file, sizeof sql_file, "%s/share-write.db", cfg.dir);
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) bench_die("mmap: %s", strerror(errno));

  printf("# Several processes on one store\n\n");
  bench_print_machine(cfg.dir);
  printf("\nN = %llu keys (16-byte keys, 100-byte values), %.0f s per run, "
         "median of %d runs\n", (unsigned long long)cfg.n, secs, reps);

  if (bench_selected(&cfg, "tinkv") && part(1)) {
    static const struct { int nr, w; const char *what; } rc[] = {
      { 1, 0, "1 reader, no writer" },
      { 1, 1, "1 reader, 1 writer" },
      { 4, 1, "4 readers, 1 writer" },
    };
    double res[15][8];
    tk_fill(read_dir);
    printf("\n## (1) Readers: random tkv_get while one process writes\n\n");
    printf("The writer commits 10 puts (sync=normal), then pauses 1 ms.\n\n");
    printf("| processes | gets/s (all readers) | vs 1 reader | p50 | p99 | "
           "p99.9 | max | writer txn/s | cores the readers got | gets per "
           "CPU second |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t c = 0; c < sizeof rc / sizeof rc[0]; c++) {
      int m;
      for (int r = 0; r < reps; r++) read_run(rc[c].nr, rc[c].w, res[r]);
      m = median_run(res, reps);
      if (c == 0) base = res[m][0];
      if (c == 1) one = res[m][0];
      if (c == 2) four = res[m][0];
      printf("| %s | %s | %s | %s | %s | %s | %s | %s | %.2f | %s |\n",
             rc[c].what,
             bench_fmt_rate(res[m][0], b[0], 32),
             c == 0 ? "-" : bench_fmt_ratio(res[m][0], one, b[1], 32),
             us(res[m][1], b[2], 32), us(res[m][2], b[3], 32),
             us(res[m][3], b[4], 32), us(res[m][4], b[5], 32),
             rc[c].w ? bench_fmt_rate(res[m][5], b[6], 32) : "-",
             res[m][6], bench_fmt_rate(res[m][7], b[7], 32));
      fflush(stdout);
    }
    printf("\nFour readers against one (both beside the writer): %s "
           "(target >= 1.60x); one reader beside the writer against one "
           "alone: %s\n", bench_fmt_ratio(four, one, b[0], 32),
           bench_fmt_ratio(one, base, b[1], 32));
  }

  if (part(2)) {
    printf("\n## (2) Writers: transactions of %d puts, keys shared by all "
           "processes\n\n", TXN_PUTS);
    printf("Busy timeout 5 s; tinkv sync=normal; SQLite WITHOUT ROWID table, "
           "WAL, synchronous=NORMAL, BEGIN IMMEDIATE.\n\n");
    printf("| processes | engine | txn/s (all) | vs SQLite | p50 | p99 | p99.9 "
           "| max |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (int np = 2; np <= 8; np *= 2) {
      double res[2][15][8], rate[2] = { NAN, NAN };
      int m[2] = { -1, -1 };
      for (int sql = 1; sql >= 0; sql--) {
        if (!bench_selected(&cfg, sql ? "SQLite" : "tinkv")) continue;
        for (int r = 0; r < reps; r++) write_run(np, sql, res[sql][r]);
        m[sql] = median_run(res[sql], reps);
        rate[sql] = res[sql][m[sql]][0];
      }
      for (int sql = 0; sql <= 1; sql++) {
        double *x;
        if (m[sql] < 0) continue;
        x = res[sql][m[sql]];
        printf("| %d | %s | %s | %s | %s | %s | %s | %s |\n", np,
               sql ? "SQLite WAL" : "tinkv", bench_fmt_rate(x[0], b[0], 32),
               sql ? "-" : bench_fmt_ratio(rate[0], rate[1], b[1], 32),
               us(x[1], b[2], 32), us(x[2], b[3], 32), us(x[3], b[4], 32),
               us(x[4], b[5], 32));
        fflush(stdout);
      }
    }
    printf("\nTarget: tinkv >= 2.00x the SQLite table's txn/s.\n");
  }

  if (bench_selected(&cfg, "tinkv")) {
    static const int recs[2] = { 1000, 100000 }, rounds[2] = { 200, 5 };
    double o1[8], o2[8], ms1[16], ms2[16], rss = NAN;
    int nopen = reps < 5 ? 5 : reps;
    if (part(3)) {
      printf("\n## (3) Catching up: a reader's next get after another process "
             "wrote\n\n");
      printf("Updates of random keys among N in transactions of %d.\n\n",
             CATCH_TXN);
      printf("| records written | rounds | get with catch-up p50 | p99 | max | "
             "plain get p50 | per record |\n");
      printf("|---:|---:|---:|---:|---:|---:|---:|\n");
      if (!part(1)) tk_fill(read_dir);   /* else (1) filled it */
      for (int i = 0; i < 2; i++) {
        double res[4];
        catch_run(recs[i], rounds[i], res);
        printf("| %d | %d | %s | %s | %s | %s | %.2f us |\n", recs[i],
               rounds[i], us(res[0], b[0], 32), us(res[1], b[1], 32),
               us(res[2], b[2], 32), us(res[3], b[3], 32),
               (res[0] - res[3]) / recs[i]);
        fflush(stdout);
      }
      printf("\nTarget: catching up after 1,000 records <= 1 ms.\n");
    }
    if (part(4)) {
      printf("\n## (4) Opening the store of N keys in a new process\n\n");
      printf("The store as one bulk load of N keys leaves it, closed.\n\n");
      tk_fill(read_dir);
      for (int r = 0; r < nopen; r++) {
        bench_run_child(open_child, NULL, o1, 2);
        ms1[r] = o1[0];
        rss = o1[1];
      }
      {
        pid_t h = holder_start();
        for (int r = 0; r < nopen; r++) {
          bench_run_child(open_child, NULL, o2, 2);
          ms2[r] = o2[0];
        }
        kill(h, SIGKILL);
        while (waitpid(h, NULL, 0) < 0 && errno == EINTR) {}
      }
      {
        double mx1 = 0, mx2 = 0;
        for (int r = 0; r < nopen; r++) {
          if (ms1[r] > mx1) mx1 = ms1[r];
          if (ms2[r] > mx2) mx2 = ms2[r];
        }
        printf("| open | median | max (of %d) |\n|---|---:|---:|\n", nopen);
        printf("| alone (first open) | %.0f ms | %.0f ms |\n",
               bench_median(ms1, nopen), mx1);
        printf("| while another process has it open | %.0f ms | %.0f ms |\n",
               bench_median(ms2, nopen), mx2);
      }
      printf("\nResident memory an open adds to a process (its own keydir): "
             "%.0f MB.  Target: open <= 300 ms.\n", rss / 1e6);
      bench_rmtree(read_dir);
    }
    if (part(5)) {
      printf("\n## (5) Merging beside another process\n\n");
      printf("One process updates random keys among N (%llu updates, "
             "transactions of 100, sync=normal); disk use against the live "
             "data (keys and values), sampled every 200 transactions.\n\n",
             (unsigned long long)(3 * cfg.n));
      printf("| beside | updates/s | peak disk | disk at the end | merges |\n"
             "|---|---:|---:|---:|---:|\n");
      for (int r = 0; r <= 1; r++) {
        double x[4];
        if (bench_run_child(merge_child, &r, x, 4)) bench_die("merge run failed");
        printf("| %s | %s | %.2fx | %.2fx | %.0f |\n",
               r ? "a read-only process reading a key every ms" : "nothing",
               bench_fmt_rate(x[0], b[0], 32), x[1], x[2], x[3]);
        fflush(stdout);
      }
    }
    if (part(6)) {
      double none = NAN;
      printf("\n## (6) A read transaction beside a writer\n\n");
      printf("One process updates random keys among N (%llu updates, "
             "transactions of 100, sync=normal, merging); another handle of "
             "it holds a read transaction from the first update to the "
             "last, or none.  Peak disk against the live data.\n\n",
             (unsigned long long)(3 * cfg.n));
      printf("| read transaction | updates/s | vs none | commit p50 | p99 | "
             "p99.9 | max | tkv_read_end | peak disk |\n"
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
      for (int r = 0; r <= 1; r++) {
        double x[7];
        if (bench_run_child(rtx_child, &r, x, 7)) bench_die("rtx run failed");
        if (r == 0) none = x[0];
        snprintf(b[6], 32, "%.1f ms", x[5]);
        printf("| %s | %s | %s | %s | %s | %s | %s | %s | %.2fx |\n",
               r ? "open throughout" : "none",
               bench_fmt_rate(x[0], b[0], 32),
               r ? bench_fmt_ratio(x[0], none, b[1], 32) : "-",
               us(x[1], b[2], 32), us(x[2], b[3], 32), us(x[3], b[4], 32),
               us(x[4], b[5], 32), r ? b[6] : "-", x[6]);
        fflush(stdout);
      }
    }
  }
  bench_rmtree(write_dir);
  unlink(sql_file);
  return 0;
}
