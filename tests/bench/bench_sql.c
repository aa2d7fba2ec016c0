/*
** SQL benchmark: the same prepared statements against a tinkv virtual
** table, a native WITHOUT ROWID table and a native rowid table, in one run.
**
** Phases (N random 16-byte keys, 100-byte values, keys and values bound as
** BLOBs for all three tables):
**   insert        INSERT OR REPLACE INTO kv VALUES(?,?), N new keys
**   overwrite     the same statement over the N keys in another order
**   read present  SELECT value FROM kv WHERE key=?, N present keys
**   read absent   the same, N keys never written
**   full scan     SELECT key, value FROM kv
**   range scan    SELECT key, value FROM kv WHERE key>=? AND key<?,
**                 N/100 ranges of about 100 rows each (rows/s)
**   delete        DELETE FROM kv WHERE key=?, N/10 present keys
**   durable       S single-row autocommit inserts into a fresh table:
**                 tinkv sync='full' against synchronous=FULL
** Every phase but the durable one runs inside one BEGIN..COMMIT.  The
** databases use journal_mode=WAL and synchronous=NORMAL (FULL for the
** durable phase) and a 256 MiB page cache (cache_size=-262144, so the
** native tables are not starved of cache while tinkv keeps its keydir in
** memory; BENCH_SQL_PRAGMAS replaces it); the tinkv table of the bulk
** phases has sync='normal'.
**
** Each table runs in its own child process and directory, BENCH_REPS times
** interleaved; the table shows medians.  The extension is loaded from
** $TINKV_SO (default build/tinkv.so); without it only the native tables run.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench_util.h"

enum {
  M_INS, M_OVER, M_READ, M_MISS, M_SCAN, M_RANGE, M_DEL, M_SYNC,
  M_RSS, M_DISK, NMET
};

enum { T_TINKV, T_WOROWID, T_ROWID, NTAB };
static const char *tab_name[NTAB] = {"tinkv", "WITHOUT ROWID", "rowid"};
static const char *tab_tag[NTAB] = {"tinkv", "worowid", "rowid"};

static bench_cfg cfg;
static const char *so_path;
static volatile unsigned sink;
static const char *sql_pragmas = "PRAGMA cache_size=-262144";

typedef struct job {
  int t;
  char dir[4096];
} job;

/* Die with SQLite's message when rc is not the expected code. */
static void sq_check(sqlite3 *db, int rc, int want, const char *what) {
  if (rc != want) bench_die("%s: %s (rc %d)", what, sqlite3_errmsg(db), rc);
}

/* Run SQL text with no result rows wanted. */
static void sq_exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
    bench_die("%s: %s", sql, err ? err : "?");
}

/* Prepare a statement. */
static sqlite3_stmt *sq_prep(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  sq_check(db, sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, sql);
  return st;
}

/* Bind key (and value when v is not NULL), step once to the end, reset. */
static void sq_write(sqlite3 *db, sqlite3_stmt *st, const uint8_t *k,
                     const uint8_t *v) {
  sqlite3_bind_blob(st, 1, k, BENCH_KEY_LEN, SQLITE_STATIC);
  if (v) sqlite3_bind_blob(st, 2, v, BENCH_VAL_LEN, SQLITE_STATIC);
  sq_check(db, sqlite3_step(st), SQLITE_DONE, "write");
  sqlite3_reset(st);
}

/* Point read: 1 if the key was found (touching its value), else 0. */
static int sq_read(sqlite3 *db, sqlite3_stmt *st, const uint8_t *k) {
  int rc, found = 0;
  sqlite3_bind_blob(st, 1, k, BENCH_KEY_LEN, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const uint8_t *v = sqlite3_column_blob(st, 0);
    int n = sqlite3_column_bytes(st, 0);
    if (n != BENCH_VAL_LEN) bench_die("read: value of %d bytes", n);
    sink += v[0] + v[n - 1];
    found = 1;
    rc = sqlite3_step(st);
  }
  sq_check(db, rc, SQLITE_DONE, "read");
  sqlite3_reset(st);
  return found;
}

/* Step a key,value query to its end, touching every row; rows seen. */
static uint64_t sq_rows(sqlite3 *db, sqlite3_stmt *st) {
  uint64_t n = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const uint8_t *k = sqlite3_column_blob(st, 0);
    const uint8_t *v = sqlite3_column_blob(st, 1);
    if (sqlite3_column_bytes(st, 1) != BENCH_VAL_LEN) bench_die("scan: value");
    sink += k[0] + v[0];
    n++;
  }
  sq_check(db, rc, SQLITE_DONE, "scan");
  sqlite3_reset(st);
  return n;
}

/* Create table `name` of kind t; sync is the tinkv sync option. */
static void create_table(sqlite3 *db, int t, const char *dir,
                         const char *name, const char *sync) {
  char sql[8192];
  if (t == T_TINKV)
    snprintf(sql, sizeof sql,
             "CREATE VIRTUAL TABLE %s USING tinkv(path='%s/%s.tinkv', "
             "sync='%s')", name, dir, name, sync);
  else
    snprintf(sql, sizeof sql,
             "CREATE TABLE %s(key BLOB PRIMARY KEY, value BLOB)%s", name,
             t == T_WOROWID ? " WITHOUT ROWID" : "");
  sq_exec(db, sql);
}

/* The exclusive upper bound of a range of about `rows` keys from k. */
static void range_end(const uint8_t *k, uint64_t n, uint64_t rows,
                      uint8_t *end) {
  uint64_t hi = 0, d = n > rows ? UINT64_MAX / n * rows : UINT64_MAX;
  for (int b = 0; b < 8; b++) hi = hi << 8 | k[b];
  hi = hi > UINT64_MAX - d ? UINT64_MAX : hi + d;
  for (int b = 0; b < 8; b++) end[b] = (uint8_t)(hi >> (56 - 8 * b));
  memset(end + 8, 0xff, BENCH_KEY_LEN - 8);
}

/* Run every phase on one kind of table (in the child process). */
static void run_table(void *arg, double *out) {
  job *j = arg;
  uint64_t n = cfg.n, ndel = n / 10, nrange = n / 100 ? n / 100 : 1, found;
  uint8_t k[BENCH_KEY_LEN], k2[BENCH_KEY_LEN];
  char path[8192];
  sqlite3 *db;
  sqlite3_stmt *ins, *sel, *del, *scan, *range;
  bench_perm p;
  double t;

  bench_rmtree(j->dir);
  bench_mkdirs(j->dir);
  (void)bench_val(0, 0);
  bench_reset_peak_rss();
  snprintf(path, sizeof path, "%s/main.db", j->dir);
  sq_check(NULL, sqlite3_open(path, &db), SQLITE_OK, "open");
  sq_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL");
  sq_exec(db, sql_pragmas);
  if (j->t == T_TINKV) {
    char *err = NULL;
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, NULL);
    if (sqlite3_load_extension(db, so_path, NULL, &err) != SQLITE_OK)
      bench_die("load %s: %s", so_path, err ? err : "?");
  }
  create_table(db, j->t, j->dir, "kv", "normal");
  ins = sq_prep(db, "INSERT OR REPLACE INTO kv VALUES(?,?)");
  sel = sq_prep(db, "SELECT value FROM kv WHERE key=?");
  del = sq_prep(db, "DELETE FROM kv WHERE key=?");
  scan = sq_prep(db, "SELECT key, value FROM kv");
  range = sq_prep(db, "SELECT key, value FROM kv WHERE key>=? AND key<?");

  t = bench_now();
  sq_exec(db, "BEGIN");
  for (uint64_t i = 0; i < n; i++) {
    bench_key(i, k);
    sq_write(db, ins, k, bench_val(i, 0));
  }
  sq_exec(db, "COMMIT");
  out[M_INS] = (double)n / (bench_now() - t);

  p = bench_perm_make(n, 101);
  t = bench_now();
  sq_exec(db, "BEGIN");
  for (uint64_t i = 0; i < n; i++) {
    uint64_t x = bench_perm_at(&p, i);
    bench_key(x, k);
    sq_write(db, ins, k, bench_val(x, 1));
  }
  sq_exec(db, "COMMIT");
  out[M_OVER] = (double)n / (bench_now() - t);

  p = bench_perm_make(n, 202);
  found = 0;
  t = bench_now();
  sq_exec(db, "BEGIN");
  for (uint64_t i = 0; i < n; i++) {
    bench_key(bench_perm_at(&p, i), k);
    found += (uint64_t)sq_read(db, sel, k);
  }
  sq_exec(db, "COMMIT");
  out[M_READ] = (double)n / (bench_now() - t);
  if (found != n) bench_die("%s read: %llu of %llu found", tab_name[j->t],
                            (unsigned long long)found, (unsigned long long)n);

  found = 0;
  t = bench_now();
  sq_exec(db, "BEGIN");
  for (uint64_t i = 0; i < n; i++) {
    bench_key(BENCH_MISS_BASE + i, k);
    found += (uint64_t)sq_read(db, sel, k);
  }
  sq_exec(db, "COMMIT");
  out[M_MISS] = (double)n / (bench_now() - t);
  if (found) bench_die("%s absent read: %llu found", tab_name[j->t],
                       (unsigned long long)found);

  t = bench_now();
  sq_exec(db, "BEGIN");
  found = sq_rows(db, scan);
  sq_exec(db, "COMMIT");
  out[M_SCAN] = (double)found / (bench_now() - t);
  if (found != n) bench_die("%s scan: %llu of %llu rows", tab_name[j->t],
                            (unsigned long long)found, (unsigned long long)n);

  p = bench_perm_make(n, 404);
  found = 0;
  t = bench_now();
  sq_exec(db, "BEGIN");
  for (uint64_t i = 0; i < nrange; i++) {
    bench_key(bench_perm_at(&p, i), k);
    range_end(k, n, 100, k2);
    sqlite3_bind_blob(range, 1, k, BENCH_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(range, 2, k2, BENCH_KEY_LEN, SQLITE_STATIC);
    found += sq_rows(db, range);
  }
  sq_exec(db, "COMMIT");
  out[M_RANGE] = (double)found / (bench_now() - t);
  if (found < nrange) bench_die("%s range scan: %llu rows", tab_name[j->t],
                                (unsigned long long)found);

  p = bench_perm_make(n, 303);
  t = bench_now();
  sq_exec(db, "BEGIN");
  for (uint64_t i = 0; i < ndel; i++) {
    bench_key(bench_perm_at(&p, i), k);
    sq_write(db, del, k, NULL);
    if (sqlite3_changes(db) != 1) bench_die("%s delete: no row",
                                            tab_name[j->t]);
  }
  sq_exec(db, "COMMIT");
  out[M_DEL] = (double)ndel / (bench_now() - t);

  sqlite3_finalize(ins);
  sqlite3_finalize(sel);
  sqlite3_finalize(del);
  sqlite3_finalize(scan);
  sqlite3_finalize(range);

  sq_exec(db, "PRAGMA synchronous=FULL");
  create_table(db, j->t, j->dir, "kvs", "full");
  ins = sq_prep(db, "INSERT OR REPLACE INTO kvs VALUES(?,?)");
  t = bench_now();
  for (uint64_t i = 0; i < cfg.sync_n; i++) {
    bench_key(BENCH_SYNC_BASE + i, k);
    sq_write(db, ins, k, bench_val(i, 2));
  }
  out[M_SYNC] = (double)cfg.sync_n / (bench_now() - t);
  sqlite3_finalize(ins);

  sq_check(db, sqlite3_close(db), SQLITE_OK, "close");
  out[M_RSS] = bench_peak_rss();
  out[M_DISK] = bench_disk_bytes(j->dir);
  bench_rmtree(j->dir);
}

/* Print one row: the three tables, then tinkv's ratios to the natives. */
static void print_row(const char *label, double med[][NMET], int m,
                      int kind) {
  char buf[64];
  printf("| %s |", label);
  for (int t = 0; t < NTAB; t++) {
    double v = med[t][m];
    if (isnan(v)) printf(" - |");
    else if (kind == 0) printf(" %s |", bench_fmt_rate(v, buf, sizeof buf));
    else printf(" %.0f MB |", v / 1e6);
  }
  printf(" %s |", bench_fmt_ratio(med[T_TINKV][m], med[T_WOROWID][m], buf,
                                  sizeof buf));
  printf(" %s |\n", bench_fmt_ratio(med[T_TINKV][m], med[T_ROWID][m], buf,
                                    sizeof buf));
}

/* Print one target line against the WITHOUT ROWID table. */
static void print_target(double med[][NMET], const char *what, int m,
                         double goal) {
  double a = med[T_TINKV][m], b = med[T_WOROWID][m];
  if (isnan(a) || isnan(b)) {
    printf("| %s | >= %.1fx | - | - |\n", what, goal);
    return;
  }
  printf("| %s | >= %.1fx | %.2fx | %s |\n", what, goal, a / b,
         a / b >= goal ? "met" : "**missed**");
}

int main(void) {
  static double res[NTAB][NMET][64];
  double med[NTAB][NMET];
  int have_so;

  bench_cfg_load(&cfg, "build/bench/tmp");
  if (getenv("BENCH_SQL_PRAGMAS")) sql_pragmas = getenv("BENCH_SQL_PRAGMAS");
  if (cfg.reps > 64) cfg.reps = 64;
  so_path = getenv("TINKV_SO");
  if (so_path == NULL || *so_path == '\0') so_path = "build/tinkv.so";
  have_so = access(so_path, R_OK) == 0;
  bench_mkdirs(cfg.dir);

  printf("\n## SQL: %llu keys of %d bytes, %d-byte values, %llu durable "
         "inserts, median of %d runs\n\n",
         (unsigned long long)cfg.n, BENCH_KEY_LEN, BENCH_VAL_LEN,
         (unsigned long long)cfg.sync_n, cfg.reps);
  bench_print_machine(cfg.dir);
  if (strcmp(bench_fstype(cfg.dir), "tmpfs") == 0)
    printf("WARNING: %s is tmpfs; durable commits are meaningless there.\n",
           cfg.dir);
  printf("SQLite %s; every connection: journal_mode=WAL, synchronous=NORMAL, "
         "%s; tinkv extension: %s.\n", sqlite3_libversion(), sql_pragmas,
         have_so ? so_path : "not built (native tables only)");
  fflush(stdout);

  for (int r = 0; r < cfg.reps; r++) {
    for (int t = 0; t < NTAB; t++) {
      job j;
      double out[NMET];
      for (int m = 0; m < NMET; m++) res[t][m][r] = NAN;
      if (t == T_TINKV && !have_so) continue;
      if (!bench_selected(&cfg, tab_tag[t]) &&
          !bench_selected(&cfg, tab_name[t]))
        continue;
      j.t = t;
      snprintf(j.dir, sizeof j.dir, "%s/sql-%s", cfg.dir, tab_tag[t]);
      fprintf(stderr, "run %d/%d: %s...\n", r + 1, cfg.reps, tab_name[t]);
      if (bench_run_child(run_table, &j, out, NMET) != 0)
        fprintf(stderr, "%s: run %d failed\n", tab_name[t], r + 1);
      for (int m = 0; m < NMET; m++) res[t][m][r] = out[m];
    }
  }
  for (int t = 0; t < NTAB; t++)
    for (int m = 0; m < NMET; m++)
      med[t][m] = bench_median(res[t][m], cfg.reps);

  printf("\n| ops/s (median) | tinkv | WITHOUT ROWID | rowid "
         "| tinkv/WITHOUT ROWID | tinkv/rowid |\n"
         "|---|---:|---:|---:|---:|---:|\n");
  print_row("insert", med, M_INS, 0);
  print_row("overwrite", med, M_OVER, 0);
  print_row("point read, present", med, M_READ, 0);
  print_row("point read, absent", med, M_MISS, 0);
  print_row("full scan (rows/s)", med, M_SCAN, 0);
  print_row("range scan (rows/s)", med, M_RANGE, 0);
  print_row("delete", med, M_DEL, 0);
  print_row("durable autocommit insert", med, M_SYNC, 0);
  print_row("peak RSS", med, M_RSS, 1);
  print_row("disk after run", med, M_DISK, 1);

  printf("\n| target (vs WITHOUT ROWID) | goal | measured | |\n"
         "|---|---|---:|---|\n");
  print_target(med, "insert", M_INS, 2.0);
  print_target(med, "overwrite", M_OVER, 3.0);
  print_target(med, "point read", M_READ, 1.5);
  print_target(med, "delete", M_DEL, 3.0);
  print_target(med, "full scan", M_SCAN, 0.7);
  print_target(med, "durable autocommit insert", M_SYNC, 1.3);
  return 0;
}
