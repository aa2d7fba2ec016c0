/*
** tinkvctl: look after a tinkv store from the command line, the way
** mdb_stat, mdb_dump and mdb_load look after an LMDB environment.
**
**   tinkvctl stat    DIR              statistics, segments and dead ratios
**   tinkvctl check   DIR              every record, every hint; exit 1 if
**                                     anything is wrong (file + offset each)
**   tinkvctl dump    DIR [FILE]       the key/value pairs as a dump stream
**   tinkvctl load    DIR [FILE]       a dump stream into a store (created
**                                     when missing)
**   tinkvctl compact DIR              rewrite the live records, free space
**   tinkvctl backup  DIR DEST [-i]    a consistent copy (-i: incremental)
**   tinkvctl salvage DIR DEST         copy what can be read of a damaged
**                                     store into a new one
**   tinkvctl version
**
** -q turns the progress bar off (it is drawn only when stderr is a
** terminal).  The dump stream is described in core/DUMP.md.  A store open
** in another process is refused (the store is locked); check or back it
** up from that process (SQL: tinkv_check, tinkv_backup).  Exit status: 0
** success, 1 problems found (check, salvage), 2 a failure or a usage error.
*/
#include "tinkv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int quiet;            /* -q: no progress bar */
static const char *progress_what = "";
static double progress_last;

static double now_sec(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec/1e9;
}

/* A progress bar on stderr, at most ten times a second, only on a
** terminal. */
static void progress(void *ctx, uint64_t done, uint64_t total){
  double t = now_sec();
  int width = 40, fill;
  (void)ctx;
  if( quiet || !isatty(2) || total==0 ) return;
  if( done<total && t - progress_last < 0.1 ) return;
  progress_last = t;
  fill = (int)((double)width * (double)done / (double)total);
  if( fill>width ) fill = width;
  fprintf(stderr, "\r%-8s [%.*s%*s] %3d%%", progress_what, fill,
          "########################################", width - fill, "",
          (int)(100.0 * (double)done / (double)total));
}

/* Take the bar off the line before printing something else. */
static void progress_clear(void){
  if( !quiet && isatty(2) && progress_last>0 ){
    fprintf(stderr, "\r%60s\r", "");
    progress_last = 0;
  }
}

static int fail(const char *what, int rc){
  progress_clear();
  fprintf(stderr, "tinkvctl: %s: %s: %s\n", what, tkv_strerror(rc),
          tkv_errmsg());
  return 2;
}

static int open_store(const char *dir, int create, tkv_db **pdb){
  tkv_options o;
  tkv_options_init(&o);
  o.create = create;
  o.sync = TKV_SYNC_NORMAL;
  return tkv_open(dir, &o, pdb);
}

/* ------------------------------------------------------------- stat */

static int cmd_stat(const char *dir){
  tkv_db *db;
  tkv_stats st;
  tkv_segment_info *a;
  int n, rc = open_store(dir, 0, &db);
  if( rc ) return fail(dir, rc);
  rc = tkv_stats_get(db, &st);
  if( !rc ) rc = tkv_segments(db, &a, &n);
  if( rc ){ tkv_close(db); return fail("stat", rc); }
  printf("store:             %s\n", dir);
  printf("version:           %s\n", tkv_version());
  printf("keys:              %llu\n", (unsigned long long)st.keys);
  printf("live_bytes:        %llu\n", (unsigned long long)st.live_bytes);
  printf("stale_bytes:       %llu\n", (unsigned long long)st.stale_bytes);
  printf("dead_ratio:        %.3f\n", st.live_bytes + st.stale_bytes
         ? (double)st.stale_bytes / (double)(st.live_bytes + st.stale_bytes)
         : 0.0);
  printf("files:             %llu\n", (unsigned long long)st.files);
  printf("disk_bytes:        %llu\n", (unsigned long long)st.disk_bytes);
  printf("keydir_bytes:      %llu\n", (unsigned long long)st.keydir_bytes);
  printf("compact_threshold: %llu\n", (unsigned long long)st.compact_threshold);
  printf("segments:          %d\n", n);
  printf("  %-10s %12s %12s %6s %10s\n", "id", "bytes", "live", "dead", "hint");
  for(int i=0; i<n; i++){
    double dead = a[i].bytes
      ? 1.0 - (double)a[i].live_bytes / (double)a[i].bytes : 0.0;
    printf("  %010u %12llu %12llu %5.1f%% %10llu%s\n", a[i].id,
           (unsigned long long)a[i].bytes, (unsigned long long)a[i].live_bytes,
           100.0*dead, (unsigned long long)a[i].hint_bytes,
           a[i].active ? "  (active)" : "");
  }
  tkv_free(a);
  rc = tkv_close(db);
  return rc ? fail("close", rc) : 0;
}

/* ------------------------------------------------------------ check */

/* One problem per line: "FILE: offset N: what". */
static void print_problem(void *ctx, const char *file, uint64_t off,
                          const char *what){
  (void)ctx;
  progress_clear();
  printf("%s: offset %llu: %s\n", file, (unsigned long long)off, what);
  fflush(stdout);
}

static int cmd_check(const char *dir){
  tkv_check_report r;
  int rc;
  progress_what = "check";
  rc = tkv_check(dir, print_problem, progress, NULL, &r);
  if( rc && rc!=TKV_CORRUPT ) return fail(dir, rc);
  progress_clear();
  printf("check: %llu files, %llu records, %llu hint entries, %llu bytes "
         "in %.3f s: ", (unsigned long long)r.files,
         (unsigned long long)r.records, (unsigned long long)r.hint_entries,
         (unsigned long long)r.bytes, (double)r.usec/1e6);
  if( r.problems ){
    printf("%llu problem%s\n", (unsigned long long)r.problems,
           r.problems==1 ? "" : "s");
  }else{
    printf("ok\n");
  }
  return r.problems ? 1 : 0;
}

/* ------------------------------------------------------- dump, load */

/* Write bytes as one dump line (core/DUMP.md). */
static int put_line(FILE *f, const unsigned char *p, size_t n){
  static const char hex[] = "0123456789abcdef";
  fputc(' ', f);
  for(size_t i=0; i<n; i++){
    unsigned c = p[i];
    if( c=='\\' ){
      fputs("\\\\", f);
    }else if( c>=0x20 && c<0x7f ){
      fputc((int)c, f);
    }else{
      fputc('\\', f);
      fputc(hex[c>>4], f);
      fputc(hex[c&15], f);
    }
  }
  return fputc('\n', f)==EOF ? -1 : 0;
}

static int cmd_dump(const char *dir, const char *file){
  tkv_db *db;
  tkv_cursor *cur = NULL;
  FILE *out = stdout;
  uint64_t n = 0, total;
  int rc = open_store(dir, 0, &db), werr = 0, with_expiry = 0;
  if( rc ) return fail(dir, rc);
  if( file && !(out = fopen(file, "w")) ){
    fprintf(stderr, "tinkvctl: %s: %s\n", file, strerror(errno));
    tkv_close(db);
    return 2;
  }
  total = tkv_count(db);
  progress_what = "dump";
  /* Version 2 only when some key has an expiry time (an expire= line
  ** before its pair): a store without one dumps as version 1 readers
  ** expect. */
  {
    tkv_stats st;
    if( tkv_stats_get(db, &st)==TKV_OK && st.expires ) with_expiry = 1;
  }
  /* The store's recorded key/value encoding, if it has one, so that a
  ** load makes a store the same front ends accept. */
  {
    int enc = TKV_ENCODING_UNKNOWN;
    (void)tkv_encoding(db, &enc);
    fprintf(out, "tinkv-dump %d\nformat=text\n%sHEADER=END\n",
            with_expiry ? 2 : 1, enc==TKV_ENCODING_RAW ? "encoding=raw\n"
                                 : enc==TKV_ENCODING_SQL ? "encoding=sql\n"
                                 : "");
  }
  rc = tkv_cursor_open(db, &cur);
  if( !rc ) rc = tkv_cursor_seek(cur, NULL, 0);
  while( !rc && !werr && tkv_cursor_valid(cur) ){
    const void *k;
    size_t klen, vlen;
    void *v;
    uint64_t at = 0;
    tkv_cursor_key(cur, &k, &klen);
    /* The time first: a key that expires after it is dumped with it. */
    if( with_expiry ) rc = tkv_expire_get(db, k, klen, &at);
    if( !rc ) rc = tkv_cursor_value(cur, &v, &vlen);
    if( rc==TKV_NOTFOUND ){ rc = tkv_cursor_next(cur); continue; }
    if( rc ) break;
    if( at && fprintf(out, "expire=%llu\n", (unsigned long long)at)<0 ){
      werr = 1;
    }
    werr = werr || put_line(out, k, klen) || put_line(out, v, vlen);
    tkv_free(v);
    n++;
    progress(NULL, n, total>n ? total : n);
    rc = tkv_cursor_next(cur);
  }
  if( cur ) tkv_cursor_close(cur);
  if( !rc ) fprintf(out, "DATA=END records=%llu\n", (unsigned long long)n);
  progress_clear();
  if( fflush(out) || ferror(out) ) werr = 1;
  if( file && fclose(out) ) werr = 1;
  if( rc ){ fail("dump", rc); tkv_close(db); return 2; }
  tkv_close(db);
  if( werr ){
    fprintf(stderr, "tinkvctl: dump: cannot write: %s\n", strerror(errno));
    return 2;
  }
  return 0;
}

/* The value of hex digit c, or -1. */
static int hexval(char c){
  if( c>='0' && c<='9' ) return c - '0';
  if( c>='a' && c<='f' ) return c - 'a' + 10;
  return -1;
}

/* Decode dump line z (n bytes, no newline) into buf (room for n). */
static int get_line(const char *z, size_t n, unsigned char *buf,
                    size_t *plen){
  size_t o = 0;
  if( n==0 || z[0]!=' ' ) return -1;
  for(size_t i=1; i<n; i++){
    unsigned char c = (unsigned char)z[i];
    if( c=='\\' ){
      int hi, lo;
      if( i+1<n && z[i+1]=='\\' ){ buf[o++] = '\\'; i++; continue; }
      if( i+2>=n ) return -1;
      hi = hexval(z[i+1]);
      lo = hexval(z[i+2]);
      if( hi<0 || lo<0 ) return -1;
      buf[o++] = (unsigned char)(hi<<4 | lo);
      i += 2;
    }else if( c>=0x20 && c<0x7f ){
      buf[o++] = c;
    }else{
      return -1;
    }
  }
  *plen = o;
  return 0;
}

#define LOAD_BATCH 1000      /* records per transaction */

/* The name of a recorded key/value encoding. */
static const char *encoding_name(int enc){
  return enc==TKV_ENCODING_RAW ? "raw" : enc==TKV_ENCODING_SQL ? "sql"
                                                               : "none";
}

/*
** A stream's encoding= line: record it in a store that has none (a new one,
** or one the C API made); refuse a store that records another, whose front
** ends would misread the loaded bytes.  NULL, or the error for the stream
** (*prc is set on an engine error).
*/
static const char *load_encoding(tkv_db *db, int enc, int *prc){
  static char msg[128];
  int have = TKV_ENCODING_UNKNOWN;
  *prc = tkv_encoding(db, &have);
  if( !*prc && have==TKV_ENCODING_UNKNOWN ) *prc = tkv_set_encoding(db, enc);
  if( *prc || have==TKV_ENCODING_UNKNOWN || have==enc ) return NULL;
  snprintf(msg, sizeof msg, "the stream's keys and values are encoding=%s, "
           "the store records encoding=%s", encoding_name(enc),
           encoding_name(have));
  return msg;
}

static int cmd_load(const char *dir, const char *file){
  FILE *in = stdin;
  tkv_db *db = NULL;
  char *line = NULL;
  size_t cap = 0, klen = 0, keycap = 0;
  unsigned char *key = NULL, *val = NULL;
  ssize_t got;
  long lineno = 0;
  int state = 0;             /* 0 header, 1 key next, 2 value next, 3 end */
  int version = 1;
  int enc = TKV_ENCODING_UNKNOWN;   /* from an encoding= header line */
  uint64_t expire = 0;       /* of the next pair (version 2), 0: none */
  uint64_t n = 0, size = 0, done = 0;
  struct stat st;
  const char *err = NULL;
  int rc;
  if( file && !(in = fopen(file, "r")) ){
    fprintf(stderr, "tinkvctl: %s: %s\n", file, strerror(errno));
    return 2;
  }
  if( fstat(fileno(in), &st)==0 && S_ISREG(st.st_mode) ){
    size = (uint64_t)st.st_size;
  }
  progress_what = "load";
  rc = open_store(dir, 1, &db);
  if( rc ){ if( file ) fclose(in); return fail(dir, rc); }
  while( !rc && !err && (got = getline(&line, &cap, in))>=0 ){
    size_t len = (size_t)got;
    lineno++;
    done += (uint64_t)got;
    if( len==0 || line[len-1]!='\n' ){
      err = "a line without its newline (the stream is cut short)";
      break;
    }
    line[--len] = 0;
    if( state==0 ){
      if( lineno==1 ){
        if( !strcmp(line, "tinkv-dump 2") ){
          version = 2;
        }else if( strcmp(line, "tinkv-dump 1") ){
          err = "not a tinkv dump stream (the first line must be "
                "\"tinkv-dump 1\" or \"tinkv-dump 2\")";
        }
      }else if( !strcmp(line, "HEADER=END") ){
        state = 1;
        if( enc ) err = load_encoding(db, enc, &rc);
      }else if( !strcmp(line, "encoding=raw") ){
        enc = TKV_ENCODING_RAW;
      }else if( !strcmp(line, "encoding=sql") ){
        enc = TKV_ENCODING_SQL;
      }else if( strcmp(line, "format=text") && line[0]!='#' ){
        err = "unknown header line";
      }
      continue;
    }
    if( state==3 ){ err = "data after DATA=END"; break; }
    if( state==1 && version>=2 && !strncmp(line, "expire=", 7) ){
      char *end;
      errno = 0;
      expire = strtoull(line + 7, &end, 10);
      if( errno || *end || expire==0 || line[7]<'0' || line[7]>'9' ){
        err = "malformed expire= line";
        break;
      }
      continue;
    }
    if( state==1 && !strncmp(line, "DATA=END", 8) ){
      unsigned long long want;
      if( sscanf(line, "DATA=END records=%llu", &want)!=1 || want!=n ){
        err = "DATA=END does not match the number of records read";
      }
      state = 3;
      continue;
    }
    if( len+1>keycap ){
      unsigned char *k2 = realloc(key, len+1), *v2;
      if( k2 ) key = k2;
      v2 = realloc(val, len+1);
      if( v2 ) val = v2;
      if( !k2 || !v2 ){ err = "out of memory"; break; }
      keycap = len+1;
    }
    if( state==1 ){
      if( get_line(line, len, key, &klen) ){ err = "malformed key line"; break; }
      state = 2;
    }else{
      size_t vlen;
      if( get_line(line, len, val, &vlen) ){ err = "malformed value line"; break; }
      if( n % LOAD_BATCH==0 ) rc = tkv_begin(db);
      if( !rc ) rc = tkv_write_expire(db, key, klen, val, vlen, 0, expire,
                                      NULL);
      expire = 0;
      n++;
      if( !rc && n % LOAD_BATCH==0 ) rc = tkv_commit(db);
      state = 1;
      progress(NULL, done, size);
    }
  }
  if( !rc && !err && state!=3 ){
    err = state==0 ? "no HEADER=END line" : "no DATA=END line (the stream is "
                                            "cut short)";
  }
  /* Nothing of a bad stream's last batch is kept; earlier batches are. */
  if( !rc && !err && tkv_in_transaction(db) ) rc = tkv_commit(db);
  if( (rc || err) && tkv_in_transaction(db) ) tkv_rollback(db);
  if( !rc && !err ) rc = tkv_sync(db);
  progress_clear();
  free(line);
  free(key);
  free(val);
  if( file ) fclose(in);
  if( rc ){ fail("load", rc); tkv_close(db); return 2; }
  tkv_close(db);
  if( err ){
    fprintf(stderr, "tinkvctl: load: %s: line %ld: %s\n",
            file ? file : "stdin", lineno, err);
    return 2;
  }
  printf("load: %llu records into %s\n", (unsigned long long)n, dir);
  return 0;
}

/* --------------------------------------------- compact, backup, salvage */

static int cmd_compact(const char *dir){
  tkv_db *db;
  uint64_t freed = 0;
  double t0 = now_sec();
  int rc = open_store(dir, 0, &db);
  if( rc ) return fail(dir, rc);
  rc = tkv_compact(db, &freed);
  if( rc ){ tkv_close(db); return fail("compact", rc); }
  rc = tkv_close(db);
  if( rc ) return fail("close", rc);
  printf("compact: %llu bytes freed in %.3f s\n", (unsigned long long)freed,
         now_sec() - t0);
  return 0;
}

static int cmd_backup(const char *dir, const char *dest, int incremental){
  tkv_db *db;
  tkv_backup_report r;
  int rc = open_store(dir, 0, &db);
  if( rc ) return fail(dir, rc);
  progress_what = "backup";
  rc = tkv_backup(db, dest, incremental ? TKV_BACKUP_INCREMENTAL : 0,
                  progress, NULL, &r);
  progress_clear();
  if( rc ){ tkv_close(db); return fail("backup", rc); }
  rc = tkv_close(db);
  if( rc ) return fail("close", rc);
  printf("backup: %llu files: %llu linked, %llu copied (%llu bytes), "
         "%llu kept, %llu removed, in %.3f s\n",
         (unsigned long long)r.files, (unsigned long long)r.linked,
         (unsigned long long)r.copied, (unsigned long long)r.bytes_copied,
         (unsigned long long)r.kept, (unsigned long long)r.removed,
         (double)r.usec/1e6);
  return 0;
}

static int cmd_salvage(const char *dir, const char *dest){
  tkv_salvage_report r;
  int rc;
  progress_what = "salvage";
  rc = tkv_salvage(dir, dest, print_problem, progress, NULL, &r);
  progress_clear();
  if( rc ) return fail("salvage", rc);
  printf("salvage: %llu records copied, %llu keys in %s; %llu damaged "
         "region%s (%llu bytes) not saved, in %.3f s\n",
         (unsigned long long)r.records, (unsigned long long)r.keys, dest,
         (unsigned long long)r.damaged, r.damaged==1 ? "" : "s",
         (unsigned long long)r.damaged_bytes, (double)r.usec/1e6);
  return r.damaged ? 1 : 0;
}

static int usage(void){
  fprintf(stderr,
    "usage: tinkvctl [-q] COMMAND ARGS\n"
    "  stat    DIR            statistics, segments and their dead ratios\n"
    "  check   DIR            check every record and hint (exit 1: damage)\n"
    "  dump    DIR [FILE]     write the key/value pairs (core/DUMP.md)\n"
    "  load    DIR [FILE]     read a dump into a store (created if missing)\n"
    "  compact DIR            rewrite the live records, free stale space\n"
    "  backup  DIR DEST [-i]  consistent copy; -i: incremental\n"
    "  salvage DIR DEST       copy what is readable into a new store\n"
    "  version\n"
    "  -q: no progress bar\n");
  return 2;
}

int main(int argc, char **argv){
  const char *cmd;
  int i = 1;
  while( i<argc && !strcmp(argv[i], "-q") ){ quiet = 1; i++; }
  if( i>=argc ) return usage();
  cmd = argv[i++];
  argc -= i;
  argv += i;
  if( !strcmp(cmd, "version") && argc==0 ){
    printf("tinkvctl %s\n", tkv_version());
    return 0;
  }
  if( !strcmp(cmd, "stat") && argc==1 ) return cmd_stat(argv[0]);
  if( !strcmp(cmd, "check") && argc==1 ) return cmd_check(argv[0]);
  if( !strcmp(cmd, "dump") && (argc==1 || argc==2) ){
    return cmd_dump(argv[0], argc==2 ? argv[1] : NULL);
  }
  if( !strcmp(cmd, "load") && (argc==1 || argc==2) ){
    return cmd_load(argv[0], argc==2 ? argv[1] : NULL);
  }
  if( !strcmp(cmd, "compact") && argc==1 ) return cmd_compact(argv[0]);
  if( !strcmp(cmd, "backup") && (argc==2 || (argc==3 && !strcmp(argv[2], "-i"))) ){
    return cmd_backup(argv[0], argv[1], argc==3);
  }
  if( !strcmp(cmd, "salvage") && argc==2 ) return cmd_salvage(argv[0], argv[1]);
  return usage();
}
