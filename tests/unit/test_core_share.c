/*
** Tests of several processes on one store (core/share.c), with real
** processes (fork): writers with overlapping keys and a shared counter
** whose total must be exact, a reader running throughout, the busy timeout
** and its message naming the writer's pid, a writer killed with SIGKILL in
** the middle of a transaction, read-only handles, compaction refused while
** others have the store open, many processes opening (and creating) at
** once, and a merge's outputs reaching the next process to open.
*/
#include "engine_check.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

/* Compaction rewrites every segment: refused with TKV_BUSY while another
** process has the store open, done once it is alone. */
static void test_compact_needs_the_store_alone(void **state){
  fixture *f = *state;
  tkv_options o = share_options();
  tkv_db *db = open_with(f->dir, &o);
  int ready, go;
  pid_t pid;
  for(int i=0; i<50; i++) put_str(db, NULL, "k", "v");
  pid = start_txn_child(f->dir, "c", &ready, &go);
  wait_ready(ready);
  assert_tkv(TKV_BUSY, tkv_compact(db, NULL));
  assert_true(msg_has(tkv_errmsg(), "other processes"));
  assert_int_equal(write(go, "G", 1), 1);
  assert_int_equal(child_status(pid), 0);
  assert_ok(tkv_compact(db, NULL));
  expect_str(db, "k", "v");
  expect_str(db, "c", "x");
  close(ready);
  close(go);
  close_ok(db);
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

int main(void){
  const struct CMUnitTest tests[] = {
    CORE_TEST(test_writers_share_a_counter),
    CORE_TEST(test_busy_timeout_names_the_writer),
    CORE_TEST(test_killed_writer_blocks_nobody),
    CORE_TEST(test_readonly_handle),
    CORE_TEST(test_compact_needs_the_store_alone),
    CORE_TEST(test_many_processes_open_at_once),
    CORE_TEST(test_merge_outputs_reach_the_next_process),
    CORE_TEST(test_many_processes_create_at_once),
    CORE_TEST(test_open_after_first_opener_died),
  };
  return run_core_tests(tests);
}
