/*
** Crash harness for several processes on one store.  Writer processes
** increment one shared counter, each increment a read-modify-write
** transaction that also writes one of 16 keys every writer writes (the
** key and value a function of the new count), and report every increment
** on a pipe only after its commit returned; now and then a writer writes
** poison into the counter and a key and rolls back.  Merger processes run
** beside them: they increment like writers and call tkv_compact again and
** again (TKV_BUSY, from a merge running in another process or from the
** write lock, is counted and they go on; any other failure is one), and
** every process merges in the background too (a small compact_threshold).
** Reader processes (one of them read-only) read the keys and the counter
** throughout, by key, with cursor walks and in read transactions, and
** exit with an error as soon as they see something no committed
** transaction wrote: a poisoned or malformed value, a key's count above
** the counter read after it (a transaction seen in part), the counter
** going down, or a read transaction's view that is not one moment of the
** store (the keys' largest count is not the counter) or that changes.
** This process kills random writers, mergers and readers with SIGKILL at
** random moments and starts new ones; at the end of a round it kills them
** all, and every third round lets a lone process increment and compact
** the store again and again until it too is killed.  Then it checks,
** opening the store itself:
**   - the counter F holds every acknowledged increment and at most those
**     in flight: acknowledged <= F <= acknowledged + processes killed while
**     they could be writing (increments are serialized, so F counts them);
**   - no value was acknowledged twice (no lost update: two writers never
**     read the same count);
**   - each of the 16 keys holds exactly what the last increment <= F wrote
**     to it (nothing uncommitted visible, nothing committed missing);
**   - a writer proceeds at once (busy timeout "fail at once"): no dead
**     process holds a lock;
**   - tkv_check_db finds every record and hint file of the store whole;
** and at the end that at least 1 in 100 of the mergers' compactions ran
** rather than failing with TKV_BUSY (merges do run while other processes
** have the store open).
**
**   sharecrash [-r ROUNDS] [-k KILLS] [-t MAXMS] [-s SEED] [-d DIR]
**
** Prints the rounds, kills, increments checked and compactions, then
** "sharecrash: P passed, F failed"; exits non-zero on any failure.
*/
#include "tinkv.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NW 3                  /* writer processes */
#define NR 2                  /* reader processes (the second read-only) */
#define NM 2                  /* merger processes running beside them */
#define NKEYS 16              /* keys every writer writes */
#define POISON 999999999u     /* written only by rolled-back transactions */
#define MAXACK (1u << 28)     /* increments one run may acknowledge */
#define MSG_MERGED (1u << 30)  /* on the pipe: a merger's compaction worked */
#define MSG_BUSY   (1u << 31)  /* on the pipe: it was refused with TKV_BUSY */

enum { ROLE_WRITER, ROLE_READER, ROLE_MERGER, ROLE_CMERGER };

static char dir[4096];
static int ack_pipe[2];
static unsigned char *acked;  /* bit n: increment n was acknowledged */

#define ACKED(n)    (acked[(n) >> 3] & (1u << ((n) & 7)))
#define SET_ACKED(n) (acked[(n) >> 3] |= (unsigned char)(1u << ((n) & 7)))
static long nacked, inflight, nkills, failures;
static long cmerged, cbusy;  /* mergers' compactions: done, refused busy */
static unsigned maxacked;    /* the largest count acknowledged */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Report a failure (a line on stderr) and count it. */
static void fail(const char *fmt, ...){
  va_list ap;
  failures++;
  fprintf(stderr, "sharecrash: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* Monotonic milliseconds. */
static long long now_ms(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec*1000 + ts.tv_nsec/1000000;
}

static tkv_options options(int readonly){
  tkv_options o;
  tkv_options_init(&o);
  o.sync = TKV_SYNC_NORMAL;
  o.max_file_size = 4096;        /* rotation every few dozen increments */
  o.compact_threshold = 8192;    /* background merges in every process */
  o.busy_timeout = 10000;
  o.create = 1;
  o.readonly = readonly;
  return o;
}

/* A key's name: "k00".."k15". */
static void key_name(unsigned i, char *buf){
  snprintf(buf, 8, "k%02u", i);
}

/* A value (v, n) as a number after `tag` (e.g. "n="), or UINT32_MAX for
** a malformed value. */
static unsigned parse_num(const void *v, size_t n, const char *tag){
  size_t tl = strlen(tag);
  char buf[64];
  char *end;
  unsigned long x;
  if( n<=tl || n>=sizeof buf || memcmp(v, tag, tl) ) return UINT32_MAX;
  memcpy(buf, v, n);
  buf[n] = 0;
  errno = 0;
  x = strtoul(buf + tl, &end, 10);
  return (errno || (*end && *end!=' ') || x>=UINT32_MAX) ? UINT32_MAX
                                                         : (unsigned)x;
}

/* Value of `key` as a number after `tag` (e.g. "n="), 0 if absent, or
** UINT32_MAX for a malformed value.  TKV_* code. */
static int read_num(tkv_db *db, const char *key, const char *tag,
                    unsigned *pn){
  void *v = NULL;
  size_t n = 0;
  int rc = tkv_get(db, key, strlen(key), &v, &n);
  *pn = 0;
  if( rc==TKV_NOTFOUND ) return TKV_OK;
  if( rc ) return rc;
  *pn = parse_num(v, n, tag);
  tkv_free(v);
  return TKV_OK;
}

/* One increment: read the counter, write counter+1 and its key.  The new
** count in *pn.  TKV_* code (the transaction is rolled back on failure). */
static int increment(tkv_db *db, int me, unsigned *pn){
  char key[8], val[48];
  unsigned c;
  int rc = tkv_begin(db);
  if( rc ) return rc;
  rc = read_num(db, "__c", "c=", &c);
  if( !rc && (c==UINT32_MAX || c>=POISON) ) rc = TKV_CORRUPT;
  if( !rc ){
    snprintf(val, sizeof val, "c=%u", c + 1);
    rc = tkv_put(db, "__c", 3, val, strlen(val));
  }
  if( !rc ){
    key_name((c + 1) % NKEYS, key);
    snprintf(val, sizeof val, "n=%u w=%d", c + 1, me);
    rc = tkv_put(db, key, 3, val, strlen(val));
  }
  if( !rc ) rc = tkv_commit(db);
  if( rc ){
    tkv_rollback(db);
    return rc;
  }
  *pn = c + 1;
  return TKV_OK;
}

static void send_ack(unsigned n){
  if( write(ack_pipe[1], &n, sizeof n)!=(ssize_t)sizeof n ) _exit(5);
}

/* A writer: increments until killed; every 7th transaction is poison
** rolled back first. */
static void writer_main(int me, uint64_t seed){
  tkv_options o = options(0);
  tkv_db *db;
  unsigned n;
  if( tkv_open(dir, &o, &db) ){
    fprintf(stderr, "writer: open: %s\n", tkv_errmsg());
    _exit(3);
  }
  for(uint64_t i=seed; ; i++){
    int rc;
    if( i%7==0 ){
      char val[48];
      snprintf(val, sizeof val, "c=%u", POISON);
      rc = tkv_begin(db);
      if( !rc ) rc = tkv_put(db, "__c", 3, val, strlen(val));
      snprintf(val, sizeof val, "n=%u w=%d", POISON, me);
      if( !rc ) rc = tkv_put(db, "k03", 3, val, strlen(val));
      if( !rc ) rc = tkv_rollback(db);
      if( rc && rc!=TKV_BUSY ){
        fprintf(stderr, "writer: rollback: %s\n", tkv_errmsg());
        _exit(4);
      }
    }
    rc = increment(db, me, &n);
    if( rc==TKV_BUSY ) continue;    /* the holder may have been stopped */
    if( rc ){
      fprintf(stderr, "writer: increment: %s\n", tkv_errmsg());
      _exit(4);
    }
    send_ack(n);
  }
}

/* A cursor walk over the store: every key is the counter or one of the 16
** keys with a well-formed value of its own; their largest count in *pmax.
** TKV_* code; *pmax = UINT32_MAX for a value no commit wrote. */
static int walk_keys(tkv_db *db, unsigned *pmax){
  tkv_cursor *cur = NULL;
  int rc = tkv_cursor_open(db, &cur);
  *pmax = 0;
  if( !rc ) rc = tkv_cursor_seek(cur, NULL, 0);
  while( !rc && tkv_cursor_valid(cur) ){
    const void *k;
    size_t klen;
    tkv_cursor_key(cur, &k, &klen);
    if( klen==3 && !memcmp(k, "__c", 3) ){
      rc = tkv_cursor_next(cur);
      continue;
    }
    if( klen==3 && ((const char*)k)[0]=='k' ){
      void *v = NULL;
      size_t vlen = 0;
      char name[4];
      unsigned n, which;
      memcpy(name, k, 3);
      name[3] = 0;
      which = (unsigned)atoi(name + 1);
      rc = tkv_cursor_value(cur, &v, &vlen);
      if( rc==TKV_NOTFOUND ){
        *pmax = UINT32_MAX;     /* these keys are never deleted */
        break;
      }
      if( rc ) break;
      n = parse_num(v, vlen, "n=");
      tkv_free(v);
      if( n==UINT32_MAX || n>=POISON || n%NKEYS!=which ){
        *pmax = UINT32_MAX;
        break;
      }
      if( n>*pmax ) *pmax = n;
    }else{
      *pmax = UINT32_MAX;
      break;
    }
    if( !rc ) rc = tkv_cursor_next(cur);
  }
  tkv_cursor_close(cur);
  return rc;
}

/* A reader: checks what it sees until killed; exits 6 on a violation. */
static void reader_main(int me, uint64_t seed){
  tkv_options o = options(me==1);
  tkv_db *db, *db2;
  unsigned last = 0;
  int rc;
  /* A read-only open does not create the store: in the first round it
  ** may not exist yet (the writers create it, all at once). */
  for(int tries=0; (rc = tkv_open(dir, &o, &db))==TKV_NOTSTORE && tries<500;
      tries++){
    usleep(10000);
  }
  if( rc || (rc = tkv_open(dir, &o, &db2))!=TKV_OK ){
    fprintf(stderr, "reader: open: %s\n", tkv_errmsg());
    _exit(3);
  }
  for(uint64_t i=seed; ; i++){
    char key[8];
    unsigned n, c;
    if( i%16==4 ){
      /* A read transaction: a view where the keys' largest count is the
      ** counter, and that stays so while others commit and merge. */
      unsigned n2, c2;
      if( tkv_read_begin(db) || read_num(db, "__c", "c=", &c)
       || walk_keys(db, &n) ){
        fprintf(stderr, "reader: view: %s\n", tkv_errmsg());
        _exit(4);
      }
      usleep((useconds_t)(i % 3000));
      /* The process's other handle catches up meanwhile: the keydir (one
      ** per process) moves on under the view. */
      if( read_num(db2, "__c", "c=", &c2) ){
        fprintf(stderr, "reader: second handle: %s\n", tkv_errmsg());
        _exit(4);
      }
      if( walk_keys(db, &n2) || read_num(db, "__c", "c=", &c2)
       || tkv_read_end(db) ){
        fprintf(stderr, "reader: view: %s\n", tkv_errmsg());
        _exit(4);
      }
      if( n==UINT32_MAX || c>=POISON || n!=c || n2!=n || c2!=c || c<last ){
        fprintf(stderr, "reader %d: a view saw counter %u and count %u, "
                "then count %u and counter %u (before: %u)\n", me, c, n,
                n2, c2, last);
        _exit(6);
      }
      last = c;
      continue;
    }
    if( i%8==0 ){
      /* Every key by a cursor walk, then the counter: none above it. */
      if( walk_keys(db, &n) || read_num(db, "__c", "c=", &c) ){
        fprintf(stderr, "reader: walk: %s\n", tkv_errmsg());
        _exit(4);
      }
      if( n==UINT32_MAX || c==UINT32_MAX || c>=POISON || n>c || c<last ){
        fprintf(stderr, "reader %d: a cursor walk saw count %u, then "
                "counter %u (before: %u)\n", me, n, c, last);
        _exit(6);
      }
      last = c;
      continue;
    }
    key_name((unsigned)(i*7 % NKEYS), key);
    if( read_num(db, key, "n=", &n) || read_num(db, "__c", "c=", &c) ){
      fprintf(stderr, "reader: get: %s\n", tkv_errmsg());
      _exit(4);
    }
    if( n==UINT32_MAX || c==UINT32_MAX || n>=POISON || c>=POISON
     || n>c || c<last || (n && n%NKEYS!=(unsigned)(i*7 % NKEYS)) ){
      fprintf(stderr, "reader %d: saw %s n=%u, then counter %u (before: "
              "%u)\n", me, key, n, c, last);
      _exit(6);
    }
    last = c;
  }
}

/* The lone merger: increments and compacts until killed. */
static void merger_main(void){
  tkv_options o = options(0);
  tkv_db *db;
  unsigned n;
  if( tkv_open(dir, &o, &db) ){
    fprintf(stderr, "merger: open: %s\n", tkv_errmsg());
    _exit(3);
  }
  for(int i=0; ; i++){
    int rc = increment(db, 9, &n);
    if( rc ){
      fprintf(stderr, "merger: increment: %s\n", tkv_errmsg());
      _exit(4);
    }
    send_ack(n);
    if( i%5==4 ){
      rc = tkv_compact(db, NULL);
      if( rc && rc!=TKV_BUSY ){
        fprintf(stderr, "merger: compact: %s\n", tkv_errmsg());
        _exit(4);
      }
    }
  }
}

/* A merger running beside writers and readers: increments like a writer
** and compacts after every few increments, until killed.  TKV_BUSY from
** tkv_compact (a merge running in another process, the write lock held
** past the busy timeout) is reported and it goes on. */
static void cmerger_main(int me, uint64_t seed){
  tkv_options o = options(0);
  tkv_db *db;
  unsigned n;
  if( tkv_open(dir, &o, &db) ){
    fprintf(stderr, "merger %d: open: %s\n", me, tkv_errmsg());
    _exit(3);
  }
  for(uint64_t i=seed; ; i++){
    int rc = increment(db, me, &n);
    if( rc==TKV_BUSY ) continue;
    if( rc ){
      fprintf(stderr, "merger %d: increment: %s\n", me, tkv_errmsg());
      _exit(4);
    }
    send_ack(n);
    if( i%3==0 ){
      rc = tkv_compact(db, NULL);
      if( rc && rc!=TKV_BUSY ){
        fprintf(stderr, "merger %d: compact: %s: %s\n", me, tkv_strerror(rc),
                tkv_errmsg());
        _exit(4);
      }
      send_ack(rc ? MSG_BUSY : MSG_MERGED);
    }
  }
}

static pid_t spawn(int role, int me, uint64_t seed){
  pid_t pid;
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  if( pid<0 ){ perror("fork"); exit(2); }
  if( pid==0 ){
    close(ack_pipe[0]);
    if( role==ROLE_WRITER ) writer_main(me, seed);
    else if( role==ROLE_READER ) reader_main(me, seed);
    else if( role==ROLE_CMERGER ) cmerger_main(me, seed);
    else merger_main();
    _exit(0);
  }
  return pid;
}

/* Read every acknowledgement in the pipe now, waiting up to ms for the
** first. */
static void drain(int ms){
  struct pollfd p = { ack_pipe[0], POLLIN, 0 };
  unsigned buf[256];
  while( poll(&p, 1, ms)>0 ){
    ssize_t got = read(ack_pipe[0], buf, sizeof buf);
    if( got<=0 ) break;
    for(ssize_t i=0; i<got/(ssize_t)sizeof *buf; i++){
      unsigned n = buf[i];
      if( n==MSG_MERGED ){
        cmerged++;
      }else if( n==MSG_BUSY ){
        cbusy++;
      }else if( n==0 || n>=MAXACK ){
        fail("acknowledged count %u out of range", n);
      }else if( ACKED(n) ){
        fail("increment %u acknowledged twice (a lost update)", n);
      }else{
        SET_ACKED(n);
        nacked++;
        if( n>maxacked ) maxacked = n;
      }
    }
    ms = 0;
  }
}

/* Kill pid with SIGKILL and reap it; a process that had exited by itself
** is a failure (its status says what it found). */
static void kill_reap(pid_t pid, const char *what){
  int st = 0;
  kill(pid, SIGKILL);
  while( waitpid(pid, &st, 0)<0 && errno==EINTR ){}
  if( WIFSIGNALED(st) && WTERMSIG(st)!=SIGKILL ){
    fail("%s died of signal %d", what, WTERMSIG(st));
  }else if( !WIFSIGNALED(st) ){
    fail("%s exited by itself (status %d)", what,
         WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  }
  nkills++;
}

/* Sleep about ms while reading acknowledgements. */
static void pause_ms(long ms){
  long long end = now_ms() + ms;
  for(long long now = now_ms(); now<end; now = now_ms()){
    drain((int)(end - now));
  }
}

/* A problem tkv_check_db found (ctx: the round). */
static void check_problem(void *ctx, const char *file, uint64_t offset,
                          const char *what){
  fprintf(stderr, "sharecrash: round %ld: %s: offset %llu: %s\n",
          *(long*)ctx, file, (unsigned long long)offset, what);
}

/* Open the store alone and check it (see the header); then one increment
** with no waiting.  Returns the counter. */
static unsigned verify(long round){
  tkv_options o = options(0);
  tkv_db *db;
  unsigned f, n;
  int rc;
  o.busy_timeout = -1;
  rc = tkv_open(dir, &o, &db);
  if( rc ){
    fail("round %ld: open: %s", round, tkv_errmsg());
    return 0;
  }
  if( read_num(db, "__c", "c=", &f) || f==UINT32_MAX || f>=POISON ){
    fail("round %ld: the counter cannot be read", round);
    tkv_close(db);
    return 0;
  }
  if( (long)f<nacked || (long)f>nacked + inflight ){
    fail("round %ld: counter %u, but %ld increments acknowledged and at "
         "most %ld in flight", round, f, nacked, inflight);
  }
  if( maxacked>f ){
    fail("round %ld: acknowledged increment %u is missing (counter %u)",
         round, maxacked, f);
  }
  for(unsigned i = f>NKEYS ? f - NKEYS + 1 : 1; i<=f; i++){
    char key[8];
    unsigned v = 0;
    key_name(i % NKEYS, key);
    if( read_num(db, key, "n=", &v) || v!=i ){
      fail("round %ld: key %s holds %u, not increment %u, the last that "
           "wrote it", round, key, v, i);
    }
  }
  rc = tkv_check_db(db, check_problem, NULL, &round, NULL);
  if( rc ){
    fail("round %ld: tkv_check_db: %s: %s", round, tkv_strerror(rc),
         tkv_errmsg());
  }
  rc = increment(db, 0, &n);
  if( rc ){
    fail("round %ld: a writer cannot proceed: %s", round, tkv_errmsg());
  }else{
    SET_ACKED(n);
    nacked++;
    if( n>maxacked ) maxacked = n;
  }
  if( tkv_close(db) ) fail("round %ld: close: %s", round, tkv_errmsg());
  return f;
}

int main(int argc, char **argv){
  long rounds = 10, kills = 6;
  int maxms = 60, opt;
  uint64_t seed = (uint64_t)time(NULL);
  const char *base = NULL;
  char what[32];
  long long t0 = now_ms();
  while( (opt = getopt(argc, argv, "r:k:t:s:d:"))!=-1 ){
    switch( opt ){
      case 'r': rounds = atol(optarg); break;
      case 'k': kills = atol(optarg); break;
      case 't': maxms = atoi(optarg); break;
      case 's': seed = strtoull(optarg, NULL, 10); break;
      case 'd': base = optarg; break;
      default:
        fprintf(stderr, "usage: sharecrash [-r ROUNDS] [-k KILLS] [-t MAXMS] "
                "[-s SEED] [-d DIR]\n");
        return 2;
    }
  }
  if( maxms<1 ) maxms = 1;
  if( !base ) base = tu_tmpdir("sharecrash");
  else mkdir(base, 0755);
  snprintf(dir, sizeof dir, "%s/store", base);
  acked = calloc(MAXACK / 8, 1);
  if( !acked || pipe(ack_pipe) ){ perror("setup"); return 2; }
  fcntl(ack_pipe[0], F_SETFL, O_NONBLOCK);
  srand((unsigned)seed);
  printf("sharecrash: seed %llu, %ld rounds of %d writers, %d mergers, %d "
         "readers, %ld kills within %d ms\n", (unsigned long long)seed,
         rounds, NW, NM, NR, kills, maxms);
  for(long r=1; r<=rounds && !failures; r++){
    pid_t w[NW], rd[NR], mg[NM];
    for(int i=0; i<NW; i++) w[i] = spawn(ROLE_WRITER, i + 1, (uint64_t)rand());
    for(int i=0; i<NR; i++) rd[i] = spawn(ROLE_READER, i, (uint64_t)rand());
    for(int i=0; i<NM; i++){
      mg[i] = spawn(ROLE_CMERGER, NW + 1 + i, (uint64_t)rand());
    }
    for(long k=0; k<kills; k++){
      int v = rand() % (NW + NR + NM);
      pause_ms(rand() % maxms);
      if( v<NW ){
        snprintf(what, sizeof what, "writer %d", v + 1);
        kill_reap(w[v], what);
        inflight++;
        w[v] = spawn(ROLE_WRITER, v + 1, (uint64_t)rand());
      }else if( v>=NW + NR ){
        int i = v - NW - NR;
        snprintf(what, sizeof what, "merger %d", NW + 1 + i);
        kill_reap(mg[i], what);
        inflight++;
        mg[i] = spawn(ROLE_CMERGER, NW + 1 + i, (uint64_t)rand());
      }else{
        snprintf(what, sizeof what, "reader %d", v - NW);
        kill_reap(rd[v - NW], what);
        rd[v - NW] = spawn(ROLE_READER, v - NW, (uint64_t)rand());
      }
    }
    pause_ms(rand() % maxms);
    for(int i=0; i<NW; i++){
      snprintf(what, sizeof what, "writer %d", i + 1);
      kill_reap(w[i], what);
      inflight++;
    }
    for(int i=0; i<NM; i++){
      snprintf(what, sizeof what, "merger %d", NW + 1 + i);
      kill_reap(mg[i], what);
      inflight++;
    }
    for(int i=0; i<NR; i++){
      snprintf(what, sizeof what, "reader %d", i);
      kill_reap(rd[i], what);
    }
    drain(0);
    if( r%3==0 ){
      pid_t m = spawn(ROLE_MERGER, 0, 0);
      pause_ms(5 + rand() % (maxms + 20));
      kill_reap(m, "the merger");
      inflight++;
      drain(0);
    }
    verify(r);
  }
  /* Mergers beside other processes: their compactions run, but for a few
  ** that meet another merge or wait out the busy timeout.  (A merger may
  ** find itself alone for a moment, between a kill and a new process's
  ** open: a compaction or two may run even where merges need the store
  ** alone, hence 1 in 100 rather than "any".) */
  if( !failures && cmerged + cbusy>=100 && cmerged*100<cmerged + cbusy ){
    fail("%ld of %ld compactions of mergers running beside other processes "
         "ran; the others were refused with TKV_BUSY", cmerged,
         cmerged + cbusy);
  }
  printf("sharecrash: %ld rounds, %ld kills, %ld increments acknowledged and "
         "checked, %ld compactions beside other processes (%ld refused "
         "busy), %.1f s\n", rounds, nkills, nacked, cmerged, cbusy,
         (double)(now_ms() - t0) / 1000);
  if( !failures ) tu_rmrf(base);
  else printf("sharecrash: store kept in %s\n", base);
  printf("sharecrash: %d passed, %d failed\n", failures ? 0 : 1,
         failures ? 1 : 0);
  return failures ? 1 : 0;
}
