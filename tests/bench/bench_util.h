/*
** Shared pieces of the benchmarks: keys and values, timing, key orders,
** running each engine in a child process, medians and Markdown output.
**
** Keys are 16 bytes, derived from an index by a 64-bit bijective mix, so
** index order is a random order of keys, distinct indexes give distinct
** keys, and no key table has to be held in memory (the harness's own
** memory stays a few MB and the peak RSS measured is the engine's).
*/
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_KEY_LEN 16
#define BENCH_VAL_LEN 100

/* Index ranges of the key sets: [0,N) present keys, [MISS_BASE, +N) keys
** that are never written, [SYNC_BASE, +S) keys of the durable phase. */
#define BENCH_MISS_BASE (1ull << 40)
#define BENCH_SYNC_BASE (2ull << 40)

/* A permutation of 0..n-1: i -> (a*i + b) mod n with gcd(a, n) = 1. */
typedef struct bench_perm {
  uint64_t n, a, b;
} bench_perm;

/* Settings read from the environment (see the Makefile). */
typedef struct bench_cfg {
  uint64_t n;        /* BENCH_N: keys (default 1000000) */
  uint64_t sync_n;   /* BENCH_SYNC_N: durable single-key commits (10000) */
  int reps;          /* BENCH_REPS: runs of every engine (3) */
  const char *dir;   /* BENCH_DIR: scratch directory */
  const char *only;  /* BENCH_ENGINES: comma list of engines to run, or NULL */
} bench_cfg;

/* Fill *cfg from the environment; exits with a message on a bad value. */
void bench_cfg_load(bench_cfg *cfg, const char *default_dir);
/* Nonzero if engine `name` is selected by cfg->only. */
int bench_selected(const bench_cfg *cfg, const char *name);

/* Write the 16-byte key of index i into k. */
void bench_key(uint64_t i, uint8_t *k);
/* A 100-byte value for index i in phase `phase` (points into a shared
** buffer of random bytes; different phases give different values). */
const uint8_t *bench_val(uint64_t i, unsigned phase);
/* A permutation of 0..n-1 chosen by seed. */
bench_perm bench_perm_make(uint64_t n, uint64_t seed);
/* The i-th element of permutation p. */
static inline uint64_t bench_perm_at(const bench_perm *p, uint64_t i) {
  return (p->a * i + p->b) % p->n;
}

/* Monotonic time in seconds. */
double bench_now(void);

/* Reset the process's peak RSS (VmHWM) to its current RSS. */
void bench_reset_peak_rss(void);
/* Peak RSS (VmHWM) of the process in bytes. */
double bench_peak_rss(void);
/* Bytes allocated on disk (st_blocks) by the files under `path`. */
double bench_disk_bytes(const char *path);
/* Remove `path` and everything under it; missing is not an error. */
void bench_rmtree(const char *path);
/* Create `path` and its parents. */
void bench_mkdirs(const char *path);
/* The file-system type name of `path` ("ext2/ext3", "tmpfs", ...). */
const char *bench_fstype(const char *path);

/* Print a message and exit the process with status 1. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
** Run fn(arg, out) in a child process and copy its `nout` result doubles
** back into out.  The results are NaN when the child fails.  Returns 0 if
** the child succeeded.
*/
int bench_run_child(void (*fn)(void *arg, double *out), void *arg,
                    double *out, int nout);

/* Median of the non-NaN values among v[0..n-1]; NaN when there are none.
** Reorders v. */
double bench_median(double *v, int n);

/* Format ops/s (e.g. "1.23M", "456k") into buf. */
const char *bench_fmt_rate(double v, char *buf, size_t len);
/* Format a ratio a/b (e.g. "2.31x"), or "-" when either is missing. */
const char *bench_fmt_ratio(double a, double b, char *buf, size_t len);

/* Print the machine facts (CPU, cores, kernel, file system of dir). */
void bench_print_machine(const char *dir);

#endif /* BENCH_UTIL_H */
