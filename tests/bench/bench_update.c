/*
** Sustained-update benchmark: the workload a Bitcask exists for, a long
** stream of small update transactions, where merging must keep up without
** stalling commits.
**
** For each engine and N: fill N keys (16-byte keys, 100-byte values, one
** bulk write, not timed), then 3N random overwrites in transactions of 100
** (the "10% deletes" variant makes every tenth operation a delete of a
** random key, present or not; a later put re-creates it).  Reported for the
** update phase:
**   ops/s             operations per second over the whole phase
**   commit latency    p50, p99, p99.9 and max of one transaction of 100
**                     (begin to commit returned)
**   write amp         bytes the process caused to be written to storage
**                     (/proc/self/io write_bytes) over bytes of keys and
**                     values written (116 per put, 16 per delete)
**   peak disk         largest size of the store's files (sampled every 20
**                     transactions) over the live data (N x 116 bytes)
** Engines, same keys in the same order: tinkv through the C API
** (sync=normal), LevelDB and RocksDB (WriteBatch of 100, sync=false),
** LMDB (a write transaction per 100, MDB_NOSYNC), tinkv through SQL and a
** native WITHOUT ROWID table (journal_mode=WAL, synchronous=NORMAL; the
** tinkv table with sync='normal'), each transaction a BEGIN, 100 prepared
** INSERT OR REPLACE (or DELETE), COMMIT.  Each run is a child process in a
** fresh directory under BENCH_DIR (not tmpfs: write_bytes is zero there).
**
** Environment: BENCH_UPDATE_N (comma list of N, default "1000000,2000000"),
** BENCH_UPDATE_DEL ("0,10": the delete percentages to run, default both
** at the first N and 0 at the others), BENCH_UPDATE_CAP (seconds an
** engine's update phase may take before it is stopped and reported as not
** finished, default 600), BENCH_ENGINES, BENCH_DIR, TINKV_SO.
** BENCH_UPDATE_TRACE=1 prints every commit over 5 ms to stderr with the
** time its thread waited for a CPU (schedstat) and how often it blocked
** (voluntary context switches): where a tail comes from.  It costs a file
** read per commit, so its throughput is not comparable.
** Where the disk goes (the files of the run directory, not of its
** subdirectories: tinkv through the C API; other engines land in "other"):
** BENCH_UPDATE_DISKLOG=file appends, at every disk sample, the allocated
** and apparent bytes of the segments, of the newest one, of merge outputs
** not yet renamed (*.seg.tmp), of hint files and of the rest, and at the
** end the file list of the largest sample.  BENCH_UPDATE_SEG_MIB sets
** tinkv's max_file_size (MiB); BENCH_UPDATE_PACE_US sleeps that long after
** each commit (a slower writer: does merging keep up?).  Both change what
** is measured; the tables in the README use neither.
*/
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <leveldb/c.h>
#include <lmdb.h>
#include <rocksdb/c.h>
#include <sqlite3.h>

#include "tinkv.h"

#include "bench_util.h"

#define TXN_OPS 100
#define DISK_EVERY 20            /* transactions between disk samples */

enum { R_OPS, R_P50, R_P99, R_P999, R_MAX, R_WAMP, R_DISK, R_MERGES,
       R_MERGE_S, R_DONE, NRES };

/* Seconds an engine's update phase may take (BENCH_UPDATE_CAP); an engine
** that has not finished by then is stopped and reported with the share of
** the phase it did, its numbers covering that share only. */
static double update_cap = 600;

typedef struct engine {
  const char *name;
  void *(*open)(const char *dir);
  void (*close)(void *h);
  void (*begin)(void *h);
  void (*put)(void *h, const uint8_t *k, const uint8_t *v);
  void (*del)(void *h, const uint8_t *k);
  void (*commit)(void *h);
  void (*stats)(void *h, double *out);   /* NULL, or merge counters */
} engine;

static bench_cfg cfg;
static const char *so_path;
static size_t lm_mapsize;

/* Bytes this process caused to be written to storage so far. */
static double io_write_bytes(void) {
  FILE *f = fopen("/proc/self/io", "r");
  char line[256];
  double v = NAN;
  if (!f) return NAN;
  while (fgets(line, sizeof line, f)) {
    unsigned long long x;
    if (sscanf(line, "write_bytes: %llu", &x) == 1) v = (double)x;
  }
  fclose(f);
  return v;
}

/* ------------------------------------------------------------- tinkv. */

static void tk_check(int rc, const char *what) {
  if (rc != TKV_OK) bench_die("tinkv %s: %s (%s)", what, tkv_strerror(rc),
                              tkv_errmsg());
}
static void *tk_open(const char *dir) {
  tkv_options o;
  tkv_db *db;
  tkv_options_init(&o);
  o.create = 1;
  o.sync = TKV_SYNC_NORMAL;
  if (getenv("BENCH_UPDATE_SEG_MIB") && *getenv("BENCH_UPDATE_SEG_MIB"))
    o.max_file_size = strtoull(getenv("BENCH_UPDATE_SEG_MIB"), NULL, 10)
                      << 20;
  tk_check(tkv_open(dir, &o, &db), "open");
  return db;
}
static void tk_close(void *h) { tk_check(tkv_close(h), "close"); }
static void tk_begin(void *h) { tk_check(tkv_begin(h), "begin"); }
static void tk_commit(void *h) { tk_check(tkv_commit(h), "commit"); }
static void tk_put(void *h, const uint8_t *k, const uint8_t *v) {
  tk_check(tkv_put(h, k, BENCH_KEY_LEN, v, BENCH_VAL_LEN), "put");
}
static void tk_del(void *h, const uint8_t *k) {
  int rc = tkv_delete(h, k, BENCH_KEY_LEN);
  if (rc != TKV_NOTFOUND) tk_check(rc, "delete");
}
static void tk_stats(void *h, double *out) {
  tkv_stats st;
  tk_check(tkv_stats_get(h, &st), "stats");
  out[R_MERGES] = (double)st.merges;
  out[R_MERGE_S] = (double)st.merge_usec / 1e6;
}
static const engine eng_tinkv = {
  "tinkv", tk_open, tk_close, tk_begin, tk_put, tk_del, tk_commit, tk_stats
};

/* ----------------------------------------------------------- LevelDB. */

typedef struct ldb {
  leveldb_t *db;
  leveldb_options_t *opt;
  leveldb_writeoptions_t *wo;
  leveldb_writebatch_t *wb;
} ldb;

static void ldb_check(char *err, const char *what) {
  if (err) bench_die("leveldb %s: %s", what, err);
}
static void *ldb_open(const char *dir) {
  ldb *l = calloc(1, sizeof *l);
  char *err = NULL;
  l->opt = leveldb_options_create();
  leveldb_options_set_create_if_missing(l->opt, 1);
  l->wo = leveldb_writeoptions_create();
  l->wb = leveldb_writebatch_create();
  l->db = leveldb_open(l->opt, dir, &err);
  ldb_check(err, "open");
  return l;
}
static void ldb_close(void *h) {
  ldb *l = h;
  leveldb_close(l->db);
  leveldb_writebatch_destroy(l->wb);
  leveldb_writeoptions_destroy(l->wo);
  leveldb_options_destroy(l->opt);
  free(l);
}
static void ldb_begin(void *h) { leveldb_writebatch_clear(((ldb *)h)->wb); }
static void ldb_put(void *h, const uint8_t *k, const uint8_t *v) {
  leveldb_writebatch_put(((ldb *)h)->wb, (const char *)k, BENCH_KEY_LEN,
                         (const char *)v, BENCH_VAL_LEN);
}
static void ldb_del(void *h, const uint8_t *k) {
  leveldb_writebatch_delete(((ldb *)h)->wb, (const char *)k, BENCH_KEY_LEN);
}
static void ldb_commit(void *h) {
  ldb *l = h;
  char *err = NULL;
  leveldb_write(l->db, l->wo, l->wb, &err);
  ldb_check(err, "write");
}
static const engine eng_leveldb = {
  "LevelDB", ldb_open, ldb_close, ldb_begin, ldb_put, ldb_del, ldb_commit,
  NULL
};

/* ----------------------------------------------------------- RocksDB. */

typedef struct rdb {
  rocksdb_t *db;
  rocksdb_options_t *opt;
  rocksdb_writeoptions_t *wo;
  rocksdb_writebatch_t *wb;
} rdb;

static void rdb_check(char *err, const char *what) {
  if (err) bench_die("rocksdb %s: %s", what, err);
}
static void *rdb_open(const char *dir) {
  rdb *r = calloc(1, sizeof *r);
  char *err = NULL;
  r->opt = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(r->opt, 1);
  r->wo = rocksdb_writeoptions_create();
  r->wb = rocksdb_writebatch_create();
  r->db = rocksdb_open(r->opt, dir, &err);
  rdb_check(err, "open");
  return r;
}
static void rdb_close(void *h) {
  rdb *r = h;
  rocksdb_close(r->db);
  rocksdb_writebatch_destroy(r->wb);
  rocksdb_writeoptions_destroy(r->wo);
  rocksdb_options_destroy(r->opt);
  free(r);
}
static void rdb_begin(void *h) { rocksdb_writebatch_clear(((rdb *)h)->wb); }
static void rdb_put(void *h, const uint8_t *k, const uint8_t *v) {
  rocksdb_writebatch_put(((rdb *)h)->wb, (const char *)k, BENCH_KEY_LEN,
                         (const char *)v, BENCH_VAL_LEN);
}
static void rdb_del(void *h, const uint8_t *k) {
  rocksdb_writebatch_delete(((rdb *)h)->wb, (const char *)k, BENCH_KEY_LEN);
}
static void rdb_commit(void *h) {
  rdb *r = h;
  char *err = NULL;
  rocksdb_write(r->db, r->wo, r->wb, &err);
  rdb_check(err, "write");
}
static const engine eng_rocksdb = {
  "RocksDB", rdb_open, rdb_close, rdb_begin, rdb_put, rdb_del, rdb_commit,
  NULL
};

/* -------------------------------------------------------------- LMDB. */

typedef struct lmdb {
  MDB_env *env;
  MDB_dbi dbi;
  MDB_txn *txn;
} lmdb;

static void lm_check(int rc, const char *what) {
  if (rc) bench_die("lmdb %s: %s", what, mdb_strerror(rc));
}
static void *lm_open(const char *dir) {
  lmdb *m = calloc(1, sizeof *m);
  MDB_txn *t;
  lm_check(mdb_env_create(&m->env), "env_create");
  lm_check(mdb_env_set_mapsize(m->env, lm_mapsize), "set_mapsize");
  lm_check(mdb_env_open(m->env, dir, MDB_NOSYNC, 0664), "env_open");
  lm_check(mdb_txn_begin(m->env, NULL, 0, &t), "txn_begin");
  lm_check(mdb_dbi_open(t, NULL, 0, &m->dbi), "dbi_open");
  lm_check(mdb_txn_commit(t), "txn_commit");
  return m;
}
static void lm_close(void *h) {
  lmdb *m = h;
  mdb_env_close(m->env);
  free(m);
}
static void lm_begin(void *h) {
  lmdb *m = h;
  lm_check(mdb_txn_begin(m->env, NULL, 0, &m->txn), "txn_begin");
}
static void lm_put(void *h, const uint8_t *k, const uint8_t *v) {
  lmdb *m = h;
  MDB_val key = {BENCH_KEY_LEN, (void *)k}, val = {BENCH_VAL_LEN, (void *)v};
  lm_check(mdb_put(m->txn, m->dbi, &key, &val, 0), "put");
}
static void lm_del(void *h, const uint8_t *k) {
  lmdb *m = h;
  MDB_val key = {BENCH_KEY_LEN, (void *)k};
  int rc = mdb_del(m->txn, m->dbi, &key, NULL);
  if (rc != MDB_NOTFOUND) lm_check(rc, "del");
}
static void lm_commit(void *h) {
  lm_check(mdb_txn_commit(((lmdb *)h)->txn), "txn_commit");
}
static const engine eng_lmdb = {
  "LMDB", lm_open, lm_close, lm_begin, lm_put, lm_del, lm_commit, NULL
};

/* --------------------------------------------------------------- SQL. */

typedef struct sq {
  sqlite3 *db;
  sqlite3_stmt *ins, *del, *begin, *commit, *stats;
  int tinkv;
} sq;

static void sq_check(sqlite3 *db, int rc, int want, const char *what) {
  if (rc != want) bench_die("%s: %s (rc %d)", what,
                            db ? sqlite3_errmsg(db) : "?", rc);
}
static void sq_exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
    bench_die("%s: %s", sql, err ? err : "?");
}
static sqlite3_stmt *sq_prep(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  sq_check(db, sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, sql);
  return st;
}
static void sq_step(sq *s, sqlite3_stmt *st, const char *what) {
  sq_check(s->db, sqlite3_step(st), SQLITE_DONE, what);
  sqlite3_reset(st);
}
static void *sq_open_kind(const char *dir, int tinkv) {
  sq *s = calloc(1, sizeof *s);
  char path[8192], sql[8192];
  s->tinkv = tinkv;
  snprintf(path, sizeof path, "%s/main.db", dir);
  sq_check(NULL, sqlite3_open(path, &s->db), SQLITE_OK, "open");
  sq_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                 "PRAGMA cache_size=-262144");
  if (tinkv) {
    char *err = NULL;
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, NULL);
    if (sqlite3_load_extension(s->db, so_path, NULL, &err) != SQLITE_OK)
      bench_die("load %s: %s", so_path, err ? err : "?");
    snprintf(sql, sizeof sql, "CREATE VIRTUAL TABLE IF NOT EXISTS kv USING "
             "tinkv(path='%s/kv.tinkv', sync='normal')", dir);
  } else {
    snprintf(sql, sizeof sql, "CREATE TABLE IF NOT EXISTS kv(key BLOB "
             "PRIMARY KEY, value BLOB) WITHOUT ROWID");
  }
  sq_exec(s->db, sql);
  s->ins = sq_prep(s->db, "INSERT OR REPLACE INTO kv VALUES(?,?)");
  s->del = sq_prep(s->db, "DELETE FROM kv WHERE key=?");
  s->begin = sq_prep(s->db, "BEGIN");
  s->commit = sq_prep(s->db, "COMMIT");
  if (tinkv) s->stats = sq_prep(s->db, "SELECT json_extract(tinkv_stats('kv'),"
                                "'$.merges'), json_extract(tinkv_stats('kv'),"
                                "'$.merge_usec')");
  return s;
}
static void *sqt_open(const char *dir) { return sq_open_kind(dir, 1); }
static void *sqn_open(const char *dir) { return sq_open_kind(dir, 0); }
static void sq_close(void *h) {
  sq *s = h;
  sqlite3_finalize(s->ins);
  sqlite3_finalize(s->del);
  sqlite3_finalize(s->begin);
  sqlite3_finalize(s->commit);
  sqlite3_finalize(s->stats);
  sq_check(s->db, sqlite3_close(s->db), SQLITE_OK, "close");
  free(s);
}
static void sq_begin(void *h) { sq_step(h, ((sq *)h)->begin, "BEGIN"); }
static void sq_commit(void *h) { sq_step(h, ((sq *)h)->commit, "COMMIT"); }
static void sq_put(void *h, const uint8_t *k, const uint8_t *v) {
  sq *s = h;
  sqlite3_bind_blob(s->ins, 1, k, BENCH_KEY_LEN, SQLITE_STATIC);
  sqlite3_bind_blob(s->ins, 2, v, BENCH_VAL_LEN, SQLITE_STATIC);
  sq_step(s, s->ins, "insert");
}
static void sq_del(void *h, const uint8_t *k) {
  sq *s = h;
  sqlite3_bind_blob(s->del, 1, k, BENCH_KEY_LEN, SQLITE_STATIC);
  sq_step(s, s->del, "delete");
}
static void sq_stats(void *h, double *out) {
  sq *s = h;
  if (!s->stats) return;
  sq_check(s->db, sqlite3_step(s->stats), SQLITE_ROW, "stats");
  out[R_MERGES] = sqlite3_column_double(s->stats, 0);
  out[R_MERGE_S] = sqlite3_column_double(s->stats, 1) / 1e6;
  sqlite3_reset(s->stats);
}
static const engine eng_sql_tinkv = {
  "tinkv SQL", sqt_open, sq_close, sq_begin, sq_put, sq_del, sq_commit,
  sq_stats
};
static const engine eng_sql_native = {
  "SQLite table", sqn_open, sq_close, sq_begin, sq_put, sq_del, sq_commit,
  NULL
};

/* ------------------------------------------------------------ Driver. */

static const engine *engines[] = {
  &eng_tinkv, &eng_leveldb, &eng_rocksdb, &eng_lmdb, &eng_sql_tinkv,
  &eng_sql_native
};
#define NENG ((int)(sizeof engines / sizeof engines[0]))

typedef struct job {
  const engine *e;
  char dir[4096];
  uint64_t n;
  int del_pct;
} job;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Time this thread has spent runnable but waiting for a CPU, in ms
** (/proc/thread-self/schedstat, second field; 0 if unreadable). */
static double run_queue_ms(void) {
  FILE *f = fopen("/proc/thread-self/schedstat", "r");
  unsigned long long run = 0, wait = 0;
  if (!f) return 0;
  if (fscanf(f, "%llu %llu", &run, &wait) != 2) wait = 0;
  fclose(f);
  return (double)wait / 1e6;
}

/*
** BENCH_UPDATE_DISKLOG=file: at every disk sample, one line of where the
** store's bytes are, allocated (st_blocks, what du counts) / apparent
** (st_size): the segments but the newest, the newest (the active one, or a
** merge output just renamed: outputs take new ids), merge outputs still
** *.seg.tmp, hint files and the rest, with the number of segments.  At the
** end of the run, the files of the sample with the largest allocation.
** Measurement only: it costs a directory scan per sample.
*/
typedef struct disk_split {
  double seg_a, seg_s, act_a, act_s, tmp_a, tmp_s, hint_a, other_a, all_a;
  int nseg, ntmp;
} disk_split;

static FILE *disk_log;
static char peak_listing[1 << 16];
static double peak_listing_bytes;

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

static void disk_log_sample(const char *dir, double t) {
  DIR *d = opendir(dir);
  struct dirent *de;
  disk_split x;
  char listing[sizeof peak_listing];
  size_t ll = 0;
  unsigned long maxid = 0;
  double maxid_a = 0, maxid_s = 0;
  if (!d) return;
  memset(&x, 0, sizeof x);
  listing[0] = 0;
  while ((de = readdir(d)) != NULL) {
    char p[8192];
    struct stat st;
    double a, sz;
    if (de->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    a = (double)st.st_blocks * 512.0;
    sz = (double)st.st_size;
    x.all_a += a;
    if (ll + 200 < sizeof listing)
      ll += (size_t)snprintf(listing + ll, sizeof listing - ll,
                             "  %-24s size %10.0f alloc %10.0f\n",
                             de->d_name, sz, a);
    if (ends_with(de->d_name, ".seg")) {
      unsigned long id = strtoul(de->d_name, NULL, 10);
      x.seg_a += a;
      x.seg_s += sz;
      x.nseg++;
      if (id >= maxid) { maxid = id; maxid_a = a; maxid_s = sz; }
    } else if (ends_with(de->d_name, ".seg.tmp")) {
      x.tmp_a += a;
      x.tmp_s += sz;
      x.ntmp++;
    } else if (ends_with(de->d_name, ".hint")) {
      x.hint_a += a;
    } else {
      x.other_a += a;
    }
  }
  closedir(d);
  /* The newest segment, apart. */
  x.act_a = maxid_a;
  x.act_s = maxid_s;
  x.seg_a -= maxid_a;
  x.seg_s -= maxid_s;
  fprintf(disk_log, "%.3f all %.0f older %.0f/%.0f newest %.0f/%.0f "
          "tmp %.0f/%.0f hint %.0f other %.0f nseg %d ntmp %d\n", t,
          x.all_a, x.seg_a, x.seg_s, x.act_a, x.act_s, x.tmp_a, x.tmp_s,
          x.hint_a, x.other_a, x.nseg, x.ntmp);
  if (x.all_a > peak_listing_bytes) {
    peak_listing_bytes = x.all_a;
    snprintf(peak_listing, sizeof peak_listing, "peak at %.3f s: %.0f "
             "bytes\n%s", t, x.all_a, listing);
  }
}

/* Fill, then the sustained updates (in the child process). */
static void run_one(void *arg, double *out) {
  job *j = arg;
  const engine *e = j->e;
  uint64_t n = j->n, ops = 3 * n, ntxn = ops / TXN_OPS, op = 0;
  uint64_t state = 0x9e3779b97f4a7c15ull ^ n;
  double *lat = malloc(sizeof(double) * (size_t)ntxn);
  double t0, w0, user = 0, peak = 0, live = (double)n * 116;
  int trace = getenv("BENCH_UPDATE_TRACE") != NULL;
  long pace_us = getenv("BENCH_UPDATE_PACE_US")
                 ? atol(getenv("BENCH_UPDATE_PACE_US")) : 0;
  uint8_t k[BENCH_KEY_LEN];
  void *h;

  if (!lat) bench_die("out of memory");
  if (getenv("BENCH_UPDATE_DISKLOG")) {
    disk_log = fopen(getenv("BENCH_UPDATE_DISKLOG"), "a");
    if (!disk_log) bench_die("cannot open BENCH_UPDATE_DISKLOG");
    fprintf(disk_log, "# %s N=%llu del=%d%%\n", e->name,
            (unsigned long long)n, j->del_pct);
  }
  bench_rmtree(j->dir);
  bench_mkdirs(j->dir);
  (void)bench_val(0, 0);
  h = e->open(j->dir);
  for (uint64_t i = 0; i < n; i += 10000) {
    e->begin(h);
    for (uint64_t x = i; x < n && x < i + 10000; x++) {
      bench_key(x, k);
      e->put(h, k, bench_val(x, 0));
    }
    e->commit(h);
  }

  w0 = io_write_bytes();
  t0 = bench_now();
  for (uint64_t t = 0; t < ntxn; t++) {
    double s, wait0 = trace ? run_queue_ms() : 0;
    struct rusage ru0, ru1;
    memset(&ru0, 0, sizeof ru0);
    if (trace) getrusage(RUSAGE_THREAD, &ru0);
    s = bench_now();
    e->begin(h);
    for (int i = 0; i < TXN_OPS; i++, op++) {
      uint64_t x;
      state ^= state << 13; state ^= state >> 7; state ^= state << 17;
      x = state % n;
      bench_key(x, k);
      if (j->del_pct && state % 100 < (uint64_t)j->del_pct) {
        e->del(h, k);
        user += BENCH_KEY_LEN;
      } else {
        e->put(h, k, bench_val(x + op, 1));
        user += BENCH_KEY_LEN + BENCH_VAL_LEN;
      }
    }
    e->commit(h);
    lat[t] = bench_now() - s;
    if (pace_us > 0) usleep((useconds_t)pace_us);
    if (trace && lat[t] > 0.005) {
      getrusage(RUSAGE_THREAD, &ru1);
      fprintf(stderr, "slow commit: at %.6f, %.2f ms, waiting for a CPU "
              "%.2f ms, blocked %ld times\n", s, lat[t] * 1e3,
              run_queue_ms() - wait0, ru1.ru_nvcsw - ru0.ru_nvcsw);
    }
    if (t % DISK_EVERY == 0) {
      double d = bench_disk_bytes(j->dir);
      if (d > peak) peak = d;
      if (disk_log) disk_log_sample(j->dir, bench_now() - t0);
      if (bench_now() - t0 > update_cap) {
        ntxn = t + 1;
        break;
      }
    }
  }
  out[R_DONE] = (double)op / (double)ops;
  ops = op;
  out[R_OPS] = (double)ops / (bench_now() - t0);
  out[R_WAMP] = (io_write_bytes() - w0) / user;
  {
    double d = bench_disk_bytes(j->dir);
    if (d > peak) peak = d;
  }
  out[R_DISK] = peak / live;
  if (disk_log) {
    fputs(peak_listing, disk_log);
    fclose(disk_log);
    disk_log = NULL;
  }
  if (e->stats) e->stats(h, out);
  qsort(lat, (size_t)ntxn, sizeof *lat, cmp_double);
  out[R_P50] = lat[ntxn / 2];
  out[R_P99] = lat[(size_t)((double)ntxn * 0.99)];
  out[R_P999] = lat[(size_t)((double)ntxn * 0.999)];
  out[R_MAX] = lat[ntxn - 1];
  free(lat);
  e->close(h);
  bench_rmtree(j->dir);
}

/* Parse a comma list of numbers into v (at most max); returns the count. */
static int parse_list(const char *s, uint64_t *v, int max) {
  int n = 0;
  while (s && *s && n < max) {
    char *end;
    v[n++] = strtoull(s, &end, 10);
    s = *end == ',' ? end + 1 : NULL;
  }
  return n;
}

static void fmt_ms(double s, char *buf, size_t len) {
  if (isnan(s)) snprintf(buf, len, "-");
  else if (s < 0.01) snprintf(buf, len, "%.2f ms", s * 1e3);
  else snprintf(buf, len, "%.0f ms", s * 1e3);
}

int main(void) {
  uint64_t ns[8], dels[4];
  int nn, nd;
  const char *s;
  char dflt[4096];

  snprintf(dflt, sizeof dflt, "build/bench/tmp");
  bench_cfg_load(&cfg, dflt);
  so_path = getenv("TINKV_SO");
  if (!so_path || !*so_path) so_path = "build/tinkv.so";
  nn = parse_list((s = getenv("BENCH_UPDATE_N")) && *s ? s
                  : "1000000,2000000", ns, 8);
  nd = parse_list((s = getenv("BENCH_UPDATE_DEL")) && *s ? s : "0,10",
                  dels, 4);
  if ((s = getenv("BENCH_UPDATE_CAP")) && *s) update_cap = atof(s);
  bench_mkdirs(cfg.dir);
  printf("\n## Sustained updates: fill N keys, then 3N random overwrites in "
         "transactions of %d\n\n", TXN_OPS);
  bench_print_machine(cfg.dir);
  if (strcmp(bench_fstype(cfg.dir), "tmpfs") == 0)
    printf("WARNING: %s is tmpfs: write amplification reads 0 there.\n",
           cfg.dir);
  printf("tinkv %s; sync=normal or its equivalent everywhere.\n\n",
         tkv_version());
  printf("| N | deletes | engine | ops/s | commit p50 | p99 | p99.9 | max | "
         "write amp | peak disk / live | merges (time) |\n");
  printf("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  fflush(stdout);
  for (int a = 0; a < nn; a++) {
    for (int b = 0; b < nd; b++) {
      /* The delete variant runs at the first N only unless asked for. */
      if (a > 0 && dels[b] && !getenv("BENCH_UPDATE_DEL")) continue;
      lm_mapsize = (size_t)ns[a] * 1024 + (256u << 20);
      for (int i = 0; i < NENG; i++) {
        job j;
        double out[NRES];
        char r[32], l[4][32];
        if (!bench_selected(&cfg, engines[i]->name)) continue;
        j.e = engines[i];
        j.n = ns[a];
        j.del_pct = (int)dels[b];
        snprintf(j.dir, sizeof j.dir, "%s/update-%d", cfg.dir, i);
        fprintf(stderr, "N=%llu del=%d%%: %s...\n", (unsigned long long)j.n,
                j.del_pct, j.e->name);
        for (int m = 0; m < NRES; m++) out[m] = NAN;
        if (bench_run_child(run_one, &j, out, NRES) != 0)
          fprintf(stderr, "%s: failed\n", j.e->name);
        fmt_ms(out[R_P50], l[0], sizeof l[0]);
        fmt_ms(out[R_P99], l[1], sizeof l[1]);
        fmt_ms(out[R_P999], l[2], sizeof l[2]);
        fmt_ms(out[R_MAX], l[3], sizeof l[3]);
        printf("| %lluk | %d%% | %s | %s | %s | %s | %s | %s | %.2f | %.2f | ",
               (unsigned long long)(j.n / 1000), j.del_pct, j.e->name,
               bench_fmt_rate(out[R_OPS], r, sizeof r), l[0], l[1], l[2],
               l[3], out[R_WAMP], out[R_DISK]);
        if (isnan(out[R_MERGES])) printf("-");
        else printf("%.0f (%.1f s)", out[R_MERGES], out[R_MERGE_S]);
        if (out[R_DONE] < 1.0)
          printf(" **did not finish: stopped after %.0f s at %.0f%% of the "
                 "updates** |\n", update_cap, out[R_DONE] * 100);
        else printf(" |\n");
        fflush(stdout);
      }
    }
  }
  printf("\nwrite amp: bytes written to storage (/proc/self/io) per byte of "
         "keys and values updated; peak disk: largest size of the files "
         "during the update phase over N x 116 bytes.\n");
  return 0;
}
