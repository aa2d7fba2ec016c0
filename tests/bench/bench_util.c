/*
** Shared pieces of the benchmarks (see bench_util.h).
*/
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VALBUF_SIZE (1u << 20)

static uint8_t valbuf[VALBUF_SIZE + BENCH_VAL_LEN];
static int valbuf_ready;

/* splitmix64's finalizer: a bijection on 64-bit integers. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

/* Print a message and exit the process with status 1. */
void bench_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

/* Read an unsigned integer from environment variable `name`. */
static uint64_t env_u64(const char *name, uint64_t dflt) {
  const char *s = getenv(name);
  char *end;
  unsigned long long v;
  if (s == NULL || *s == '\0') return dflt;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno || *end != '\0' || v == 0) bench_die("bad %s=%s", name, s);
  return v;
}

/* Fill *cfg from the environment. */
void bench_cfg_load(bench_cfg *cfg, const char *default_dir) {
  const char *d = getenv("BENCH_DIR");
  const char *e = getenv("BENCH_ENGINES");
  cfg->n = env_u64("BENCH_N", 1000000);
  cfg->sync_n = env_u64("BENCH_SYNC_N", 10000);
  cfg->reps = (int)env_u64("BENCH_REPS", 3);
  cfg->dir = (d && *d) ? d : default_dir;
  cfg->only = (e && *e) ? e : NULL;
  if (cfg->n > (1ull << 32)) bench_die("BENCH_N too large");
}

/* Nonzero if engine `name` is in the comma list cfg->only (or no list). */
int bench_selected(const bench_cfg *cfg, const char *name) {
  const char *p = cfg->only;
  size_t len = strlen(name);
  if (p == NULL) return 1;
  while (*p) {
    size_t n = strcspn(p, ",");
    if (n == len && strncasecmp(p, name, len) == 0) return 1;
    p += n;
    if (*p == ',') p++;
  }
  return 0;
}

/* Write the 16-byte key of index i into k (big-endian halves). */
void bench_key(uint64_t i, uint8_t *k) {
  uint64_t h1 = mix64(i), h2 = mix64(i ^ 0x5bd1e9955bd1e995ull);
  for (int b = 0; b < 8; b++) {
    k[b] = (uint8_t)(h1 >> (56 - 8 * b));
    k[8 + b] = (uint8_t)(h2 >> (56 - 8 * b));
  }
}

/* A 100-byte value for index i in phase `phase`. */
const uint8_t *bench_val(uint64_t i, unsigned phase) {
  if (!valbuf_ready) {
    uint64_t s = 0x1234567;
    for (size_t j = 0; j < sizeof valbuf; j++) valbuf[j] = (uint8_t)mix64(s++);
    valbuf_ready = 1;
  }
  return valbuf + ((i * 2654435761ull + phase * 7919ull) & (VALBUF_SIZE - 1));
}

/* Greatest common divisor. */
static uint64_t gcd(uint64_t a, uint64_t b) {
  while (b) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* A permutation of 0..n-1 chosen by seed. */
bench_perm bench_perm_make(uint64_t n, uint64_t seed) {
  bench_perm p;
  p.n = n;
  p.a = n > 1 ? mix64(seed) % n : 1;
  if (p.a == 0) p.a = 1;
  while (gcd(p.a, n) != 1) p.a = p.a + 1 < n ? p.a + 1 : 1;
  p.b = mix64(seed + 1) % n;
  return p;
}

/* Monotonic time in seconds. */
double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Reset VmHWM to the current RSS (Linux: write 5 to clear_refs). */
void bench_reset_peak_rss(void) {
  int fd = open("/proc/self/clear_refs", O_WRONLY);
  if (fd >= 0) {
    if (write(fd, "5", 1) < 0) { /* older kernels: peak since start */ }
    close(fd);
  }
}

/* Peak RSS (VmHWM) of the process in bytes. */
double bench_peak_rss(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  double kb = NAN;
  if (f == NULL) return NAN;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) kb = strtod(line + 6, NULL);
  fclose(f);
  return kb * 1024.0;
}

static double disk_sum;

/* nftw callback: add the allocated bytes of one file. */
static int disk_cb(const char *p, const struct stat *st, int type,
                   struct FTW *ftw) {
  (void)p;
  (void)ftw;
  if (type == FTW_F) disk_sum += (double)st->st_blocks * 512.0;
  return 0;
}

/* Bytes allocated on disk by the files under `path`. */
double bench_disk_bytes(const char *path) {
  disk_sum = 0;
  if (nftw(path, disk_cb, 16, FTW_PHYS) != 0) return NAN;
  return disk_sum;
}

/* nftw callback: remove one entry (children come first with FTW_DEPTH). */
static int rm_cb(const char *p, const struct stat *st, int type,
                 struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if (type == FTW_DP) return rmdir(p) ? -1 : 0;
  return unlink(p) ? -1 : 0;
}

/* Remove `path` and everything under it. */
void bench_rmtree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS) != 0)
    bench_die("cannot remove %s: %s", path, strerror(errno));
}

/* Create `path` and its parents. */
void bench_mkdirs(const char *path) {
  char buf[4096];
  size_t len = strlen(path);
  if (len >= sizeof buf) bench_die("path too long: %s", path);
  memcpy(buf, path, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char c = buf[i];
      buf[i] = '\0';
      if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        bench_die("mkdir %s: %s", buf, strerror(errno));
      buf[i] = c;
    }
  }
}

/* The file-system type name of `path`. */
const char *bench_fstype(const char *path) {
  struct statfs sf;
  if (statfs(path, &sf) != 0) return "unknown";
  switch ((unsigned long)sf.f_type) {
    case 0xEF53: return "ext4";
    case 0x01021994: return "tmpfs";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x794c7630: return "overlayfs";
    default: return "other";
  }
}

/* Read exactly len bytes from fd; returns 0 on success. */
static int read_full(int fd, void *buf, size_t len) {
  char *p = buf;
  while (len > 0) {
    ssize_t r = read(fd, p, len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    len -= (size_t)r;
  }
  return 0;
}

/* Run fn in a child process and copy its results back. */
int bench_run_child(void (*fn)(void *arg, double *out), void *arg,
                    double *out, int nout) {
  int pfd[2], status = 0;
  pid_t pid;
  for (int i = 0; i < nout; i++) out[i] = NAN;
  fflush(stdout);
  fflush(stderr);
  if (pipe(pfd) != 0) bench_die("pipe: %s", strerror(errno));
  pid = fork();
  if (pid < 0) bench_die("fork: %s", strerror(errno));
  if (pid == 0) {
    close(pfd[0]);
    fn(arg, out);
    if (write(pfd[1], out, sizeof(double) * (size_t)nout) < 0) _exit(1);
    close(pfd[1]);
    fflush(stdout);
    fflush(stderr);
    _exit(0);
  }
  close(pfd[1]);
  if (read_full(pfd[0], out, sizeof(double) * (size_t)nout) != 0)
    for (int i = 0; i < nout; i++) out[i] = NAN;
  close(pfd[0]);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    for (int i = 0; i < nout; i++) out[i] = NAN;
    return -1;
  }
  return 0;
}

/* qsort comparison of doubles. */
static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of the non-NaN values among v[0..n-1]. */
double bench_median(double *v, int n) {
  int m = 0;
  for (int i = 0; i < n; i++)
    if (!isnan(v[i])) v[m++] = v[i];
  if (m == 0) return NAN;
  qsort(v, (size_t)m, sizeof *v, cmp_double);
  return m % 2 ? v[m / 2] : (v[m / 2 - 1] + v[m / 2]) / 2;
}

/* Format ops/s into buf. */
const char *bench_fmt_rate(double v, char *buf, size_t len) {
  if (isnan(v)) snprintf(buf, len, "-");
  else if (v >= 1e6) snprintf(buf, len, "%.2fM", v / 1e6);
  else if (v >= 1e4) snprintf(buf, len, "%.0fk", v / 1e3);
  else if (v >= 1e3) snprintf(buf, len, "%.1fk", v / 1e3);
  else snprintf(buf, len, "%.0f", v);
  return buf;
}

/* Format a ratio a/b into buf. */
const char *bench_fmt_ratio(double a, double b, char *buf, size_t len) {
  if (isnan(a) || isnan(b) || b == 0) snprintf(buf, len, "-");
  else snprintf(buf, len, "%.2fx", a / b);
  return buf;
}

/* Print the machine facts. */
void bench_print_machine(const char *dir) {
  struct utsname u;
  char line[512], model[256] = "unknown";
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f) {
    while (fgets(line, sizeof line, f)) {
      if (strncmp(line, "model name", 10) == 0) {
        char *p = strchr(line, ':');
        if (p) {
          p += 2;
          p[strcspn(p, "\n")] = '\0';
          snprintf(model, sizeof model, "%s", p);
        }
        break;
      }
    }
    fclose(f);
  }
  uname(&u);
  printf("Machine: %s, %ld cores, %.1f GiB RAM, Linux %s; data on %s (%s).\n",
         model, sysconf(_SC_NPROCESSORS_ONLN),
         (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) /
             (1024.0 * 1024 * 1024),
         u.release, dir, bench_fstype(dir));
}
