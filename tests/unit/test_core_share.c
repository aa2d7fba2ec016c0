/*
** Tests of several processes on one store (core/share.c), with real
** processes (fork): writers with overlapping keys and a shared counter
** whose total must be exact, a reader running throughout, the busy timeout
** and its message naming the writer's pid, a writer killed with SIGKILL in
** the middle of a transaction, read-only handles, many processes opening
** (and creating) at once, a merge's outputs reaching the next process to
** open, and merges while other processes have the store open (see
** "Merging while other processes have the store open" below).
*/
#include "engine_check.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#define NWRITERS 4
#define NTXN     150

/* Options of every process: small segments, so that writers of different
** processes rotate segments under each other. */
static tkv_options share_options(void){
  return store_options(TKV_SYNC_NORMAL, 16384, UINT64_MAX);
}

static int child_status(pid_t pid){
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if( !WIFEXITED(status) ) return -1;
  return WEXITSTATUS(status);
}

/* The counter's value, or -1. */
static long read_counter(tkv_db *db){
  void *v = NULL;
  size_t n = 0;
  long x;
  int rc = tkv_get(db, "counter", 7, &v, &n);
  if( rc==TKV_NOTFOUND ) return 0;
  if( rc ) return -1;
  x = strtol(v, NULL, 10);
  tkv_free(v);
  return x;
}

/* One writer process: NTXN transactions that each add one to the counter
** and write a key of its own and a key every writer writes. */
static int writer_main(const char *dir, int me){
  tkv_options o = share_options();
  tkv_db *db = NULL;
  if( tkv_open(dir, &o, &db) ) return 10;
  tkv_busy_timeout(db, 30000);
  for(int i=0; i<NTXN; i++){
    char key[32], val[32];
    long c;
    if( tkv_begin(db) ) return 11;
    c = read_counter(db);
    if( c<0 ) return 12;
    snprintf(val, sizeof val, "%ld", c + 1);
    if( tkv_put(db, "counter", 7, val, strlen(val)) ) return 13;
    snprintf(key, sizeof key, "w%d-%03d", me, i);
    if( tkv_put(db, key, strlen(key), val, strlen(val)) ) return 14;
    snprintf(key, sizeof key, "shared-%02d", i % 10);
    if( tkv_put(db, key, strlen(key), val, strlen(val)) ) return 15;
    if( tkv_commit(db) ) return 16;
  }
  return tkv_close(db) ? 17 : 0;
}

/* Writers in several processes: no update is lost, a reader meanwhile
** sees the counter only grow, and the store reopens with everything. */
static void test_writers_share_a_counter(void **state){
  fixture *f = *state;
  tkv_options o = share_options();
  tkv_db *db = open_with(f->dir, &o);
  pid_t pids[NWRITERS];
  long last = 0;
  int running = NWRITERS;
  for(int w=0; w<NWRITERS; w++){
    pids[w] = fork();
    assert_true(pids[w]>=0);
    if( pids[w]==0 ) _exit(writer_main(f->dir, w));
  }
  while( running ){
    long c = read_counter(db);
    assert_true(c>=last);
    last = c;
    running = 0;
    for(int w=0; w<NWRITERS; w++){
      if( pids[w] && waitpid(pids[w], NULL, WNOHANG)==0 ) running++;
      else pids[w] = 0;
    }
    usleep(2000);
  }
  assert_int_equal(read_counter(db), NWRITERS*NTXN);
  for(int w=0; w<NWRITERS; w++){
    for(int i=0; i<NTXN; i++){
      char key[32];
      size_t n = 0;
      snprintf(key, sizeof key, "w%d-%03d", w, i);
      assert_int_equal(tkv_lookup(db, key, strlen(key), NULL, &n), TKV_OK);
    }
  }
  assert_int_equal(tkv_count(db), NWRITERS*NTXN + 1 + 10);
  reopen_with(&db, f->dir, &o);
  assert_int_equal(read_counter(db), NWRITERS*NTXN);
  assert_int_equal(tkv_count(db), NWRITERS*NTXN + 1 + 10);
  close_ok(db);
}

/* A child that opens the store, begins a transaction, writes `key`, says
** so on `ready`, and then either commits when `go` has a byte, or waits to
** be killed. */
static pid_t start_txn_child(const char *dir, const char *key, int *pready,
                             int *pgo){
  int r[2], g[2];
  pid_t pid;
  assert_int_equal(pipe(r), 0);
  assert_int_equal(pipe(g), 0);
  pid = fork();
  assert_true(pid>=0);
  if( pid==0 ){
    tkv_options o = share_options();
    tkv_db *db = NULL;
    char c;
    close(r[0]);
    close(g[1]);
    if( tkv_open(dir, &o, &db) ) _exit(20);
    if( tkv_begin(db) ) _exit(21);
    if( tkv_put(db, key, strlen(key), "x", 1) ) _exit(22);
    if( write(r[1], "R", 1)!=1 ) _exit(23);
    if( read(g[0], &c, 1)!=1 ) _exit(24);
    if( tkv_commit(db) ) _exit(25);
    _exit(tkv_close(db) ? 26 : 0);
  }
  close(r[1]);
  close(g[0]);
  *pready = r[0];
  *pgo = g[1];
  return pid;
}

static void wait_ready(int fd){
  char c = 0;
  ssize_t n;
  do{ n = read(fd, &c, 1); }while( n<0 && errno==EINTR );
  assert_int_equal(n, 1);
}

/* A writer waits up to its busy timeout, then TKV_BUSY names the process
** in the transaction; once that commits, the writer gets in and sees it.
** Reads never wait meanwhile, and never see the open transaction. */
static void test_busy_timeout_names_the_writer(void **state){
  fixture *f = *state;
  tkv_options o = share_options();
  tkv_db *db = open_with(f->dir, &o);
  char pidtext[32];
  int ready, go;
  pid_t pid;
  put_str(db, NULL, "k", "v");
  pid = start_txn_child(f->dir, "child", &ready, &go);
  wait_ready(ready);
  expect_absent_str(db, "child");
  expect_str(db, "k", "v");
  tkv_busy_timeout(db, 100);
  assert_tkv(TKV_BUSY, tkv_put(db, "p", 1, "1", 1));
  snprintf(pidtext, sizeof pidtext, "process %d", (int)pid);
  assert_true(msg_has(tkv_errmsg(), pidtext));
  tkv_busy_timeout(db, 0);
  assert_tkv(TKV_BUSY, tkv_begin(db));
  assert_int_equal(write(go, "G", 1), 1);
  tkv_busy_timeout(db, 10000);
  assert_ok(tkv_begin(db));
  expect_str(db, "child", "x");
  put_str(db, NULL, "p", "1");
  assert_ok(tkv_commit(db));
  assert_int_equal(child_status(pid), 0);
  close(ready);
  close(go);
  close_ok(db);
}

/* A writer killed with SIGKILL inside its transaction blocks nobody: the
** next writer proceeds, the dead one's writes never appear, everything
** committed is there, here and after a reopen. */
static void test_killed_writer_blocks_nobody(void **state){
  fixture *f = *state;
  tkv_options o = share_options();
  tkv_db *db = open_with(f->dir, &o);
  int ready, go;
  pid_t pid;
  put_str(db, NULL, "before", "1");
  pid = start_txn_child(f->dir, "dead", &ready, &go);
  wait_ready(ready);
  assert_int_equal(kill(pid, SIGKILL), 0);
  assert_int_equal(child_status(pid), -1);
  tkv_busy_timeout(db, 10000);
  put_str(db, NULL, "after", "2");
  expect_absent_str(db, "dead");
  expect_str(db, "before", "1");
  close(ready);
  close(go);
  close_ok(db);
  db = open_with(f->dir, &o);
  expect_absent_str(db, "dead");
  expect_str(db, "before", "1");
  expect_str(db, "after", "2");
  close_ok(db);
}

/* A read-only handle reads, follows another process's writes, refuses
** writes and compaction with TKV_READONLY, never blocks a writer, and
** cannot create a store; its data version moves with another process's
** commit only. */
static void test_readonly_handle(void **state){
  fixture *f = *state;
  tkv_options o = share_options(), ro = share_options();
  tkv_db *db = open_with(f->dir, &o), *r = NULL;
  uint64_t v;
  pid_t pid;
  int ready, go;
  put_str(db, NULL, "k", "v");
  close_ok(db);
  ro.readonly = 1;
  assert_ok(tkv_open(f->dir, &ro, &r));
  expect_str(r, "k", "v");
  assert_tkv(TKV_READONLY, tkv_put(r, "x", 1, "y", 1));
  assert_tkv(TKV_READONLY, tkv_begin(r));
  assert_tkv(TKV_READONLY, tkv_compact(r, NULL));
  assert_true(msg_has(tkv_errmsg(), "read-only"));
  pid = start_txn_child(f->dir, "w", &ready, &go);
  wait_ready(ready);
  expect_absent_str(r, "w");
  /* An open transaction elsewhere changes no data version; its commit
  ** does. */
  v = tkv_data_version(r);
  assert_true(tkv_data_version(r)==v);
  assert_int_equal(write(go, "G", 1), 1);
  assert_int_equal(child_status(pid), 0);
  assert_true(tkv_data_version(r)!=v);
  expect_str(r, "w", "x");
  close(ready);
  close(go);
  close_ok(r);
  r = NULL;
  assert_tkv(TKV_NOTSTORE, tkv_open(tu_path(f->root, "none"), &ro, &r));
  assert_false(tu_exists(tu_path(f->root, "none")));
}

/* Eight processes open dir at once; each writes a key "p<i>" and closes;
** then all eight keys are there. */
static void open_eight_at_once(const char *dir, const tkv_options *o){
  pid_t pids[8];
  tkv_db *db;
  for(int i=0; i<8; i++){
    pids[i] = fork();
    assert_true(pids[i]>=0);
    if( pids[i]==0 ){
      tkv_db *c = NULL;
      char key[16];
      if( tkv_open(dir, o, &c) ){
        fprintf(stderr, "process %d: %s\n", i, tkv_errmsg());
        _exit(30);
      }
      tkv_busy_timeout(c, 30000);
      snprintf(key, sizeof key, "p%d", i);
      if( tkv_put(c, key, strlen(key), "1", 1) ) _exit(31);
      _exit(tkv_close(c) ? 32 : 0);
    }
  }
  for(int i=0; i<8; i++) assert_int_equal(child_status(pids[i]), 0);
  db = open_with(dir, o);
  assert_int_equal(tkv_count(db), 8);
  close_ok(db);
}

/* Many processes open one store at once. */
static void test_many_processes_open_at_once(void **state){
  fixture *f = *state;
  tkv_options o = share_options();
  tkv_db *db = open_with(f->dir, &o);
  close_ok(db);
  open_eight_at_once(f->dir, &o);
}

/*
** A merge that ran while one process had the store alone numbers its
** outputs above the segment that process goes on appending to.  The next
** process to open must load them (they are not a dead writer's segment
** that was never published), see every key, and write without removing
** them or reusing their ids; then both processes, and a reopen, agree.
*/
static void test_merge_outputs_reach_the_next_process(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 4096, 4096);
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  char key[32], val[32], why[600];
  tkv_stats st;
  pid_t pid;
  for(int i=0; i<40; i++){
    snprintf(key, sizeof key, "cold%02d", i);
    put_str(db, &m, key, "a cold value, written once");
  }
  for(int round=0; round<20 && stats_of(db).merges==0; round++){
    for(int i=0; i<20; i++){
      snprintf(key, sizeof key, "hot%02d", i);
      snprintf(val, sizeof val, "round %d", round);
      put_str(db, &m, key, val);
    }
    tkv_test_merge_wait(db);
  }
  put_str(db, &m, "last", "appended after the merge");
  st = stats_of(db);
  assert_true(st.merges>0);
  pid = fork();
  assert_true(pid>=0);
  if( pid==0 ){
    tkv_db *c = NULL;
    if( tkv_open(f->dir, &o, &c) ) _exit(40);
    if( store_diff(c, &m, why, sizeof why) ){
      fprintf(stderr, "second process: %s\n", why);
      _exit(41);
    }
    if( tkv_put(c, "child", 5, "1", 1) ) _exit(42);
    _exit(tkv_close(c) ? 43 : 0);
  }
  assert_int_equal(child_status(pid), 0);
  model_put(&m, "child", 5, "1", 1);
  put_str(db, &m, "after", "the second process wrote");
  assert_store_is(db, &m);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* Processes that create a new store at the same moment: one creates it,
** the others open it; nobody fails. */
static void test_many_processes_create_at_once(void **state){
  fixture *f = *state;
  tkv_options o = share_options();
  char dir[4300];
  o.create = 1;
  for(int round=0; round<5; round++){
    snprintf(dir, sizeof dir, "%s/new%d", f->root, round);
    open_eight_at_once(dir, &o);
  }
}

/*
** A first opener clears the shared area, recovers, then publishes the area
** (share_opened).  If it dies in between, a process that takes the OPEN
** lock shared in that moment (its exclusive try failed while the first
** opener lived) must not trust the cleared area, which names no segment:
** it would see an empty store and write over it.  Here a helper holds OPEN
** shared over a cleared area: an open waits for its busy timeout and
** fails with TKV_BUSY; once the helper is gone the open recovers the store
** itself and sees everything.
*/
static void test_open_after_first_opener_died(void **state){
  fixture *f = *state;
  tkv_options o = share_options();
  tkv_db *db = open_with(f->dir, &o);
  char path[4300], zero[40], c;
  int ready[2], go[2], fd;
  pid_t pid;
  for(int i=0; i<20; i++) put_str(db, NULL, "k", "v");
  put_str(db, NULL, "last", "kept");
  close_ok(db);
  snprintf(path, sizeof path, "%s/LOCK", f->dir);
  memset(zero, 0, sizeof zero);
  fd = open(path, O_RDWR);
  assert_true(fd>=0);
  assert_int_equal(pwrite(fd, zero, sizeof zero, 0), (ssize_t)sizeof zero);
  close(fd);
  assert_int_equal(pipe(ready), 0);
  assert_int_equal(pipe(go), 0);
  pid = fork();
  assert_true(pid>=0);
  if( pid==0 ){
    /* Hold OPEN shared until the test lets go of `go` (or dies). */
    struct flock fl;
    int lfd = open(path, O_RDWR);
    close(go[1]);
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_RDLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 4096;      /* the OPEN byte (FORMAT.md, "The lock file") */
    fl.l_len = 1;
    if( lfd<0 || fcntl(lfd, F_OFD_SETLK, &fl) ) _exit(50);
    if( write(ready[1], "x", 1)!=1 ) _exit(51);
    _exit(read(go[0], &c, 1)==0 ? 0 : 52);
  }
  close(go[0]);
  close(ready[1]);
  assert_int_equal(read(ready[0], &c, 1), 1);
  close(ready[0]);
  o.busy_timeout = 300;
  {
    int rc = tkv_open(f->dir, &o, &db);
    close(go[1]);
    assert_int_equal(child_status(pid), 0);
    if( rc==TKV_OK ) close_ok(db);
    assert_tkv(TKV_BUSY, rc);
  }
  db = open_with(f->dir, &o);
  expect_str(db, "k", "v");
  expect_str(db, "last", "kept");
  close_ok(db);
}

/* ======================================================================
** Merging while other processes have the store open.
**
** A merge (tkv_compact, and the background merges of a process) runs
** while other processes have the store open, idle, reading or in a write
** transaction of their own.  They must go on seeing exactly what was
** committed, without reopening: every key with its value, deleted keys
** absent (a tombstone a merge dropped must not let an older put come back
** in a process whose keydir was loaded before), through tkv_get, cursors
** and tkv_count.  The files of merged segments go once no process needs
** them (at the latest at the next merge after every process read again).
** A process killed in the middle of a merge blocks nobody.
**
** Most of these tests drive a second process, a "peer", through a pipe
** of one-line commands, so that each step happens at a known moment.
** ====================================================================== */

#define PEER_WAIT_MS 30000     /* a peer that does not answer in this long
                               ** failed (a hang, a deadlock) */
#define MAX_PEERS 8

/* ------------------------------------------------------------ Values. */

/*
** The value of `key` at version `ver`: "KEY=VER;" and 8 to 135 bytes of
** filler, all a function of key and version, so that a value read
** anywhere can be checked on its own (checked_val).  Returns its length.
*/
static size_t gen_val(char *buf, size_t cap, const char *key, unsigned ver){
  uint64_t h = (uint64_t)ver*0x9e3779b97f4a7c15ull + 7;
  size_t n, len;
  for(const char *p=key; *p; p++) h = (h ^ (uint8_t)*p)*0x100000001b3ull;
  n = (size_t)snprintf(buf, cap, "%s=%u;", key, ver);
  len = n + 8 + (size_t)(h % 128);
  if( len>=cap ) len = cap - 1;
  for(size_t i=n; i<len; i++) buf[i] = (char)('a' + (h + i*7) % 26);
  buf[len] = 0;
  return len;
}

/* The version of a value of `key`, or -1 if it is not exactly
** gen_val(key, some version). */
static long checked_val(const char *key, const void *val, size_t vlen){
  char want[256], got[256];
  size_t kl = strlen(key);
  unsigned long ver;
  char *end;
  if( vlen<kl + 3 || vlen>=sizeof got ) return -1;
  memcpy(got, val, vlen);
  got[vlen] = 0;
  if( memcmp(got, key, kl) || got[kl]!='=' ) return -1;
  ver = strtoul(got + kl + 1, &end, 10);
  if( *end!=';' || ver>UINT32_MAX ) return -1;
  if( gen_val(want, sizeof want, key, (unsigned)ver)!=vlen
   || memcmp(want, got, vlen) ){
    return -1;
  }
  return (long)ver;
}

/* Key i of a family: prefix and five digits ("key00042"). */
static const char *key_of(char *buf, const char *prefix, unsigned i){
  snprintf(buf, 32, "%s%05u", prefix, i);
  return buf;
}

/* Write every step-th key of prefix[a..b) at version ver, 100 to a
** transaction; count the key and value bytes in *pbytes (may be NULL). */
static void put_step(tkv_db *db, model *m, const char *prefix, unsigned a,
                     unsigned b, unsigned step, unsigned ver,
                     uint64_t *pbytes){
  char key[32], val[256];
  unsigned n = 0;
  for(unsigned i=a; i<b; i+=step, n++){
    size_t vl;
    if( n%100==0 ) assert_ok(tkv_begin(db));
    key_of(key, prefix, i);
    vl = gen_val(val, sizeof val, key, ver);
    assert_ok(tkv_put(db, key, strlen(key), val, vl));
    if( m ) model_put(m, key, strlen(key), val, vl);
    if( pbytes ) *pbytes += strlen(key) + vl;
    if( n%100==99 ) assert_ok(tkv_commit(db));
  }
  if( n%100 ) assert_ok(tkv_commit(db));
}

/* Put prefix[a..b) at version ver inside the caller's transaction. */
static void put_range_in(tkv_db *db, model *m, const char *prefix,
                         unsigned a, unsigned b, unsigned ver){
  char key[32], val[256];
  for(unsigned i=a; i<b; i++){
    size_t vl = gen_val(val, sizeof val, key_of(key, prefix, i), ver);
    assert_ok(tkv_put(db, key, strlen(key), val, vl));
    model_put(m, key, strlen(key), val, vl);
  }
}

static void put_range(tkv_db *db, model *m, const char *prefix, unsigned a,
                      unsigned b, unsigned ver, uint64_t *pbytes){
  put_step(db, m, prefix, a, b, 1, ver, pbytes);
}

/* Delete every step-th key of prefix[a..b) that m has, 100 to a
** transaction. */
static void del_step(tkv_db *db, model *m, const char *prefix, unsigned a,
                     unsigned b, unsigned step){
  char key[32];
  unsigned n = 0;
  for(unsigned i=a; i<b; i+=step){
    key_of(key, prefix, i);
    if( !model_get(m, key, strlen(key)) ) continue;
    if( n%100==0 ) assert_ok(tkv_begin(db));
    assert_ok(tkv_delete(db, key, strlen(key)));
    model_del(m, key, strlen(key));
    if( ++n%100==0 ) assert_ok(tkv_commit(db));
  }
  if( n%100 ) assert_ok(tkv_commit(db));
}

static void del_range(tkv_db *db, model *m, const char *prefix, unsigned a,
                      unsigned b){
  del_step(db, m, prefix, a, b, 1);
}

/* Bytes of the store's segment files (*.seg), and how many there are. */
static uint64_t seg_bytes(const char *dir, int *pnfiles){
  int n;
  char **names = tu_list_files(dir, ".seg", &n);
  uint64_t sum = 0;
  for(int i=0; i<n; i++){
    long long sz = tu_file_size(tu_path(dir, names[i]));
    if( sz>0 ) sum += (uint64_t)sz;
  }
  tu_free_names(names);
  if( pnfiles ) *pnfiles = n;
  return sum;
}

/* Record bytes of the contents of m (what a fully merged store holds). */
static uint64_t model_bytes(const model *m){
  uint64_t sum = 0;
  for(size_t i=0; i<m->n; i++){
    sum += tkv_rec_size((uint32_t)m->v[i].klen, (uint32_t)m->v[i].vlen);
  }
  return sum;
}

/* ------------------------------------------- A model in a file, for peers. */

static void model_save(const model *m, const char *path){
  FILE *fp = fopen(path, "wb");
  uint64_t n = m->n;
  assert_non_null(fp);
  assert_int_equal(fwrite(&n, sizeof n, 1, fp), 1);
  for(size_t i=0; i<m->n; i++){
    uint64_t kl = m->v[i].klen, vl = m->v[i].vlen;
    assert_int_equal(fwrite(&kl, sizeof kl, 1, fp), 1);
    assert_int_equal(fwrite(m->v[i].key, 1, kl, fp), kl);
    assert_int_equal(fwrite(&vl, sizeof vl, 1, fp), 1);
    if( vl ) assert_int_equal(fwrite(m->v[i].val, 1, vl, fp), vl);
  }
  assert_int_equal(fclose(fp), 0);
}

/* In a peer (no cmocka there): 0, or -1 if the file cannot be read. */
static int model_load(model *m, const char *path){
  FILE *fp = fopen(path, "rb");
  uint64_t n;
  uint8_t *k = NULL, *v = NULL;
  int rc = -1;
  model_clear(m);
  if( !fp ) return -1;
  if( fread(&n, sizeof n, 1, fp)!=1 ) goto done;
  for(uint64_t i=0; i<n; i++){
    uint64_t kl, vl;
    if( fread(&kl, sizeof kl, 1, fp)!=1 || kl>TKV_KEY_MAX ) goto done;
    k = malloc(kl + 1);
    if( !k || fread(k, 1, kl, fp)!=kl ) goto done;
    if( fread(&vl, sizeof vl, 1, fp)!=1 || vl>(1u << 24) ) goto done;
    v = malloc(vl + 1);
    if( !v || (vl && fread(v, 1, vl, fp)!=vl) ) goto done;
    model_put(m, k, kl, v, vl);
    free(k);
    free(v);
    k = v = NULL;
  }
  rc = 0;
done:
  free(k);
  free(v);
  fclose(fp);
  return rc;
}

/* ------------------------------------------------------------ Lines. */

/* Read one line (without its newline) from fd into buf, waiting up to
** ms for each byte.  Its length, or -1 on end of file, error or timeout. */
static int read_line(int fd, char *buf, size_t cap, int ms){
  size_t n = 0;
  for(;;){
    struct pollfd p = { fd, POLLIN, 0 };
    char c;
    ssize_t got;
    int pr = poll(&p, 1, ms);
    if( pr<0 && errno==EINTR ) continue;
    if( pr<=0 ) return -1;
    got = read(fd, &c, 1);
    if( got<0 && errno==EINTR ) continue;
    if( got<=0 ) return -1;
    if( c=='\n' ) break;
    if( n + 1<cap ) buf[n++] = c;
  }
  buf[n] = 0;
  return (int)n;
}

static void write_all(int fd, const char *p, size_t n){
  while( n ){
    ssize_t w = write(fd, p, n);
    if( w<0 && errno==EINTR ) continue;
    if( w<=0 ) _exit(90);   /* the other side is gone */
    p += w;
    n -= (size_t)w;
  }
}

/* ------------------------------------------------- The peer process.
**
** Commands (one line each) and what they answer ("RC TEXT", RC a TKV_*
** code, or 0/1 for a check):
**   open R            open the store (R: 1 read-only), busy timeout 10 s
**   close             close it
**   verify PATH       the store equals the model saved in PATH (tkv_get of
**                     every key, a cursor walk, tkv_count; store_diff)
**   absent P A B      keys P[A..B) are absent (tkv_get and tkv_lookup)
**   putn P A B VER    write keys P[A..B) at version VER, in one transaction
**                     (the open one, if any)
**   del KEY           delete KEY (outside a transaction: its own)
**   put KEY VER       write KEY at version VER
**   begin / commit / rollback
**   sleep MS
**   compact           tkv_compact; TEXT: the bytes reclaimed
**   stats             TEXT: "merges=N"
**   scanopen          open a cursor at the first key
**   scanmodel PATH    the model the next scan steps check against
**   scanstep N        move the cursor N keys on (N < 0: to the end),
**                     checking each key and value against that model:
**                     each key is the model's first key after the last
**                     one seen; at the end, no model key is left
**   scanclose
**   watch P N         answer "0 watching", then read keys P[0..N) (gets
**                     and cursor walks) until the next command line, which
**                     it consumes; answer the reads made, or 1 and the
**                     first value that no commit wrote or that went back
**                     to an older version
**   quit
*/
typedef struct peer {
  pid_t pid;
  int cmd;                 /* write end of the commands */
  int rep;                 /* read end of the answers */
  char text[1200];         /* the last answer's text */
} peer;

static pid_t live_pids[MAX_PEERS];   /* children to kill if a test fails */

static void live_add(pid_t pid){
  for(int i=0; i<MAX_PEERS; i++){
    if( !live_pids[i] ){ live_pids[i] = pid; return; }
  }
  fail_msg("too many child processes");
}

static void live_remove(pid_t pid){
  for(int i=0; i<MAX_PEERS; i++){
    if( live_pids[i]==pid ) live_pids[i] = 0;
  }
}

/* Teardown: children a failed test left behind are killed first. */
static int share_teardown(void **state){
  for(int i=0; i<MAX_PEERS; i++){
    if( live_pids[i] ){
      kill(live_pids[i], SIGKILL);
      waitpid(live_pids[i], NULL, 0);
      live_pids[i] = 0;
    }
  }
  return fixture_teardown(state);
}

#define SHARE_TEST(fn) \
  cmocka_unit_test_setup_teardown(fn, fixture_setup, share_teardown)

typedef struct peer_child {
  const char *dir;
  tkv_options o;
  tkv_db *db;
  tkv_cursor *cur;
  int cur_started;         /* the cursor rests on a key already checked */
  uint8_t prev[64];        /* that key */
  size_t prev_len;
  model sm;                /* the model scan steps check against */
  int cmd, rep;
} peer_child;

static void reply(peer_child *c, int rc, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static void reply(peer_child *c, int rc, const char *fmt, ...){
  char buf[1200];
  va_list ap;
  int n = snprintf(buf, sizeof buf, "%d ", rc);
  va_start(ap, fmt);
  vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  va_end(ap);
  for(char *p=buf; *p; p++) if( *p=='\n' ) *p = ' ';
  n = (int)strlen(buf);
  buf[n++] = '\n';
  write_all(c->rep, buf, (size_t)n);
}

/* The reply to a call: its code, and the message when it failed. */
static void reply_rc(peer_child *c, int rc){
  reply(c, rc, "%s", rc ? tkv_errmsg() : "ok");
}

/* One scan step (see scanstep): 0, or -1 with why. */
static int scan_check(peer_child *c, long steps, long *pdone, char *why,
                      size_t nwhy){
  long k;
  for(k=0; steps<0 || k<steps; k++){
    const void *key;
    size_t klen, idx, vlen = 0;
    void *val = NULL;
    int rc = TKV_OK;
    if( c->cur_started ) rc = tkv_cursor_next(c->cur);
    c->cur_started = 1;
    if( rc ){
      snprintf(why, nwhy, "cursor next: %s: %s", tkv_strerror(rc),
               tkv_errmsg());
      return -1;
    }
    idx = c->prev_len==(size_t)-1 ? 0 : model_lower(&c->sm, c->prev,
                                                     c->prev_len);
    if( c->prev_len!=(size_t)-1 && idx<c->sm.n
     && !key_cmp(c->sm.v[idx].key, c->sm.v[idx].klen, c->prev,
                 c->prev_len) ){
      idx++;
    }
    if( !tkv_cursor_valid(c->cur) ){
      if( idx<c->sm.n ){
        snprintf(why, nwhy, "the cursor ended, but %s follows",
                 key_text(c->sm.v[idx].key, c->sm.v[idx].klen));
        return -1;
      }
      break;
    }
    tkv_cursor_key(c->cur, &key, &klen);
    if( idx>=c->sm.n || key_cmp(key, klen, c->sm.v[idx].key,
                                c->sm.v[idx].klen) ){
      snprintf(why, nwhy, "the cursor gives %s, expected %s",
               key_text(key, klen),
               idx<c->sm.n ? key_text(c->sm.v[idx].key, c->sm.v[idx].klen)
                           : "the end");
      return -1;
    }
    rc = tkv_cursor_value(c->cur, &val, &vlen);
    if( rc ){
      snprintf(why, nwhy, "cursor value of %s: %s: %s", key_text(key, klen),
               tkv_strerror(rc), tkv_errmsg());
      return -1;
    }
    if( vlen!=c->sm.v[idx].vlen || memcmp(val, c->sm.v[idx].val, vlen) ){
      snprintf(why, nwhy, "cursor value of %s is wrong (%zu bytes, expected "
               "%zu)", key_text(key, klen), vlen, c->sm.v[idx].vlen);
      tkv_free(val);
      return -1;
    }
    tkv_free(val);
    if( klen>sizeof c->prev ){
      snprintf(why, nwhy, "key too long for a scan");
      return -1;
    }
    memcpy(c->prev, key, klen);
    c->prev_len = klen;
  }
  *pdone = k;
  return 0;
}

/* A value seen while watching: right for its key, not older than the
** last one seen of that key.  0, or -1 with why. */
static int watch_seen(const char *prefix, const void *key, size_t klen,
                      const void *val, size_t vlen, unsigned *last,
                      unsigned nkeys, char *why, size_t nwhy){
  char k[40];
  size_t pl = strlen(prefix);
  unsigned long i;
  long ver;
  char *end;
  if( klen>=sizeof k || klen!=pl + 5 || memcmp(key, prefix, pl) ){
    snprintf(why, nwhy, "a key no commit wrote: %s", key_text(key, klen));
    return -1;
  }
  memcpy(k, key, klen);
  k[klen] = 0;
  i = strtoul(k + pl, &end, 10);
  if( *end || i>=nkeys ){
    snprintf(why, nwhy, "a key no commit wrote: %s", k);
    return -1;
  }
  ver = checked_val(k, val, vlen);
  if( ver<0 ){
    snprintf(why, nwhy, "%s holds a value no commit wrote (%zu bytes: "
             "%.40s)", k, vlen, (const char*)val);
    return -1;
  }
  if( (unsigned)ver<last[i] ){
    snprintf(why, nwhy, "%s went back from version %u to %ld", k, last[i],
             ver);
    return -1;
  }
  last[i] = (unsigned)ver;
  return 0;
}

/* One cursor walk over the whole store while watching. */
static int watch_walk(tkv_db *db, const char *prefix, unsigned *last,
                      unsigned nkeys, char *why, size_t nwhy){
  tkv_cursor *cur = NULL;
  uint8_t prev[64];
  size_t prev_len = 0;
  int rc = tkv_cursor_open(db, &cur), first = 1;
  if( !rc ) rc = tkv_cursor_seek(cur, NULL, 0);
  while( !rc && tkv_cursor_valid(cur) ){
    const void *key;
    size_t klen, vlen = 0;
    void *val = NULL;
    tkv_cursor_key(cur, &key, &klen);
    if( klen>sizeof prev ){
      snprintf(why, nwhy, "a key no commit wrote: %s", key_text(key, klen));
      break;
    }
    if( !first && key_cmp(prev, prev_len, key, klen)>=0 ){
      snprintf(why, nwhy, "the cursor went from %s to %s",
               key_text(prev, prev_len), key_text(key, klen));
      break;
    }
    first = 0;
    memcpy(prev, key, klen);
    prev_len = klen;
    rc = tkv_cursor_value(cur, &val, &vlen);
    if( rc==TKV_NOTFOUND ){
      rc = TKV_OK;            /* deleted since the cursor got there */
    }else if( !rc ){
      int bad = watch_seen(prefix, prev, prev_len, val, vlen, last, nkeys,
                           why, nwhy);
      tkv_free(val);
      if( bad ) break;
    }
    if( !rc ) rc = tkv_cursor_next(cur);
  }
  tkv_cursor_close(cur);
  if( rc ){
    snprintf(why, nwhy, "cursor walk: %s: %s", tkv_strerror(rc),
             tkv_errmsg());
  }
  return why[0] ? -1 : 0;
}

static void child_watch(peer_child *c, const char *prefix, unsigned nkeys){
  unsigned *last = calloc(nkeys ? nkeys : 1, sizeof *last);
  unsigned long gets = 0, walks = 0;
  uint64_t rnd = 12345;
  char why[600] = "", line[64];
  if( !last ) _exit(91);
  reply(c, 0, "watching");
  for(uint64_t it=0; ; it++){
    struct pollfd p = { c->cmd, POLLIN, 0 };
    if( poll(&p, 1, 0)>0 ) break;
    if( why[0] ){
      usleep(1000);
      continue;
    }
    if( it%4==3 ) usleep(200);    /* reads now and then, many of them */
    if( it%16==15 ){
      if( watch_walk(c->db, prefix, last, nkeys, why, sizeof why) ) continue;
      walks++;
    }else{
      char key[32];
      void *val = NULL;
      size_t vlen = 0;
      int rc;
      key_of(key, prefix, (unsigned)(tu_rand(&rnd) % nkeys));
      rc = tkv_get(c->db, key, strlen(key), &val, &vlen);
      if( rc==TKV_OK ){
        (void)watch_seen(prefix, key, strlen(key), val, vlen, last, nkeys,
                         why, sizeof why);
        tkv_free(val);
      }else if( rc!=TKV_NOTFOUND ){
        snprintf(why, sizeof why, "tkv_get(%s): %s: %s", key,
                 tkv_strerror(rc), tkv_errmsg());
      }
      if( tkv_count(c->db)>nkeys && !why[0] ){
        snprintf(why, sizeof why, "tkv_count is %llu, more than the %u keys "
                 "ever written", (unsigned long long)tkv_count(c->db), nkeys);
      }
      gets++;
    }
  }
  if( read_line(c->cmd, line, sizeof line, PEER_WAIT_MS)<0 ) _exit(92);
  free(last);
  if( why[0] ) reply(c, 1, "%s", why);
  else reply(c, 0, "gets=%lu walks=%lu", gets, walks);
}

static void child_command(peer_child *c, char *line){
  char w[16] = "", a1[4400] = "", a2[64] = "", a3[64] = "", a4[64] = "";
  char why[600], key[32], val[256];
  sscanf(line, "%15s %4399s %63s %63s %63s", w, a1, a2, a3, a4);
  if( !strcmp(w, "open") ){
    tkv_options o = c->o;
    int rc;
    o.readonly = atoi(a1);
    rc = tkv_open(c->dir, &o, &c->db);
    if( !rc ) tkv_busy_timeout(c->db, 10000);
    reply_rc(c, rc);
  }else if( !c->db && strcmp(w, "sleep") && strcmp(w, "quit") ){
    reply(c, TKV_MISUSE, "the store is not open");
  }else if( !strcmp(w, "close") ){
    int rc = tkv_close(c->db);
    c->db = NULL;
    reply_rc(c, rc);
  }else if( !strcmp(w, "verify") ){
    model m = {0};
    if( model_load(&m, a1) ) reply(c, 1, "cannot read the model %s", a1);
    else if( store_diff(c->db, &m, why, sizeof why) ) reply(c, 1, "%s", why);
    else reply(c, 0, "%zu keys", m.n);
    model_clear(&m);
  }else if( !strcmp(w, "absent") ){
    unsigned a = (unsigned)atoi(a2), b = (unsigned)atoi(a3), i;
    for(i=a; i<b; i++){
      void *v = NULL;
      size_t n = 0;
      int rc1, rc2;
      key_of(key, a1, i);
      rc1 = tkv_get(c->db, key, strlen(key), &v, &n);
      if( rc1==TKV_OK ) tkv_free(v);
      rc2 = tkv_lookup(c->db, key, strlen(key), NULL, NULL);
      if( rc1!=TKV_NOTFOUND || rc2!=TKV_NOTFOUND ){
        reply(c, 1, "%s is not absent: tkv_get gives %s, tkv_lookup %s", key,
              tkv_strerror(rc1), tkv_strerror(rc2));
        break;
      }
    }
    if( i==b ) reply(c, 0, "%u keys absent", b - a);
  }else if( !strcmp(w, "putn") ){
    unsigned a = (unsigned)atoi(a2), b = (unsigned)atoi(a3);
    unsigned ver = (unsigned)strtoul(a4, NULL, 10);
    int own = !tkv_in_transaction(c->db);   /* else: in the open one */
    int rc = own ? tkv_begin(c->db) : TKV_OK;
    for(unsigned i=a; !rc && i<b; i++){
      size_t n;
      key_of(key, a1, i);
      n = gen_val(val, sizeof val, key, ver);
      rc = tkv_put(c->db, key, strlen(key), val, n);
    }
    if( own && !rc ) rc = tkv_commit(c->db);
    else if( own ) tkv_rollback(c->db);
    reply_rc(c, rc);
  }else if( !strcmp(w, "put") ){
    size_t n = gen_val(val, sizeof val, a1, (unsigned)strtoul(a2, NULL, 10));
    reply_rc(c, tkv_put(c->db, a1, strlen(a1), val, n));
  }else if( !strcmp(w, "del") ){
    reply_rc(c, tkv_delete(c->db, a1, strlen(a1)));
  }else if( !strcmp(w, "begin") ){
    reply_rc(c, tkv_begin(c->db));
  }else if( !strcmp(w, "commit") ){
    reply_rc(c, tkv_commit(c->db));
  }else if( !strcmp(w, "rollback") ){
    reply_rc(c, tkv_rollback(c->db));
  }else if( !strcmp(w, "sleep") ){
    usleep((useconds_t)atoi(a1)*1000);
    reply(c, 0, "slept");
  }else if( !strcmp(w, "compact") ){
    uint64_t rec = 0;
    int rc = tkv_compact(c->db, &rec);
    if( rc ) reply_rc(c, rc);
    else reply(c, 0, "%llu", (unsigned long long)rec);
  }else if( !strcmp(w, "stats") ){
    tkv_stats st;
    int rc = tkv_stats_get(c->db, &st);
    if( rc ) reply_rc(c, rc);
    else reply(c, 0, "merges=%llu", (unsigned long long)st.merges);
  }else if( !strcmp(w, "scanopen") ){
    int rc = tkv_cursor_open(c->db, &c->cur);
    if( !rc ) rc = tkv_cursor_seek(c->cur, NULL, 0);
    c->cur_started = 0;
    c->prev_len = (size_t)-1;
    reply_rc(c, rc);
  }else if( !strcmp(w, "scanmodel") ){
    if( model_load(&c->sm, a1) ) reply(c, 1, "cannot read the model %s", a1);
    else reply(c, 0, "%zu keys", c->sm.n);
  }else if( !strcmp(w, "scanstep") ){
    long done = 0;
    if( !c->cur ) reply(c, TKV_MISUSE, "no cursor");
    else if( scan_check(c, atol(a1), &done, why, sizeof why) ){
      reply(c, 1, "%s", why);
    }else{
      reply(c, 0, "%ld", done);
    }
  }else if( !strcmp(w, "scanclose") ){
    tkv_cursor_close(c->cur);
    c->cur = NULL;
    reply(c, 0, "closed");
  }else if( !strcmp(w, "watch") ){
    child_watch(c, a1, (unsigned)atoi(a2));
  }else{
    reply(c, TKV_INVALID, "unknown command %s", w);
  }
}

static void peer_main(peer_child *c){
  char line[4600];
  for(;;){
    /* No command in twice the test's patience: the test is gone. */
    if( read_line(c->cmd, line, sizeof line, 2*PEER_WAIT_MS)<0 ) _exit(0);
    if( !strcmp(line, "quit") ) _exit(0);
    child_command(c, line);
  }
}

/*
** Start a peer process on dir with options o (opened by "open").  The peer
** is this test program run again (fork, then exec): this process may have a
** merge thread running, and a child of fork() may only call
** async-signal-safe functions until it execs; anything else (malloc, under
** a sanitizer's allocator) can wait forever on a lock the merge thread held
** at the fork.  The arguments are formatted before the fork for that
** reason; main() hands "--peer" runs to peer_exec_main.
*/
static void peer_start(peer *p, const char *dir, const tkv_options *o){
  int cmd[2], rep[2];
  char a[9][64];
  char *argv[13];
  memset(p, 0, sizeof *p);
  assert_int_equal(pipe(cmd), 0);
  assert_int_equal(pipe(rep), 0);
  snprintf(a[0], sizeof a[0], "%d", cmd[0]);
  snprintf(a[1], sizeof a[1], "%d", rep[1]);
  snprintf(a[2], sizeof a[2], "%d", (int)o->sync);
  snprintf(a[3], sizeof a[3], "%llu", (unsigned long long)o->max_file_size);
  snprintf(a[4], sizeof a[4], "%llu",
           (unsigned long long)o->compact_threshold);
  snprintf(a[5], sizeof a[5], "%d", o->create);
  snprintf(a[6], sizeof a[6], "%d", o->readonly);
  snprintf(a[7], sizeof a[7], "%d", o->busy_timeout);
  snprintf(a[8], sizeof a[8], "%d", o->exclusive);
  argv[0] = "test_core_share";
  argv[1] = "--peer";
  argv[2] = (char*)dir;
  for(int i=0; i<9; i++) argv[3+i] = a[i];
  argv[12] = NULL;
  fflush(stdout);
  fflush(stderr);
  p->pid = fork();
  assert_true(p->pid>=0);
  if( p->pid==0 ){
    close(cmd[1]);
    close(rep[0]);
    execv("/proc/self/exe", argv);
    _exit(127);
  }
  live_add(p->pid);
  close(cmd[0]);
  close(rep[1]);
  p->cmd = cmd[1];
  p->rep = rep[0];
}

/* Queue a command (the answer is read by peer_reply). */
static void peer_send(peer *p, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
static void peer_send(peer *p, const char *fmt, ...){
  char buf[4600];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  assert_true(n>0 && n<(int)sizeof buf - 1);
  buf[n++] = '\n';
  for(int off=0; off<n; ){
    ssize_t w = write(p->cmd, buf + off, (size_t)(n - off));
    if( w<0 && errno==EINTR ) continue;
    if( w<=0 ) fail_msg("peer %d: cannot send a command", (int)p->pid);
    off += (int)w;
  }
}

/* The next answer: its code (p->text has its text). */
static int peer_reply(peer *p){
  char line[1300];
  char *sp;
  if( read_line(p->rep, line, sizeof line, PEER_WAIT_MS)<0 ){
    fail_msg("the other process (pid %d) gave no answer: it died, or did "
             "not answer within %d ms", (int)p->pid, PEER_WAIT_MS);
  }
  sp = strchr(line, ' ');
  snprintf(p->text, sizeof p->text, "%s", sp ? sp + 1 : "");
  return atoi(line);
}

static int peer_do(peer *p, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
static int peer_do(peer *p, const char *fmt, ...){
  char buf[4600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  peer_send(p, "%s", buf);
  return peer_reply(p);
}

/* Run a command that must succeed. */
static void peer_ok(peer *p, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
static void peer_ok(peer *p, const char *fmt, ...){
  char buf[4600];
  va_list ap;
  int rc;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  rc = peer_do(p, "%s", buf);
  if( rc ){
    fail_msg("the other process (pid %d): %s: %s%s%s", (int)p->pid, buf,
             rc>1 ? tkv_strerror(rc) : "", rc>1 ? ": " : "", p->text);
  }
}

/* The peer's store equals m (m is saved in the fixture's directory). */
static void peer_verify(peer *p, const fixture *f, const model *m){
  char path[4300];
  snprintf(path, sizeof path, "%s/model-%d", f->root, (int)p->pid);
  model_save(m, path);
  peer_ok(p, "verify %s", path);
}

/* Quit the peer; it must exit with status 0. */
static void peer_end(peer *p){
  peer_send(p, "quit");
  assert_int_equal(child_status(p->pid), 0);
  live_remove(p->pid);
  close(p->cmd);
  close(p->rep);
}

/* A peer that has the store open. */
static void peer_open(peer *p, const char *dir, const tkv_options *o,
                      int readonly){
  peer_start(p, dir, o);
  peer_ok(p, "open %d", readonly);
}

/* tkv_compact by this process must succeed although another has the
** store open; the failure names the line of the call. */
#define compact_ok(db) compact_ok_at((db), __LINE__)
static uint64_t compact_ok_at(tkv_db *db, int line){
  uint64_t rec = 0;
  int rc = tkv_compact(db, &rec);
  if( rc ){
    fail_msg("line %d: tkv_compact while another process has the store "
             "open gave %s: %s", line, tkv_strerror(rc), tkv_errmsg());
  }
  return rec;
}

/* Options of the merge tests: small segments, so that a few hundred
** writes make many of them, and no automatic merge unless asked. */
static tkv_options merge_options(uint64_t threshold){
  return store_options(TKV_SYNC_NORMAL, 8192, threshold);
}

/* What a peer's "putn prefix a b ver" wrote, into m. */
static void model_range(model *m, const char *prefix, unsigned a, unsigned b,
                        unsigned ver){
  for(unsigned i=a; i<b; i++){
    char key[32], val[256];
    size_t n = gen_val(val, sizeof val, key_of(key, prefix, i), ver);
    model_put(m, key, strlen(key), val, n);
  }
}

/* 300 keys written three times, every fifth deleted. */
static void small_store(tkv_db *db, model *m){
  for(unsigned v=1; v<=3; v++) put_range(db, m, "k", 0, 300, v, NULL);
  del_step(db, m, "k", 0, 300, 5);
}

/*
** Transactions larger than a segment, by either of two processes: each
** one's segment outgrows max_file_size (and the map the other process made
** of it while it was small), and both read every value of it, while it is
** the active segment, once it is sealed, and after a reopen.
*/
static void test_transactions_larger_than_a_segment_in_two_processes(
    void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 4096, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  peer b;
  put_range(db, &m, "a", 0, 10, 1, NULL);
  peer_open(&b, f->dir, &o, 0);
  peer_verify(&b, f, &m);          /* b maps this segment while small */
  assert_ok(tkv_begin(db));
  put_range_in(db, &m, "big", 0, 400, 2);
  assert_ok(tkv_commit(db));
  assert_store_is(db, &m);
  peer_verify(&b, f, &m);
  peer_ok(&b, "putn bb 0 400 3");  /* one transaction of b's */
  model_range(&m, "bb", 0, 400, 3);
  assert_store_is(db, &m);
  peer_verify(&b, f, &m);
  put_range(db, &m, "c", 0, 5, 4, NULL);   /* seals b's big segment */
  assert_store_is(db, &m);
  peer_verify(&b, f, &m);
  peer_end(&b);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/*
** Another process follows commits whose records it applies in windows
** (recovery.c, FOLLOWING IN WINDOWS): keys of every length from the empty
** one to past the window's key limit, one key written twice, or written
** and deleted, in one transaction and so in one window, deletes of keys
** it has never seen; it reads exactly this process's store after each
** commit.
*/
static void test_following_keys_of_every_length(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 1 << 16, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  peer b;
  put_range(db, &m, "a", 0, 3, 1, NULL);
  peer_open(&b, f->dir, &o, 0);
  for(unsigned round=0; round<6; round++){
    assert_ok(tkv_begin(db));
    for(unsigned i=0; i<150; i++){
      char key[700], val[64];
      size_t kl = i==0 ? 0 : (size_t)snprintf(key, sizeof key, "%u:", i);
      size_t want = i==0 ? 0 : kl + (i*37u) % 600u, vl;
      for(; kl<want; kl++) key[kl] = (char)('a' + (i + kl) % 26);
      vl = (size_t)snprintf(val, sizeof val, "r%u-i%u", round, i);
      if( (i + round)%11==0 ){          /* a delete of a key never written */
        assert_tkv(TKV_NOTFOUND, tkv_delete(db, "zz", 2));
      }
      assert_ok(tkv_put(db, key, kl, val, vl));
      model_put(&m, key, kl, val, vl);
      if( (i + round)%5==0 ){           /* twice in one window */
        val[0] = 'R';
        assert_ok(tkv_put(db, key, kl, val, vl));
        model_put(&m, key, kl, val, vl);
      }
      if( (i + round)%7==0 ){           /* and gone again */
        assert_ok(tkv_delete(db, key, kl));
        assert_true(model_del(&m, key, kl));
      }
    }
    assert_ok(tkv_commit(db));
    peer_verify(&b, f, &m);
  }
  peer_end(&b);
  close_ok(db);
  model_clear(&m);
}

/*
** tkv_compact succeeds while another process has the store open and is
** idle; both then see everything, the other process's writes reach this
** one, and a second compaction works too.
*/
static void test_compact_while_another_process_is_idle(void **state){
  fixture *f = *state;
  tkv_options o = merge_options(UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  peer b;
  small_store(db, &m);
  peer_open(&b, f->dir, &o, 0);
  peer_verify(&b, f, &m);
  compact_ok(db);
  assert_true(stats_of(db).merges>0);
  assert_store_is(db, &m);
  peer_verify(&b, f, &m);
  peer_ok(&b, "putn b 0 20 7");
  model_range(&m, "b", 0, 20, 7);
  assert_store_is(db, &m);
  compact_ok(db);
  assert_store_is(db, &m);
  peer_verify(&b, f, &m);
  peer_end(&b);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/*
** Another process walks the store with a cursor, reading every value,
** while this one compacts, and then overwrites and deletes keys behind the
** cursor and compacts again: the cursor goes on, in order, with the right
** values (their records moved under it), and ends where the store ends.
*/
static void test_compact_during_another_process_cursor(void **state){
  fixture *f = *state;
  tkv_options o = merge_options(UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  char path[4300];
  model m = {0};
  peer b;
  small_store(db, &m);
  snprintf(path, sizeof path, "%s/scan-model", f->root);
  model_save(&m, path);
  peer_open(&b, f->dir, &o, 0);
  peer_ok(&b, "scanopen");
  peer_ok(&b, "scanmodel %s", path);
  peer_ok(&b, "scanstep 60");
  compact_ok(db);
  peer_ok(&b, "scanstep 60");
  /* Keys behind the cursor (which rests on k00149) change; a cursor sees
  ** other processes' commits as of its opening, so keys ahead stay. */
  put_range(db, &m, "k", 0, 100, 9, NULL);
  del_range(db, &m, "k", 40, 60);
  compact_ok(db);
  peer_ok(&b, "scanstep -1");
  assert_true(atoi(b.text)>100);
  peer_ok(&b, "scanclose");
  peer_verify(&b, f, &m);
  assert_store_is(db, &m);
  peer_end(&b);
  close_ok(db);
  model_clear(&m);
}

/*
** Another process is inside a write transaction.  A compaction with a
** short busy timeout (this handle's) either succeeds or gives TKV_BUSY
** without waiting anywhere near the default timeout; one with a long timeout succeeds (once that transaction
** commits, if it needs the write lock), and the transaction commits too.
** Nothing uncommitted is ever visible, nothing committed goes missing.
*/
static void test_compact_during_another_process_transaction(void **state){
  fixture *f = *state;
  tkv_options o = merge_options(UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  struct timespec t0, t1;
  long ms;
  model m = {0};
  peer b;
  int rc;
  small_store(db, &m);
  peer_open(&b, f->dir, &o, 0);
  peer_ok(&b, "begin");
  peer_ok(&b, "putn t 0 10 1");
  peer_ok(&b, "del k00001");
  tkv_busy_timeout(db, 200);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  rc = tkv_compact(db, NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  ms = (t1.tv_sec - t0.tv_sec)*1000 + (t1.tv_nsec - t0.tv_nsec)/1000000;
  if( rc!=TKV_OK && rc!=TKV_BUSY ){
    fail_msg("tkv_compact during another process's transaction: %s: %s",
             tkv_strerror(rc), tkv_errmsg());
  }
  /* Well below the default busy timeout (5 s): the handle's was used. */
  if( ms>4000 ) fail_msg("tkv_compact took %ld ms with a 200 ms busy "
                         "timeout", ms);
  assert_store_is(db, &m);
  /* The other process commits 150 ms from now; meanwhile this one
  ** compacts with time to wait for it. */
  peer_send(&b, "sleep 150");
  peer_send(&b, "commit");
  tkv_busy_timeout(db, 10000);
  compact_ok(db);
  assert_int_equal(peer_reply(&b), 0);
  rc = peer_reply(&b);
  if( rc ) fail_msg("the other process's commit: %s: %s", tkv_strerror(rc),
                    b.text);
  model_range(&m, "t", 0, 10, 1);
  assert_true(model_del(&m, "k00001", 6));
  assert_store_is(db, &m);
  peer_verify(&b, f, &m);
  compact_ok(db);
  assert_store_is(db, &m);
  peer_verify(&b, f, &m);
  peer_end(&b);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/*
** 2000 keys written six times over in small segments, some deleted; a
** second process loads the store, this one writes more, then compacts.
** The second process then reads everything right without reopening
** (tkv_get, a cursor walk, tkv_count); once it has read and this one has
** merged again, the segment files hold less than half of what they held.
** Its writes reach this process; a third process opening afterwards, and
** a reopen, see the same.
*/
static void test_merge_seen_by_every_process(void **state){
  fixture *f = *state;
  tkv_options o = merge_options(UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  uint64_t before, after;
  int nbefore, nafter, deleted = 0;
  model m = {0};
  peer b, c;
  for(unsigned v=1; v<=6; v++) put_range(db, &m, "key", 0, 2000, v, NULL);
  del_step(db, &m, "key", 3, 2000, 7);
  put_step(db, &m, "key", 0, 2000, 5, 7, NULL);
  peer_open(&b, f->dir, &o, 0);
  peer_verify(&b, f, &m);
  /* The second process does not read again until after the merge. */
  put_step(db, &m, "key", 0, 2000, 3, 8, NULL);
  before = seg_bytes(f->dir, &nbefore);
  assert_true(nbefore>20);
  compact_ok(db);
  assert_store_is(db, &m);
  peer_verify(&b, f, &m);
  compact_ok(db);
  after = seg_bytes(f->dir, &nafter);
  if( after*2>=before || nafter>=nbefore ){
    fail_msg("after the merges and the other process's read the segments "
             "hold %llu bytes in %d files, before %llu bytes in %d files",
             (unsigned long long)after, nafter, (unsigned long long)before,
             nbefore);
  }
  /* The second process writes; this one reads it. */
  peer_ok(&b, "putn bkey 0 100 1");
  model_range(&m, "bkey", 0, 100, 1);
  for(unsigned i=0; i<2000 && deleted<10; i+=11){
    char key[32];
    key_of(key, "key", i);
    if( !model_get(&m, key, strlen(key)) ) continue;
    peer_ok(&b, "del %s", key);
    model_del(&m, key, strlen(key));
    deleted++;
  }
  assert_store_is(db, &m);
  peer_verify(&b, f, &m);
  peer_open(&c, f->dir, &o, 0);
  peer_verify(&c, f, &m);
  peer_end(&c);
  peer_end(&b);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/*
** Deleted keys stay deleted in every process after merges drop their
** tombstones.  A second process loads the store and then reads nothing
** while this one overwrites, deletes (keys it had loaded, and new keys
** written and deleted in between), deletes and writes again, compacts,
** deletes more and compacts again: its first read after that must catch
** up across segments the merges removed, with no deleted key back.  Then
** the same with the second process current before the merge, its own
** writes, a third process, and a reopen.
*/
static void test_deleted_keys_stay_deleted_after_merge(void **state){
  fixture *f = *state;
  tkv_options o = merge_options(UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  peer b, c;
  put_range(db, &m, "d", 0, 1000, 1, NULL);
  peer_open(&b, f->dir, &o, 0);
  peer_verify(&b, f, &m);
  /* The second process now reads nothing until told. */
  put_range(db, &m, "d", 0, 500, 2, NULL);
  del_range(db, &m, "d", 500, 800);
  put_range(db, &m, "e", 0, 300, 1, NULL);
  del_range(db, &m, "e", 0, 150);
  del_range(db, &m, "d", 900, 1000);
  put_range(db, &m, "d", 900, 950, 3, NULL);
  put_range(db, &m, "d", 0, 500, 4, NULL);
  compact_ok(db);
  del_range(db, &m, "d", 0, 100);
  put_range(db, &m, "d", 100, 500, 5, NULL);
  compact_ok(db);
  assert_store_is(db, &m);
  peer_ok(&b, "absent d 500 800");
  peer_ok(&b, "absent d 950 1000");
  peer_ok(&b, "absent e 0 150");
  peer_ok(&b, "absent d 0 100");
  peer_verify(&b, f, &m);
  /* Now with the second process current when the tombstones come. */
  del_range(db, &m, "d", 100, 200);
  peer_verify(&b, f, &m);
  compact_ok(db);
  peer_ok(&b, "absent d 100 200");
  peer_verify(&b, f, &m);
  /* Its own writes and deletes, after the merges. */
  peer_ok(&b, "putn d 500 520 6");
  model_range(&m, "d", 500, 520, 6);
  peer_ok(&b, "del d00300");
  assert_true(model_del(&m, "d00300", 6));
  assert_store_is(db, &m);
  compact_ok(db);
  peer_ok(&b, "absent d 520 800");
  peer_ok(&b, "absent d 300 301");
  peer_verify(&b, f, &m);
  peer_open(&c, f->dir, &o, 0);
  peer_ok(&c, "absent d 0 100");
  peer_ok(&c, "absent d 520 800");
  peer_verify(&c, f, &m);
  peer_end(&c);
  peer_end(&b);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/*
** A stream of transactions on 200 keys "w": transaction t writes two keys
** at version t, and every 40th deletes a key.  Returns the key and value
** bytes written.  With compact_every, tkv_compact runs that often.
*/
#define WKEYS 200
static uint64_t write_stream(tkv_db *db, model *m, unsigned first,
                             unsigned n, unsigned compact_every){
  uint64_t bytes = 0;
  for(unsigned t=first; t<first + n; t++){
    char key[32], val[256];
    unsigned ks[2] = { (t*7) % WKEYS, (t*13 + 5) % WKEYS };
    assert_ok(tkv_begin(db));
    for(int j=0; j<2; j++){
      size_t vl = gen_val(val, sizeof val, key_of(key, "w", ks[j]), t);
      assert_ok(tkv_put(db, key, strlen(key), val, vl));
      model_put(m, key, strlen(key), val, vl);
      bytes += strlen(key) + vl;
    }
    if( t%40==0 ){
      key_of(key, "w", (t*3 + 1) % WKEYS);
      if( model_del(m, key, strlen(key)) ){
        assert_ok(tkv_delete(db, key, strlen(key)));
      }
    }
    assert_ok(tkv_commit(db));
    if( compact_every && t%compact_every==0 ) compact_ok(db);
  }
  return bytes;
}

/* The watching peer's answer: it saw nothing wrong, and read. */
static void watch_end(peer *p){
  int rc;
  peer_send(p, "stop");
  rc = peer_reply(p);
  if( rc ) fail_msg("the reading process saw: %s", p->text);
  assert_true(msg_has(p->text, "gets="));
  assert_false(msg_has(p->text, "gets=0 "));
}

/*
** Background merges (a small compact_threshold) run while another process
** has the store open and reads all along (gets and cursor walks checking
** every value it sees): afterwards this process's stats count merges, the
** segment files hold less than half of what was written, and both
** processes see exactly the model.
*/
static void test_background_merges_while_another_process_reads(void **state){
  fixture *f = *state;
  tkv_options o = merge_options(16384);
  tkv_db *db = open_with(f->dir, &o);
  uint64_t written = 0, disk;
  model m = {0};
  tkv_stats st;
  peer b;
  int nfiles;
  put_range(db, &m, "w", 0, WKEYS, 1, &written);
  peer_open(&b, f->dir, &o, 0);
  peer_verify(&b, f, &m);
  peer_ok(&b, "watch w %d", WKEYS);
  written += write_stream(db, &m, 2, 3000, 0);
  tkv_test_merge_wait(db);
  watch_end(&b);
  peer_verify(&b, f, &m);
  assert_store_is(db, &m);
  st = stats_of(db);
  if( st.merges==0 ){
    fail_msg("no background merge ran while another process had the store "
             "open (%llu stale bytes, threshold %llu, last merge status %s)",
             (unsigned long long)st.stale_bytes,
             (unsigned long long)st.compact_threshold,
             tkv_strerror(st.last_compact_rc));
  }
  tkv_test_merge_wait(db);
  disk = seg_bytes(f->dir, &nfiles);
  if( disk*2>=written ){
    fail_msg("the segments hold %llu bytes in %d files after %llu merges; "
             "%llu bytes were written", (unsigned long long)disk, nfiles,
             (unsigned long long)st.merges, (unsigned long long)written);
  }
  peer_end(&b);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/*
** A read-only handle in another process reads right all along while
** this process writes and compacts again and again, and after; its own
** tkv_compact is TKV_READONLY.  Once it has read, a merge frees the
** space.
*/
static void test_readonly_process_reads_during_merges(void **state){
  fixture *f = *state;
  tkv_options o = merge_options(UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  uint64_t written = 0, disk;
  model m = {0};
  peer b;
  int nfiles;
  put_range(db, &m, "w", 0, WKEYS, 1, &written);
  peer_open(&b, f->dir, &o, 1);
  peer_verify(&b, f, &m);
  assert_int_equal(peer_do(&b, "compact"), TKV_READONLY);
  peer_ok(&b, "watch w %d", WKEYS);
  written += write_stream(db, &m, 2, 1200, 300);
  watch_end(&b);
  peer_verify(&b, f, &m);
  compact_ok(db);
  peer_verify(&b, f, &m);
  compact_ok(db);
  disk = seg_bytes(f->dir, &nfiles);
  if( disk*2>=written ){
    fail_msg("the segments hold %llu bytes in %d files; %llu bytes were "
             "written", (unsigned long long)disk, nfiles,
             (unsigned long long)written);
  }
  assert_int_equal(peer_do(&b, "compact"), TKV_READONLY);
  peer_verify(&b, f, &m);
  peer_end(&b);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* ------------------------------------- Writers and mergers at once. */

#define MW_PROCS  4              /* processes; the even ones also compact */
#define MW_TXN    60             /* transactions of each, each round */
#define MW_ROUNDS 2

/* Key of transaction i of process me in round r (buf has 64 bytes). */
static void mixed_key(char *buf, int r, int me, int i){
  snprintf(buf, 64, "p%d.%d-%03d", r, me, i);
}

/* One of them: MW_TXN transactions that each add one to "counter" and
** write the new count to a key of its own and to one of 16 keys all
** write; with `compact`, a tkv_compact after every fifth (TKV_BUSY,
** another merge or the write lock, is allowed), and the number that
** worked written to fd `res` at the end.  Exit status 0, or what failed
** (and a line on stderr). */
static int mixed_main(const char *dir, const tkv_options *opts, int r,
                      int me, int compact, int res){
  tkv_db *db = NULL;
  int rc, merged = 0;
  if( tkv_open(dir, opts, &db) ){
    fprintf(stderr, "process %d: open: %s\n", me, tkv_errmsg());
    return 10;
  }
  tkv_busy_timeout(db, 30000);
  for(int i=0; i<MW_TXN; i++){
    char key[64], val[32];
    long c;
    rc = tkv_begin(db);
    c = rc ? -1 : read_counter(db);
    if( c<0 ){
      fprintf(stderr, "process %d: begin or read: %s\n", me, tkv_errmsg());
      return 11;
    }
    snprintf(val, sizeof val, "%ld", c + 1);
    rc = tkv_put(db, "counter", 7, val, strlen(val));
    mixed_key(key, r, me, i);
    if( !rc ) rc = tkv_put(db, key, strlen(key), val, strlen(val));
    snprintf(key, sizeof key, "s%02ld", (c + 1) % 16);
    if( !rc ) rc = tkv_put(db, key, strlen(key), val, strlen(val));
    if( !rc ) rc = tkv_commit(db);
    if( rc ){
      fprintf(stderr, "process %d: write: %s\n", me, tkv_errmsg());
      return 12;
    }
    if( compact && i%5==4 ){
      rc = tkv_compact(db, NULL);
      if( rc && rc!=TKV_BUSY ){
        fprintf(stderr, "process %d: tkv_compact: %s: %s\n", me,
                tkv_strerror(rc), tkv_errmsg());
        return 13;
      }
      if( !rc ) merged++;
    }
  }
  if( write(res, &merged, sizeof merged)!=(ssize_t)sizeof merged ) return 15;
  return tkv_close(db) ? 14 : 0;
}

/* After `rounds` rounds: every count 1..n is in exactly one key of a
** process's own, each process's counts grow, each of the 16 keys all
** write holds the last count that wrote it, and the counter is n. */
static void check_counts(tkv_db *db, int rounds){
  long n = (long)rounds*MW_PROCS*MW_TXN;
  char *seen = calloc((size_t)n + 1, 1);
  assert_non_null(seen);
  assert_int_equal(read_counter(db), n);
  for(int r=0; r<rounds; r++){
    for(int p=0; p<MW_PROCS; p++){
      long last = 0;
      for(int j=0; j<MW_TXN; j++){
        char key[64];
        void *v = NULL;
        size_t vl = 0;
        long x;
        mixed_key(key, r, p, j);
        assert_ok(tkv_get(db, key, strlen(key), &v, &vl));
        x = strtol(v, NULL, 10);
        tkv_free(v);
        if( x<=last || x>n || seen[x] ){
          fail_msg("%s holds count %ld (the process's previous: %ld; seen "
                   "before: %d): an update was lost", key, x, last,
                   x>=1 && x<=n ? seen[x] : -1);
        }
        seen[x] = 1;
        last = x;
      }
    }
  }
  for(long c = n - 15; c<=n; c++){
    char key[8], val[32];
    snprintf(key, sizeof key, "s%02ld", c % 16);
    snprintf(val, sizeof val, "%ld", c);
    expect_str(db, key, val);
  }
  free(seen);
  assert_int_equal(tkv_count(db), (uint64_t)n + 1 + 16);
}

/* Run one round of the processes; the compactions that worked. */
static int mixed_round(const fixture *f, const tkv_options *o, tkv_db *db,
                       int r){
  pid_t pids[MW_PROCS];
  long last = 0, c;
  int running = MW_PROCS, res[2], merged = 0;
  char extra;
  assert_int_equal(pipe(res), 0);
  for(int p=0; p<MW_PROCS; p++){
    fflush(stdout);
    fflush(stderr);
    pids[p] = fork();
    assert_true(pids[p]>=0);
    if( pids[p]==0 ) _exit(mixed_main(f->dir, o, r, p, p%2==0, res[1]));
    live_add(pids[p]);
  }
  close(res[1]);
  while( running ){
    if( db ){
      c = read_counter(db);
      if( c<last ) fail_msg("the counter went from %ld to %ld", last, c);
      last = c;
    }
    running = 0;
    for(int p=0; p<MW_PROCS; p++){
      int st = 0;
      pid_t w;
      if( !pids[p] ) continue;
      w = waitpid(pids[p], &st, WNOHANG);
      if( w==0 ){
        running++;
        continue;
      }
      live_remove(pids[p]);
      pids[p] = 0;
      if( !WIFEXITED(st) || WEXITSTATUS(st) ){
        fail_msg("round %d: process %d ended with status %d (signal %d)",
                 r, p, WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                 WIFSIGNALED(st) ? WTERMSIG(st) : 0);
      }
    }
    usleep(2000);
  }
  for(int p=0; p<MW_PROCS; p++){
    int n = 0;
    assert_int_equal(read(res[0], &n, sizeof n), (ssize_t)sizeof n);
    merged += n;
  }
  assert_int_equal(read(res[0], &extra, 1), 0);
  close(res[0]);
  return merged;
}

/*
** Processes writing one counter and 16 keys all write, half of them
** compacting as they go, and every one merging in the background too (a
** small compact_threshold): first while this process has the store open
** and reads, then with the store closed here (so the first of them to
** open has it alone for a moment).  No process fails, no update is lost,
** the counter read here only grows, everything is there after, here and
** after a reopen, and compactions did run.
*/
static void test_writers_and_mergers_share_a_counter(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 4096, 8192);
  tkv_db *db = open_with(f->dir, &o);
  int merged = mixed_round(f, &o, db, 0);
  if( merged==0 ){
    fail_msg("none of the %d compactions of the writing processes ran "
             "while this process had the store open",
             MW_PROCS/2 * (MW_TXN/5));
  }
  check_counts(db, 1);
  close_ok(db);
  (void)mixed_round(f, &o, NULL, 1);
  db = open_with(f->dir, &o);
  check_counts(db, 2);
  compact_ok(db);
  check_counts(db, 2);
  reopen_with(&db, f->dir, &o);
  check_counts(db, 2);
  close_ok(db);
}

/* ------------------------------------------ A merger killed with SIGKILL. */

#define MK_KEYS   100           /* keys the killed process writes */
#define MK_START  0x40000000u   /* message: compaction j starts */
#define MK_DONE   0x80000000u   /* message: compaction j succeeded */

/* The child: increments "ctr" (each increment also writing key
** m(count % MK_KEYS) = "n=count"), telling each count after its commit;
** after every 8 it compacts, telling before and after.  Until killed. */
static void merger_child(const char *dir, const tkv_options *opts, int ack){
  tkv_options o = *opts;
  tkv_db *db = NULL;
  o.busy_timeout = 5000;
  if( tkv_open(dir, &o, &db) ){
    fprintf(stderr, "merging process: open: %s\n", tkv_errmsg());
    _exit(60);
  }
  for(unsigned j=0; j<100000; j++){
    uint32_t msg;
    int rc;
    for(int i=0; i<8; i++){
      char key[32], val[32];
      void *v = NULL;
      size_t n = 0;
      unsigned c = 0;
      rc = tkv_begin(db);
      if( !rc ) rc = tkv_get(db, "ctr", 3, &v, &n);
      if( rc==TKV_OK ){
        c = (unsigned)strtoul((char*)v + 2, NULL, 10);
        tkv_free(v);
      }else if( rc==TKV_NOTFOUND ){
        rc = TKV_OK;
      }
      snprintf(val, sizeof val, "n=%u", c + 1);
      if( !rc ) rc = tkv_put(db, "ctr", 3, val, strlen(val));
      snprintf(key, sizeof key, "m%03u", (c + 1) % MK_KEYS);
      if( !rc ) rc = tkv_put(db, key, strlen(key), val, strlen(val));
      if( !rc ) rc = tkv_commit(db);
      if( rc ){
        fprintf(stderr, "merging process: increment: %s\n", tkv_errmsg());
        _exit(61);
      }
      msg = c + 1;
      write_all(ack, (const char*)&msg, sizeof msg);
    }
    msg = MK_START | j;
    write_all(ack, (const char*)&msg, sizeof msg);
    rc = tkv_compact(db, NULL);
    if( rc ){
      fprintf(stderr, "merging process: tkv_compact: %s: %s\n",
              tkv_strerror(rc), tkv_errmsg());
      _exit(70 + rc);
    }
    msg = MK_DONE | j;
    write_all(ack, (const char*)&msg, sizeof msg);
  }
  _exit(62);
}

typedef struct merger_acks {
  unsigned maxacked;        /* the largest count acknowledged */
  unsigned starts, dones;   /* compactions started, succeeded */
} merger_acks;

/* Take the messages in the pipe, waiting up to ms for the first; -1 at
** end of file, else how many were read. */
static int merger_drain(int fd, merger_acks *a, int ms){
  uint32_t buf[256];
  struct pollfd p = { fd, POLLIN, 0 };
  ssize_t got;
  int pr = poll(&p, 1, ms), total = 0;
  if( pr<=0 ) return 0;
  got = read(fd, buf, sizeof buf);
  if( got<=0 ) return -1;
  assert_int_equal(got % (ssize_t)sizeof *buf, 0);
  for(ssize_t i=0; i<got/(ssize_t)sizeof *buf; i++){
    uint32_t x = buf[i];
    if( x & MK_DONE ) a->dones++;
    else if( x & MK_START ) a->starts++;
    else{
      assert_true(x>a->maxacked);     /* counts only grow */
      a->maxacked = x;
    }
    total++;
  }
  return total;
}

/* The model after `count` increments, over the bulk keys of m0. */
static void merger_model(model *m, const model *m0, unsigned count){
  char key[32], val[32];
  model_copy(m, m0);
  if( !count ) return;
  snprintf(val, sizeof val, "n=%u", count);
  model_put(m, "ctr", 3, val, strlen(val));
  for(unsigned n = count>MK_KEYS ? count - MK_KEYS + 1 : 1; n<=count; n++){
    snprintf(key, sizeof key, "m%03u", n % MK_KEYS);
    snprintf(val, sizeof val, "n=%u", n);
    model_put(m, key, strlen(key), val, strlen(val));
  }
}

static unsigned counter_of(tkv_db *db){
  void *v = NULL;
  size_t n = 0;
  unsigned c;
  int rc = tkv_get(db, "ctr", 3, &v, &n);
  if( rc==TKV_NOTFOUND ) return 0;
  if( rc ) fail_msg("tkv_get(ctr): %s: %s", tkv_strerror(rc), tkv_errmsg());
  c = (unsigned)strtoul((char*)v + 2, NULL, 10);
  tkv_free(v);
  return c;
}

/*
** A process that writes and compacts in a loop is killed with SIGKILL,
** nine times: after a delay from its start, just after it began a
** compaction, or (last) just after one of its compactions succeeded.  Each time this process, which has the store open all
** along, writes, compacts and reads every committed value (the count holds
** every acknowledged increment and at most the one in flight, each key
** what the last increment that wrote it wrote); another process opening
** then, and a reopen at the end, agree, and the space is reclaimed.
** At least one of the killed process's compactions succeeded.
*/
static void test_process_killed_while_merging_blocks_nobody(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 16384, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  static const int delay_ms[4] = { 3, 12, 30, 70 };
  static const int after_start_us[4] = { 0, 300, 1000, 3000 };
  merger_acks a = {0};
  model m0 = {0}, m = {0};
  uint64_t disk;
  peer c;
  int nfiles;
  put_range(db, &m0, "bulk", 0, 1000, 1, NULL);
  tkv_busy_timeout(db, 10000);
  for(int round=0; round<9; round++){
    int ack[2], st = 0;
    unsigned count, want_start = a.starts + 1, want_done = a.dones + 1;
    pid_t pid;
    assert_int_equal(pipe(ack), 0);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    assert_true(pid>=0);
    if( pid==0 ){
      close(ack[0]);
      merger_child(f->dir, &o, ack[1]);
    }
    live_add(pid);
    close(ack[1]);
    if( round==8 ){
      /* Last: killed just after a compaction of its own succeeded (on a
      ** slow machine the delays above may all end before one does). */
      while( a.dones<want_done ){
        if( merger_drain(ack[0], &a, PEER_WAIT_MS)<=0 ) break;
      }
    }else if( round%2==0 ){
      struct timespec t0, t;
      long waited = 0;
      clock_gettime(CLOCK_MONOTONIC, &t0);
      while( waited<delay_ms[round/2] ){
        if( merger_drain(ack[0], &a, delay_ms[round/2] - (int)waited)<0 ){
          break;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        waited = (t.tv_sec - t0.tv_sec)*1000
               + (t.tv_nsec - t0.tv_nsec)/1000000;
      }
    }else{
      while( a.starts<want_start ){
        if( merger_drain(ack[0], &a, PEER_WAIT_MS)<=0 ) break;
      }
      usleep((useconds_t)after_start_us[round/2]);
    }
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    live_remove(pid);
    while( merger_drain(ack[0], &a, PEER_WAIT_MS)>0 ){}
    close(ack[0]);
    if( !WIFSIGNALED(st) ){
      fail_msg("round %d: the merging process exited by itself (status %d; "
               "its message above says why)", round,
               WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    /* This process: everything committed is there, and it writes,
    ** compacts and reads. */
    count = counter_of(db);
    if( count<a.maxacked || count>a.maxacked + 1 ){
      fail_msg("round %d: the count is %u, but %u increments were "
               "acknowledged (and at most one was in flight)", round, count,
               a.maxacked);
    }
    merger_model(&m, &m0, count);
    assert_store_is(db, &m);
    {
      char key[32], val[32];
      snprintf(val, sizeof val, "n=%u", count + 1);
      snprintf(key, sizeof key, "m%03u", (count + 1) % MK_KEYS);
      assert_ok(tkv_begin(db));
      assert_ok(tkv_put(db, "ctr", 3, val, strlen(val)));
      assert_ok(tkv_put(db, key, strlen(key), val, strlen(val)));
      assert_ok(tkv_commit(db));
      a.maxacked = count + 1;
    }
    compact_ok(db);
    merger_model(&m, &m0, a.maxacked);
    assert_store_is(db, &m);
  }
  if( a.dones==0 ){
    fail_msg("none of the %u compactions the killed processes started "
             "succeeded", a.starts);
  }
  /* Another process opening now, then a reopen, agree. */
  peer_open(&c, f->dir, &o, 0);
  peer_verify(&c, f, &m);
  peer_end(&c);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  assert_ok(tkv_compact(db, NULL));
  assert_store_is(db, &m);
  disk = seg_bytes(f->dir, &nfiles);
  if( disk>2*model_bytes(&m) + 4*o.max_file_size ){
    fail_msg("after a compaction alone the segments hold %llu bytes in %d "
             "files, for %llu bytes of live records",
             (unsigned long long)disk, nfiles,
             (unsigned long long)model_bytes(&m));
  }
  close_ok(db);
  model_clear(&m);
  model_clear(&m0);
}

/* A peer process (see peer_start): its arguments are the store's
** directory, the pipes' descriptors and the fields of tkv_options. */
static int peer_exec_main(int argc, char **argv){
  peer_child c;
  if( argc!=12 ) return 2;
  memset(&c, 0, sizeof c);
  c.dir = argv[2];
  c.cmd = atoi(argv[3]);
  c.rep = atoi(argv[4]);
  tkv_options_init(&c.o);
  c.o.sync = (tkv_sync_mode)atoi(argv[5]);
  c.o.max_file_size = strtoull(argv[6], NULL, 10);
  c.o.compact_threshold = strtoull(argv[7], NULL, 10);
  c.o.create = atoi(argv[8]);
  c.o.readonly = atoi(argv[9]);
  c.o.busy_timeout = atoi(argv[10]);
  c.o.exclusive = atoi(argv[11]);
  peer_main(&c);
  return 0;
}

int main(int argc, char **argv){
  if( argc>1 && !strcmp(argv[1], "--peer") ) return peer_exec_main(argc, argv);
  const struct CMUnitTest tests[] = {
    CORE_TEST(test_writers_share_a_counter),
    CORE_TEST(test_busy_timeout_names_the_writer),
    CORE_TEST(test_killed_writer_blocks_nobody),
    CORE_TEST(test_readonly_handle),
    CORE_TEST(test_many_processes_open_at_once),
    CORE_TEST(test_merge_outputs_reach_the_next_process),
    CORE_TEST(test_many_processes_create_at_once),
    CORE_TEST(test_open_after_first_opener_died),
    CORE_TEST(test_following_keys_of_every_length),
    SHARE_TEST(test_transactions_larger_than_a_segment_in_two_processes),
    SHARE_TEST(test_compact_while_another_process_is_idle),
    SHARE_TEST(test_compact_during_another_process_cursor),
    SHARE_TEST(test_compact_during_another_process_transaction),
    SHARE_TEST(test_merge_seen_by_every_process),
    SHARE_TEST(test_deleted_keys_stay_deleted_after_merge),
    SHARE_TEST(test_background_merges_while_another_process_reads),
    SHARE_TEST(test_readonly_process_reads_during_merges),
    SHARE_TEST(test_process_killed_while_merging_blocks_nobody),
    SHARE_TEST(test_writers_and_mergers_share_a_counter),
  };
  return run_core_tests(tests);
}
