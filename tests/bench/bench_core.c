/*
** Core benchmark: db_bench-style phases on the C API of tinkv, LevelDB,
** RocksDB and LMDB in one run, with the same keys in the same order.
**
** Phases (N keys of 16 bytes in random order, 100-byte values):
**   fillrandom    N puts into an empty store, as one bulk write
**   overwrite     N puts of the same keys in another random order, bulk
**   readrandom    N point gets of present keys in a third order
**   readmissing   N point gets of keys never written
**   scan          one full ordered iteration, reading keys and values
**   deleterandom  N/10 deletes of present keys, bulk
**   sync commits  S single-key durable commits (each its own transaction)
** then: peak RSS, keydir bytes per key (tinkv), disk bytes after close and
** the time to reopen.
**
** Bulk writes: tinkv one tkv_begin..tkv_commit; LMDB one write transaction;
** LevelDB and RocksDB WriteBatches of BENCH_BATCH (default 100000) entries
** written with sync=false.  Durable commits: tinkv sync=full autocommit
** tkv_put; LevelDB/RocksDB put with sync=true; LMDB a write transaction
** per key in a default (synchronous) environment.
**
** Each engine runs in its own child process (so peak RSS is its own) in a
** fresh directory under BENCH_DIR, BENCH_REPS times, interleaved; the table
** shows medians.
*/
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <leveldb/c.h>
#include <lmdb.h>
#include <rocksdb/c.h>

#ifdef HAVE_TINKV
#include "tinkv.h"
#endif

#include "bench_util.h"

/* Result slots of one engine's run. */
enum {
  M_FILL, M_OVER, M_READ, M_MISS, M_SCAN, M_DEL, M_SYNC,
  M_RSS, M_KEYDIR, M_DISK, M_REOPEN, NMET
};

/* One engine behind a common interface.  The handle is engine-specific. */
typedef struct engine {
  const char *name;
  void *(*open)(const char *dir);
  void (*close)(void *h);
  void (*begin)(void *h);                          /* start a bulk write */
  void (*put)(void *h, const uint8_t *k, const uint8_t *v);
  void (*del)(void *h, const uint8_t *k);
  void (*commit)(void *h);                         /* finish a bulk write */
  void (*read_begin)(void *h);                     /* before a read phase */
  void (*read_end)(void *h);
  int (*get)(void *h, const uint8_t *k);           /* 1 found, 0 absent */
  uint64_t (*scan)(void *h);                       /* keys seen */
  void (*put_sync)(void *h, const uint8_t *k, const uint8_t *v);
  double (*keydir_per_key)(void *h);               /* NULL: not applicable */
} engine;

static uint64_t peer_batch = 100000;
static volatile unsigned sink;   /* keeps value reads from being optimised out */

/* Touch the first and last byte of a value read. */
static void touch(const void *v, size_t len) {
  if (len != BENCH_VAL_LEN) bench_die("value of %zu bytes read", len);
  sink += ((const uint8_t *)v)[0] + ((const uint8_t *)v)[len - 1];
}

/* No-op hook. */
static void nop(void *h) { (void)h; }

/* ------------------------------------------------------------- tinkv. */
#ifdef HAVE_TINKV

/* Die with tinkv's message when rc is not TKV_OK. */
static void tk_check(int rc, const char *what) {
  if (rc != TKV_OK) bench_die("tinkv %s: %s (%s)", what, tkv_strerror(rc),
                              tkv_errmsg());
}

/* Open (creating) a store with the default options: sync=full. */
static void *tk_open(const char *dir) {
  tkv_options o;
  tkv_db *db;
  tkv_options_init(&o);
  o.create = 1;
  tk_check(tkv_open(dir, &o, &db), "open");
  return db;
}

/* Close the store. */
static void tk_close(void *h) { tk_check(tkv_close(h), "close"); }
/* Begin the bulk transaction. */
static void tk_begin(void *h) { tk_check(tkv_begin(h), "begin"); }
/* Commit the bulk transaction. */
static void tk_commit(void *h) { tk_check(tkv_commit(h), "commit"); }

/* Put inside the bulk transaction. */
static void tk_put(void *h, const uint8_t *k, const uint8_t *v) {
  tk_check(tkv_put(h, k, BENCH_KEY_LEN, v, BENCH_VAL_LEN), "put");
}

/* Delete inside the bulk transaction. */
static void tk_del(void *h, const uint8_t *k) {
  tk_check(tkv_delete(h, k, BENCH_KEY_LEN), "delete");
}

/* Point get. */
static int tk_get(void *h, const uint8_t *k) {
  void *v;
  size_t len;
  int rc = tkv_get(h, k, BENCH_KEY_LEN, &v, &len);
  if (rc == TKV_NOTFOUND) return 0;
  tk_check(rc, "get");
  touch(v, len);
  tkv_free(v);
  return 1;
}

/* Full ordered scan reading every value. */
static uint64_t tk_scan(void *h) {
  tkv_cursor *c;
  uint64_t n = 0;
  tk_check(tkv_cursor_open(h, &c), "cursor_open");
  tk_check(tkv_cursor_seek(c, NULL, 0), "cursor_seek");
  while (tkv_cursor_valid(c)) {
    const void *k;
    void *v;
    size_t kl, vl;
    tkv_cursor_key(c, &k, &kl);
    tk_check(tkv_cursor_value(c, &v, &vl), "cursor_value");
    touch(v, vl);
    tkv_free(v);
    n++;
    tk_check(tkv_cursor_next(c), "cursor_next");
  }
  tkv_cursor_close(c);
  return n;
}

/* Durable autocommit put (the store is opened with sync=full). */
static void tk_put_sync(void *h, const uint8_t *k, const uint8_t *v) {
  tk_put(h, k, v);
}

/* keydir_bytes / keys from tkv_stats_get. */
static double tk_keydir(void *h) {
  tkv_stats st;
  tk_check(tkv_stats_get(h, &st), "stats");
  return st.keys ? (double)st.keydir_bytes / (double)st.keys : NAN;
}

static const engine eng_tinkv = {
  "tinkv", tk_open, tk_close, tk_begin, tk_put, tk_del, tk_commit,
  nop, nop, tk_get, tk_scan, tk_put_sync, tk_keydir
};
#endif

/* ----------------------------------------------------------- LevelDB. */

typedef struct ldb {
  leveldb_t *db;
  leveldb_options_t *opt;
  leveldb_filterpolicy_t *bloom;
  leveldb_readoptions_t *ro;
  leveldb_writeoptions_t *wo, *wo_sync;
  leveldb_writebatch_t *wb;
  uint64_t inbatch;
} ldb;

/* Die with LevelDB's message when err is set. */
static void ldb_check(char *err, const char *what) {
  if (err) bench_die("leveldb %s: %s", what, err);
}

/* Open with defaults plus a 10-bit bloom filter. */
static void *ldb_open(const char *dir) {
  ldb *l = calloc(1, sizeof *l);
  char *err = NULL;
  l->opt = leveldb_options_create();
  leveldb_options_set_create_if_missing(l->opt, 1);
  l->bloom = leveldb_filterpolicy_create_bloom(10);
  leveldb_options_set_filter_policy(l->opt, l->bloom);
  l->ro = leveldb_readoptions_create();
  l->wo = leveldb_writeoptions_create();
  l->wo_sync = leveldb_writeoptions_create();
  leveldb_writeoptions_set_sync(l->wo_sync, 1);
  l->wb = leveldb_writebatch_create();
  l->db = leveldb_open(l->opt, dir, &err);
  ldb_check(err, "open");
  return l;
}

/* Close and free everything. */
static void ldb_close(void *h) {
  ldb *l = h;
  leveldb_close(l->db);
  leveldb_writebatch_destroy(l->wb);
  leveldb_writeoptions_destroy(l->wo);
  leveldb_writeoptions_destroy(l->wo_sync);
  leveldb_readoptions_destroy(l->ro);
  leveldb_options_destroy(l->opt);
  leveldb_filterpolicy_destroy(l->bloom);
  free(l);
}

/* Write the pending batch (sync=false). */
static void ldb_flush(ldb *l) {
  char *err = NULL;
  if (l->inbatch == 0) return;
  leveldb_write(l->db, l->wo, l->wb, &err);
  ldb_check(err, "write");
  leveldb_writebatch_clear(l->wb);
  l->inbatch = 0;
}

/* Add a put to the batch. */
static void ldb_put(void *h, const uint8_t *k, const uint8_t *v) {
  ldb *l = h;
  leveldb_writebatch_put(l->wb, (const char *)k, BENCH_KEY_LEN,
                         (const char *)v, BENCH_VAL_LEN);
  if (++l->inbatch >= peer_batch) ldb_flush(l);
}

/* Add a delete to the batch. */
static void ldb_del(void *h, const uint8_t *k) {
  ldb *l = h;
  leveldb_writebatch_delete(l->wb, (const char *)k, BENCH_KEY_LEN);
  if (++l->inbatch >= peer_batch) ldb_flush(l);
}

/* Write what is left of the batch. */
static void ldb_commit(void *h) { ldb_flush(h); }

/* Point get. */
static int ldb_get(void *h, const uint8_t *k) {
  ldb *l = h;
  char *err = NULL;
  size_t len;
  char *v = leveldb_get(l->db, l->ro, (const char *)k, BENCH_KEY_LEN, &len,
                        &err);
  ldb_check(err, "get");
  if (v == NULL) return 0;
  touch(v, len);
  leveldb_free(v);
  return 1;
}

/* Full ordered scan. */
static uint64_t ldb_scan(void *h) {
  ldb *l = h;
  uint64_t n = 0;
  leveldb_iterator_t *it = leveldb_create_iterator(l->db, l->ro);
  for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it);
       leveldb_iter_next(it)) {
    size_t kl, vl;
    (void)leveldb_iter_key(it, &kl);
    const char *v = leveldb_iter_value(it, &vl);
    touch(v, vl);
    n++;
  }
  leveldb_iter_destroy(it);
  return n;
}

/* Put with sync=true. */
static void ldb_put_sync(void *h, const uint8_t *k, const uint8_t *v) {
  ldb *l = h;
  char *err = NULL;
  leveldb_put(l->db, l->wo_sync, (const char *)k, BENCH_KEY_LEN,
              (const char *)v, BENCH_VAL_LEN, &err);
  ldb_check(err, "put");
}

static const engine eng_leveldb = {
  "LevelDB", ldb_open, ldb_close, nop, ldb_put, ldb_del, ldb_commit,
  nop, nop, ldb_get, ldb_scan, ldb_put_sync, NULL
};

/* ----------------------------------------------------------- RocksDB. */

typedef struct rdb {
  rocksdb_t *db;
  rocksdb_options_t *opt;
  rocksdb_block_based_table_options_t *bbt;
  rocksdb_readoptions_t *ro;
  rocksdb_writeoptions_t *wo, *wo_sync;
  rocksdb_writebatch_t *wb;
  uint64_t inbatch;
} rdb;

/* Die with RocksDB's message when err is set. */
static void rdb_check(char *err, const char *what) {
  if (err) bench_die("rocksdb %s: %s", what, err);
}

/* Open with defaults plus a 10-bit bloom filter. */
static void *rdb_open(const char *dir) {
  rdb *r = calloc(1, sizeof *r);
  char *err = NULL;
  r->opt = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(r->opt, 1);
  r->bbt = rocksdb_block_based_options_create();
  rocksdb_block_based_options_set_filter_policy(
      r->bbt, rocksdb_filterpolicy_create_bloom(10));
  rocksdb_options_set_block_based_table_factory(r->opt, r->bbt);
  r->ro = rocksdb_readoptions_create();
  r->wo = rocksdb_writeoptions_create();
  r->wo_sync = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(r->wo_sync, 1);
  r->wb = rocksdb_writebatch_create();
  r->db = rocksdb_open(r->opt, dir, &err);
  rdb_check(err, "open");
  return r;
}

/* Close and free everything. */
static void rdb_close(void *h) {
  rdb *r = h;
  rocksdb_close(r->db);
  rocksdb_writebatch_destroy(r->wb);
  rocksdb_writeoptions_destroy(r->wo);
  rocksdb_writeoptions_destroy(r->wo_sync);
  rocksdb_readoptions_destroy(r->ro);
  rocksdb_options_destroy(r->opt);
  rocksdb_block_based_options_destroy(r->bbt);
  free(r);
}

/* Write the pending batch (sync=false). */
static void rdb_flush(rdb *r) {
  char *err = NULL;
  if (r->inbatch == 0) return;
  rocksdb_write(r->db, r->wo, r->wb, &err);
  rdb_check(err, "write");
  rocksdb_writebatch_clear(r->wb);
  r->inbatch = 0;
}

/* Add a put to the batch. */
static void rdb_put(void *h, const uint8_t *k, const uint8_t *v) {
  rdb *r = h;
  rocksdb_writebatch_put(r->wb, (const char *)k, BENCH_KEY_LEN,
                         (const char *)v, BENCH_VAL_LEN);
  if (++r->inbatch >= peer_batch) rdb_flush(r);
}

/* Add a delete to the batch. */
static void rdb_del(void *h, const uint8_t *k) {
  rdb *r = h;
  rocksdb_writebatch_delete(r->wb, (const char *)k, BENCH_KEY_LEN);
  if (++r->inbatch >= peer_batch) rdb_flush(r);
}

/* Write what is left of the batch. */
static void rdb_commit(void *h) { rdb_flush(h); }

/* Point get. */
static int rdb_get(void *h, const uint8_t *k) {
  rdb *r = h;
  char *err = NULL;
  size_t len;
  char *v = rocksdb_get(r->db, r->ro, (const char *)k, BENCH_KEY_LEN, &len,
                        &err);
  rdb_check(err, "get");
  if (v == NULL) return 0;
  touch(v, len);
  rocksdb_free(v);
  return 1;
}

/* Full ordered scan. */
static uint64_t rdb_scan(void *h) {
  rdb *r = h;
  uint64_t n = 0;
  rocksdb_iterator_t *it = rocksdb_create_iterator(r->db, r->ro);
  for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
       rocksdb_iter_next(it)) {
    size_t kl, vl;
    (void)rocksdb_iter_key(it, &kl);
    const char *v = rocksdb_iter_value(it, &vl);
    touch(v, vl);
    n++;
  }
  rocksdb_iter_destroy(it);
  return n;
}

/* Put with sync=true. */
static void rdb_put_sync(void *h, const uint8_t *k, const uint8_t *v) {
  rdb *r = h;
  char *err = NULL;
  rocksdb_put(r->db, r->wo_sync, (const char *)k, BENCH_KEY_LEN,
              (const char *)v, BENCH_VAL_LEN, &err);
  rdb_check(err, "put");
}

static const engine eng_rocksdb = {
  "RocksDB", rdb_open, rdb_close, nop, rdb_put, rdb_del, rdb_commit,
  nop, nop, rdb_get, rdb_scan, rdb_put_sync, NULL
};

/* -------------------------------------------------------------- LMDB. */

typedef struct lmdb {
  MDB_env *env;
  MDB_dbi dbi;
  MDB_txn *txn;   /* the open bulk or read transaction */
} lmdb;

/* Die with LMDB's message when rc is not 0. */
static void lm_check(int rc, const char *what) {
  if (rc) bench_die("lmdb %s: %s", what, mdb_strerror(rc));
}

static size_t lm_mapsize;

/* Open a default (synchronous) environment with a large map. */
static void *lm_open(const char *dir) {
  lmdb *m = calloc(1, sizeof *m);
  MDB_txn *txn;
  lm_check(mdb_env_create(&m->env), "env_create");
  lm_check(mdb_env_set_mapsize(m->env, lm_mapsize), "set_mapsize");
  lm_check(mdb_env_open(m->env, dir, 0, 0664), "env_open");
  lm_check(mdb_txn_begin(m->env, NULL, 0, &txn), "txn_begin");
  lm_check(mdb_dbi_open(txn, NULL, 0, &m->dbi), "dbi_open");
  lm_check(mdb_txn_commit(txn), "commit");
  return m;
}

/* Close the environment. */
static void lm_close(void *h) {
  lmdb *m = h;
  mdb_env_close(m->env);
  free(m);
}

/* Begin the bulk write transaction. */
static void lm_begin(void *h) {
  lmdb *m = h;
  lm_check(mdb_txn_begin(m->env, NULL, 0, &m->txn), "txn_begin");
}

/* Put inside the bulk transaction. */
static void lm_put(void *h, const uint8_t *k, const uint8_t *v) {
  lmdb *m = h;
  MDB_val key = {BENCH_KEY_LEN, (void *)k}, val = {BENCH_VAL_LEN, (void *)v};
  lm_check(mdb_put(m->txn, m->dbi, &key, &val, 0), "put");
}

/* Delete inside the bulk transaction. */
static void lm_del(void *h, const uint8_t *k) {
  lmdb *m = h;
  MDB_val key = {BENCH_KEY_LEN, (void *)k};
  lm_check(mdb_del(m->txn, m->dbi, &key, NULL), "del");
}

/* Commit the bulk transaction. */
static void lm_commit(void *h) {
  lmdb *m = h;
  lm_check(mdb_txn_commit(m->txn), "commit");
  m->txn = NULL;
}

/* Begin the read-only transaction a read phase runs in. */
static void lm_read_begin(void *h) {
  lmdb *m = h;
  lm_check(mdb_txn_begin(m->env, NULL, MDB_RDONLY, &m->txn), "txn_begin");
}

/* End the read-only transaction. */
static void lm_read_end(void *h) {
  lmdb *m = h;
  mdb_txn_abort(m->txn);
  m->txn = NULL;
}

/* Point get inside the read transaction. */
static int lm_get(void *h, const uint8_t *k) {
  lmdb *m = h;
  MDB_val key = {BENCH_KEY_LEN, (void *)k}, val;
  int rc = mdb_get(m->txn, m->dbi, &key, &val);
  if (rc == MDB_NOTFOUND) return 0;
  lm_check(rc, "get");
  touch(val.mv_data, val.mv_size);
  return 1;
}

/* Full ordered scan with a cursor. */
static uint64_t lm_scan(void *h) {
  lmdb *m = h;
  MDB_cursor *c;
  MDB_val key, val;
  uint64_t n = 0;
  int rc;
  lm_check(mdb_cursor_open(m->txn, m->dbi, &c), "cursor_open");
  for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
    touch(val.mv_data, val.mv_size);
    n++;
  }
  if (rc != MDB_NOTFOUND) lm_check(rc, "cursor_get");
  mdb_cursor_close(c);
  return n;
}

/* One durable write transaction per key. */
static void lm_put_sync(void *h, const uint8_t *k, const uint8_t *v) {
  lm_begin(h);
  lm_put(h, k, v);
  lm_commit(h);
}

static const engine eng_lmdb = {
  "LMDB", lm_open, lm_close, lm_begin, lm_put, lm_del, lm_commit,
  lm_read_begin, lm_read_end, lm_get, lm_scan, lm_put_sync, NULL
};

/* ------------------------------------------------- Machine floors. */

enum { F_SYSCALL, F_PREAD, F_SYNC_APPEND, F_SYNC_PREALLOC, NFLOOR };

/* Write len bytes at off or die. */
static void pwrite_all(int fd, const void *buf, size_t len, off_t off) {
  if (pwrite(fd, buf, len, off) != (ssize_t)len)
    bench_die("pwrite: %s", strerror(errno));
}

/* The costs the engines build on, measured on the same file system:
** bare system calls per second, page-cached 100-byte preads per second, and the microseconds of an
** fdatasync after a 128-byte append and after a 128-byte write into
** preallocated space (fallocate, so the file size does not change). */
static void run_floors(void *arg, double *out) {
  const char *dir = arg;
  char path[4096];
  uint8_t buf[4096];
  size_t fsize = 64u << 20;
  int fd, nsync = 500;
  uint64_t reads = 2000000;
  double t;

  snprintf(path, sizeof path, "%s/floors", dir);
  bench_rmtree(path);
  bench_mkdirs(path);
  snprintf(path, sizeof path, "%s/floors/f", dir);
  fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) bench_die("open %s: %s", path, strerror(errno));
  memset(buf, 0x5a, sizeof buf);
  for (size_t off = 0; off < fsize; off += sizeof buf)
    pwrite_all(fd, buf, sizeof buf, (off_t)off);
  t = bench_now();
  for (uint64_t i = 0; i < reads; i++) sink += (unsigned)getppid();
  out[F_SYSCALL] = (double)reads / (bench_now() - t);
  t = bench_now();
  for (uint64_t i = 0; i < reads; i++) {
    uint64_t off = (i * 0x9E3779B97F4A7C15ull >> 20) % (fsize - 100);
    if (pread(fd, buf, 100, (off_t)off) != 100) bench_die("pread");
    sink += buf[0];
  }
  out[F_PREAD] = (double)reads / (bench_now() - t);
  close(fd);

  fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  t = bench_now();
  for (int i = 0; i < nsync; i++) {
    pwrite_all(fd, buf, 128, (off_t)i * 128);
    if (fdatasync(fd) != 0) bench_die("fdatasync: %s", strerror(errno));
  }
  out[F_SYNC_APPEND] = (bench_now() - t) / nsync * 1e6;
  close(fd);

  fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (posix_fallocate(fd, 0, 4u << 20) != 0) bench_die("fallocate");
  if (fsync(fd) != 0) bench_die("fsync");
  t = bench_now();
  for (int i = 0; i < nsync; i++) {
    pwrite_all(fd, buf, 128, (off_t)i * 128);
    if (fdatasync(fd) != 0) bench_die("fdatasync: %s", strerror(errno));
  }
  out[F_SYNC_PREALLOC] = (bench_now() - t) / nsync * 1e6;
  close(fd);
  snprintf(path, sizeof path, "%s/floors", dir);
  bench_rmtree(path);
}

/* ------------------------------------------------------------ Driver. */

static const engine *engines[] = {
#ifdef HAVE_TINKV
  &eng_tinkv,
#endif
  &eng_leveldb, &eng_rocksdb, &eng_lmdb
};
#define NENG ((int)(sizeof engines / sizeof engines[0]))

static bench_cfg cfg;

typedef struct job {
  const engine *e;
  char dir[4096];
} job;

/* Run every phase on one engine (in the child process). */
static void run_engine(void *arg, double *out) {
  job *j = arg;
  const engine *e = j->e;
  uint64_t n = cfg.n, ndel = n / 10, found;
  uint8_t k[BENCH_KEY_LEN];
  bench_perm p;
  void *h;
  double t;

  bench_rmtree(j->dir);
  bench_mkdirs(j->dir);
  (void)bench_val(0, 0);
  bench_reset_peak_rss();
  h = e->open(j->dir);

  t = bench_now();
  e->begin(h);
  for (uint64_t i = 0; i < n; i++) {
    bench_key(i, k);
    e->put(h, k, bench_val(i, 0));
  }
  e->commit(h);
  out[M_FILL] = (double)n / (bench_now() - t);
  if (e->keydir_per_key) out[M_KEYDIR] = e->keydir_per_key(h);

  p = bench_perm_make(n, 101);
  t = bench_now();
  e->begin(h);
  for (uint64_t i = 0; i < n; i++) {
    uint64_t x = bench_perm_at(&p, i);
    bench_key(x, k);
    e->put(h, k, bench_val(x, 1));
  }
  e->commit(h);
  out[M_OVER] = (double)n / (bench_now() - t);

  p = bench_perm_make(n, 202);
  found = 0;
  t = bench_now();
  e->read_begin(h);
  for (uint64_t i = 0; i < n; i++) {
    bench_key(bench_perm_at(&p, i), k);
    found += (uint64_t)e->get(h, k);
  }
  e->read_end(h);
  out[M_READ] = (double)n / (bench_now() - t);
  if (found != n) bench_die("%s readrandom: %llu of %llu found", e->name,
                            (unsigned long long)found, (unsigned long long)n);

  found = 0;
  t = bench_now();
  e->read_begin(h);
  for (uint64_t i = 0; i < n; i++) {
    bench_key(BENCH_MISS_BASE + i, k);
    found += (uint64_t)e->get(h, k);
  }
  e->read_end(h);
  out[M_MISS] = (double)n / (bench_now() - t);
  if (found != 0) bench_die("%s readmissing: %llu found", e->name,
                            (unsigned long long)found);

  t = bench_now();
  e->read_begin(h);
  found = e->scan(h);
  e->read_end(h);
  out[M_SCAN] = (double)found / (bench_now() - t);
  if (found != n) bench_die("%s scan: %llu of %llu keys", e->name,
                            (unsigned long long)found, (unsigned long long)n);

  p = bench_perm_make(n, 303);
  t = bench_now();
  e->begin(h);
  for (uint64_t i = 0; i < ndel; i++) {
    bench_key(bench_perm_at(&p, i), k);
    e->del(h, k);
  }
  e->commit(h);
  out[M_DEL] = (double)ndel / (bench_now() - t);

  t = bench_now();
  for (uint64_t i = 0; i < cfg.sync_n; i++) {
    bench_key(BENCH_SYNC_BASE + i, k);
    e->put_sync(h, k, bench_val(i, 2));
  }
  out[M_SYNC] = (double)cfg.sync_n / (bench_now() - t);

  e->close(h);
  out[M_DISK] = bench_disk_bytes(j->dir);
  t = bench_now();
  h = e->open(j->dir);
  out[M_REOPEN] = bench_now() - t;
  /* Check the reopened store: a surviving key, a deleted key, a synced key. */
  e->read_begin(h);
  bench_key(bench_perm_at(&p, ndel), k);
  if (!e->get(h, k)) bench_die("%s reopen: a present key is missing", e->name);
  bench_key(bench_perm_at(&p, 0), k);
  if (ndel && e->get(h, k)) bench_die("%s reopen: a deleted key is back",
                                      e->name);
  bench_key(BENCH_SYNC_BASE + cfg.sync_n - 1, k);
  if (!e->get(h, k)) bench_die("%s reopen: a synced key is missing", e->name);
  e->read_end(h);
  e->close(h);
  out[M_RSS] = bench_peak_rss();
  bench_rmtree(j->dir);
}

/* Print one table row of rates (or other values via fmt) for all engines
** plus tinkv's ratio to each peer. */
static void print_row(const char *label, double med[][NMET], int m,
                      int kind, int have_tinkv) {
  char buf[64];
  printf("| %s |", label);
  for (int e = 0; e < NENG; e++) {
    double v = med[e][m];
    if (isnan(v)) printf(" - |");
    else if (kind == 0) printf(" %s |", bench_fmt_rate(v, buf, sizeof buf));
    else if (kind == 1) printf(" %.0f MB |", v / 1e6);
    else if (kind == 2) printf(" %.1f |", v);
    else printf(v < 0.01 ? " %.1f ms |" : " %.0f ms |", v * 1e3);
  }
  if (have_tinkv) {
    for (int e = 1; e < NENG; e++) {
      if (kind == 2 || isnan(med[0][m]) || isnan(med[e][m])) printf(" - |");
      else printf(" %s |", bench_fmt_ratio(med[0][m], med[e][m], buf,
                                             sizeof buf));
    }
  }
  printf("\n");
}

/* Index of the engine named `name` in engines[], or -1. */
static int eng_index(const char *name) {
  for (int e = 0; e < NENG; e++)
    if (strcmp(engines[e]->name, name) == 0) return e;
  return -1;
}

/* Print one target line: tinkv's metric m against engine `peer`. */
static void print_target(double med[][NMET], const char *what, int m,
                         const char *peer, double goal) {
  int e = eng_index(peer);
  double r;
  if (e < 0 || isnan(med[0][m]) || isnan(med[e][m])) {
    printf("| %s vs %s | >= %.1fx | - | - |\n", what, peer, goal);
    return;
  }
  r = med[0][m] / med[e][m];
  printf("| %s vs %s | >= %.1fx | %.2fx | %s |\n", what, peer, goal, r,
         r >= goal ? "met" : "**missed**");
}

int main(void) {
  static double res[16][NMET][64];
  double med[16][NMET], floor[NFLOOR][64], fmed[NFLOOR];
  char dflt[4096];
  int have_tinkv = 0;
  const char *e;

  snprintf(dflt, sizeof dflt, "build/bench/tmp");
  bench_cfg_load(&cfg, dflt);
  if ((e = getenv("BENCH_BATCH")) && *e) peer_batch = strtoull(e, NULL, 10);
  if (peer_batch == 0) peer_batch = 1;
  if (cfg.reps > 64) cfg.reps = 64;
  lm_mapsize = (size_t)(cfg.n + cfg.sync_n) * 1024 + (64u << 20);
  bench_mkdirs(cfg.dir);
#ifdef HAVE_TINKV
  have_tinkv = 1;
#endif

  printf("\n## Core engines: %llu keys of %d bytes, %d-byte values, "
         "%llu durable commits, median of %d runs\n\n",
         (unsigned long long)cfg.n, BENCH_KEY_LEN, BENCH_VAL_LEN,
         (unsigned long long)cfg.sync_n, cfg.reps);
  bench_print_machine(cfg.dir);
  if (strcmp(bench_fstype(cfg.dir), "tmpfs") == 0)
    printf("WARNING: %s is tmpfs; durable commits are meaningless there.\n",
           cfg.dir);
  printf("LevelDB %d.%d, RocksDB (Debian librocksdb-dev), %s.\n",
         leveldb_major_version(), leveldb_minor_version(),
         mdb_version(NULL, NULL, NULL));
#ifdef HAVE_TINKV
  printf("tinkv %s.\n", tkv_version());
#else
  printf("tinkv: build/libtinkv.a not built; peers only.\n");
#endif
  fflush(stdout);

  for (int r = 0; r < cfg.reps; r++) {
    double f[NFLOOR];
    bench_run_child(run_floors, (void *)cfg.dir, f, NFLOOR);
    for (int m = 0; m < NFLOOR; m++) floor[m][r] = f[m];
    for (int i = 0; i < NENG; i++) {
      job j;
      double out[NMET];
      j.e = engines[i];
      for (int m = 0; m < NMET; m++) res[i][m][r] = NAN;
      if (!bench_selected(&cfg, j.e->name)) continue;
      snprintf(j.dir, sizeof j.dir, "%s/core-%s", cfg.dir, j.e->name);
      fprintf(stderr, "run %d/%d: %s...\n", r + 1, cfg.reps, j.e->name);
      if (bench_run_child(run_engine, &j, out, NMET) != 0)
        fprintf(stderr, "%s: run %d failed\n", j.e->name, r + 1);
      for (int m = 0; m < NMET; m++) res[i][m][r] = out[m];
    }
  }
  for (int i = 0; i < NENG; i++)
    for (int m = 0; m < NMET; m++) med[i][m] = bench_median(res[i][m], cfg.reps);

  printf("\n| ops/s (median) |");
  for (int i = 0; i < NENG; i++) printf(" %s |", engines[i]->name);
  if (have_tinkv)
    for (int i = 1; i < NENG; i++) printf(" tinkv/%s |", engines[i]->name);
  printf("\n|---|");
  for (int i = 0; i < NENG + (have_tinkv ? NENG - 1 : 0); i++) printf("---:|");
  printf("\n");
  print_row("fillrandom", med, M_FILL, 0, have_tinkv);
  print_row("overwrite", med, M_OVER, 0, have_tinkv);
  print_row("readrandom", med, M_READ, 0, have_tinkv);
  print_row("readmissing", med, M_MISS, 0, have_tinkv);
  print_row("scan (keys/s)", med, M_SCAN, 0, have_tinkv);
  print_row("deleterandom 10%", med, M_DEL, 0, have_tinkv);
  print_row("durable commits", med, M_SYNC, 0, have_tinkv);
  print_row("peak RSS", med, M_RSS, 1, have_tinkv);
  print_row("keydir bytes/key", med, M_KEYDIR, 2, have_tinkv);
  print_row("disk after run", med, M_DISK, 1, have_tinkv);
  print_row("reopen", med, M_REOPEN, 3, have_tinkv);
  for (int m = 0; m < NFLOOR; m++) fmed[m] = bench_median(floor[m], cfg.reps);
  printf("\nRatios are tinkv's median over the peer's (for peak RSS, disk "
         "and reopen, lower is better).\n");
  printf("Floors of this machine: a bare system call (getppid) %.2fM/s, "
         "a page-cached 100-byte pread at a random offset %.2fM/s; "
         "fdatasync after a 128-byte append %.0f us, after a write into "
         "preallocated space %.0f us.\n", fmed[F_SYSCALL] / 1e6,
         fmed[F_PREAD] / 1e6,
         fmed[F_SYNC_APPEND], fmed[F_SYNC_PREALLOC]);

  if (have_tinkv) {
    double kpk = med[0][M_KEYDIR], ro = med[0][M_REOPEN];
    printf("\n| target | goal | measured | |\n|---|---|---:|---|\n");
    print_target(med, "fillrandom", M_FILL, "LevelDB", 2.0);
    print_target(med, "readrandom", M_READ, "LMDB", 1.0);
    print_target(med, "durable commits", M_SYNC, "LevelDB", 1.5);
    printf("| keydir bytes/key | <= %d | %.1f | %s |\n", BENCH_KEY_LEN + 32,
           kpk, isnan(kpk) ? "-" : kpk <= BENCH_KEY_LEN + 32 ? "met"
                                                            : "**missed**");
    printf("| reopen of %llu keys | < 500 ms | %.0f ms | %s |\n",
           (unsigned long long)cfg.n, ro * 1e3,
           isnan(ro) ? "-" : (cfg.n < 1000000 ? "(needs BENCH_N=1000000)"
                              : ro < 0.5 ? "met" : "**missed**"));
  }
  return 0;
}
