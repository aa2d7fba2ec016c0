/*
** Tests of the store lock (LOCK): while one process has a store open,
** another may open it too but gets TKV_LOCKED from tkv_destroy; the lock
** goes with the last handle's close or with the process, even one killed
** by SIGKILL; an empty, garbage or stale LOCK file never blocks.  Then the
** lifecycle around the lock: a child after fork() is another process, a
** destroy racing an open, a LOCK that is not a regular file, and an open
** while the same process closes its last handle.
**
** The other process is this program run again with "--child MODE DIR"
** arguments:
**   try   open the store, close it, exit with the tkv_open status;
**   hold  open it, write a key, print "R" and wait to be killed.
*/
#include "engine_check.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* This program's file.  Not "/proc/self/exe" itself: under valgrind that
** is valgrind's own tool, while readlink() of it gives this program. */
static char self_exe[4096];

static int child_main(const char *mode, const char *dir){
  tkv_options o;
  tkv_db *db = NULL;
  int rc;
  tkv_options_init(&o);
  rc = tkv_open(dir, &o, &db);
  if( !strcmp(mode, "try") ){
    if( rc==TKV_OK ) tkv_close(db);
    return rc;
  }
  if( !strcmp(mode, "hold") ){
    if( rc ) return rc;
    rc = tkv_put(db, "child", 5, "was here", 8);
    if( rc ) return rc;
    if( write(1, "R", 1)!=1 ) return 100;
    for(;;) pause();
  }
  return 101;
}

/* Start this program in child mode; its stdout goes to *pfd when pfd is
** given. */
static pid_t spawn_child(const char *mode, const char *dir, int *pfd){
  int fds[2] = {-1, -1};
  pid_t pid;
  if( pfd ) assert_int_equal(pipe(fds), 0);
  pid = fork();
  assert_true(pid>=0);
  if( pid==0 ){
    if( pfd ){
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
    }
    execl(self_exe, "test_core_lock", "--child", mode, dir,
          (char*)NULL);
    _exit(127);
  }
  if( pfd ){
    close(fds[1]);
    *pfd = fds[0];
  }
  return pid;
}

/* Exit status of a child run in "try" mode: tkv_open's status there. */
static int try_in_child(const char *dir){
  int status = 0;
  pid_t pid = spawn_child("try", dir, NULL);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

/* A child that holds the store open until killed. */
static pid_t start_holder(const char *dir){
  char c = 0;
  int fd;
  pid_t pid = spawn_child("hold", dir, &fd);
  ssize_t n;
  do{ n = read(fd, &c, 1); }while( n<0 && errno==EINTR );
  close(fd);
  if( n!=1 || c!='R' ){
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("the holding child did not start");
  }
  return pid;
}

static void kill_child(pid_t pid){
  int status = 0;
  assert_int_equal(kill(pid, SIGKILL), 0);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
}

/* While this process has the store open (through any of its handles),
** another process opens it too (share.c); and after the last close. */
static void test_second_process_shares(void **state){
  fixture *f = *state;
  tkv_db *a = open_store(f->dir), *b;
  assert_ok(tkv_open(f->dir, NULL, &b));
  assert_int_equal(try_in_child(f->dir), TKV_OK);
  close_ok(a);
  assert_int_equal(try_in_child(f->dir), TKV_OK);
  close_ok(b);
  assert_int_equal(try_in_child(f->dir), TKV_OK);
}

/* This process opens the store while another holds it and sees what that
** one committed; a holder killed by SIGKILL leaves nothing that blocks,
** and what it committed is there. */
static void test_killed_holder_does_not_block(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  pid_t pid;
  put_str(db, NULL, "parent", "first");
  close_ok(db);

  pid = start_holder(f->dir);
  db = open_store(f->dir);
  expect_str(db, "child", "was here");
  put_str(db, NULL, "parent2", "second");
  kill_child(pid);
  close_ok(db);

  db = open_store(f->dir);
  expect_str(db, "parent", "first");
  expect_str(db, "child", "was here");
  close_ok(db);
}

/* tkv_destroy of a store another process holds is TKV_LOCKED and removes
** nothing. */
static void test_destroy_refused_while_held(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  int nfiles;
  pid_t pid;
  put_str(db, NULL, "k", "v");
  close_ok(db);
  pid = start_holder(f->dir);
  nfiles = tu_count_files(f->dir, "");
  assert_tkv(TKV_LOCKED, tkv_destroy(f->dir));
  assert_int_equal(tu_count_files(f->dir, ""), nfiles);
  kill_child(pid);
  db = open_store(f->dir);
  expect_str(db, "k", "v");
  close_ok(db);
  assert_ok(tkv_destroy(f->dir));
  assert_false(tu_exists(f->dir));
}

/* The content of LOCK means nothing: empty, garbage, the pid of a process
** that is gone, or no LOCK file at all. */
static void test_stale_lock_file(void **state){
  fixture *f = *state;
  static const char *contents[] = {
    "", "garbage\x01\x02\xff", "999999999\n", "1\n",
  };
  tkv_db *db = open_store(f->dir);
  put_str(db, NULL, "k", "v");
  close_ok(db);
  for(size_t i=0; i<sizeof contents/sizeof contents[0]; i++){
    assert_int_equal(tu_write_file(tu_path(f->dir, "LOCK"), contents[i],
                                   strlen(contents[i])), 0);
    db = open_store(f->dir);
    expect_str(db, "k", "v");
    assert_int_equal(try_in_child(f->dir), TKV_OK);
    close_ok(db);
  }
  assert_int_equal(unlink(tu_path(f->dir, "LOCK")), 0);
  db = open_store(f->dir);
  expect_str(db, "k", "v");
  assert_int_equal(try_in_child(f->dir), TKV_OK);
  close_ok(db);
  assert_int_equal(try_in_child(f->dir), TKV_OK);
}


/* ---------------------------------------------------------- fork(). */

/* Exit status of a forked child, failing the test if it did not exit. */
static int child_status(pid_t pid){
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

/*
** A child forked while this process has the store open, which then opens
** the same path itself, is another process: it gets an engine of its own
** (sharing the store through LOCK), not the parent's, whose appends it
** would otherwise collide with.  The parent's
** handle is not usable in the child.  The parent goes on undisturbed.
*/
static void test_fork_child_is_another_process(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir), *c = NULL;
  model m = {0};
  pid_t pid;
  put_str(db, &m, "before", "fork");
  pid = fork();
  assert_true(pid>=0);
  if( pid==0 ){
    void *v = NULL;
    int rc = tkv_open(f->dir, NULL, &c);
    if( rc!=TKV_OK ) _exit(51);
    if( tkv_get(c, "before", 6, &v, NULL)!=TKV_OK ) _exit(50);
    tkv_free(v);
    if( tkv_close(c)!=TKV_OK ) _exit(55);
    if( tkv_put(db, "child", 5, "x", 1)!=TKV_MISUSE ) _exit(52);
    if( tkv_begin(db)!=TKV_MISUSE ) _exit(53);
    if( tkv_close(db)!=TKV_OK ) _exit(54);
    _exit(0);
  }
  assert_int_equal(child_status(pid), 0);
  for(int i=0; i<50; i++){
    char key[32];
    snprintf(key, sizeof key, "parent%02d", i);
    put_str(db, &m, key, "p");
  }
  close_ok(db);
  db = open_store(f->dir);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* The child's copy of the parent's lock descriptor does not keep the lock
** once the parent closes the store: the child can then open it. */
static void test_fork_child_opens_after_parent_closes(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  int go[2];
  char c;
  pid_t pid;
  put_str(db, NULL, "parent", "1");
  assert_int_equal(pipe(go), 0);
  pid = fork();
  assert_true(pid>=0);
  if( pid==0 ){
    tkv_db *cdb;
    close(go[1]);
    if( read(go[0], &c, 1)!=1 ) _exit(60);
    if( tkv_open(f->dir, NULL, &cdb) ) _exit(61);
    if( tkv_put(cdb, "child", 5, "2", 1) ) _exit(62);
    if( tkv_close(cdb) ) _exit(63);
    _exit(0);
  }
  close(go[0]);
  close_ok(db);
  assert_int_equal(write(go[1], "g", 1), 1);
  close(go[1]);
  assert_int_equal(child_status(pid), 0);
  db = open_store(f->dir);
  expect_str(db, "parent", "1");
  expect_str(db, "child", "2");
  close_ok(db);
}

/* ------------------------------------------------ Destroy racing an open. */

static char race_lock[4300];
static int race_pipe = -1;

/* The opener's hook: at its open of LOCK, say so, then wait until the
** destroy has unlinked LOCK. */
static int opener_hook(int op, const char *path, void *ctx){
  (void)ctx;
  if( op==TKV_IO_OPEN && !strcmp(path, race_lock) && race_pipe>=0 ){
    if( write(race_pipe, "w", 1)!=1 ) _exit(70);
    close(race_pipe);
    race_pipe = -1;
    for(int i=0; i<500 && access(race_lock, F_OK)==0; i++) usleep(10000);
  }
  return 0;
}

/* The destroyer's observer: pause right after LOCK is unlinked. */
static void destroyer_observer(const tkv_io_event *ev, void *ctx){
  (void)ctx;
  if( ev->op==TKV_IO_UNLINK && !strcmp(ev->path, race_lock) ){
    usleep(300000);
  }
}

/*
** tkv_destroy unlinks LOCK while it holds the lock.  An open that got past
** its first look at the store before that, and opens LOCK after the
** unlink, must not lock a new LOCK and run on a directory that is no
** longer a store: it fails with TKV_NOTSTORE, and nothing is written.
*/
static void test_destroy_racing_open(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  int ready[2];
  char c;
  pid_t pid;
  put_str(db, NULL, "old", "1");
  close_ok(db);
  snprintf(race_lock, sizeof race_lock, "%s/LOCK", f->dir);
  assert_int_equal(pipe(ready), 0);
  pid = fork();
  assert_true(pid>=0);
  if( pid==0 ){
    tkv_db *b = NULL;
    int rc;
    close(ready[0]);
    race_pipe = ready[1];
    tkv_test_set_io_hook(opener_hook, NULL);
    rc = tkv_open(f->dir, NULL, &b);
    tkv_test_set_io_hook(NULL, NULL);
    if( rc==TKV_OK ){
      tkv_put(b, "new", 3, "2", 1);
      tkv_close(b);
    }
    _exit(rc);
  }
  close(ready[1]);
  assert_int_equal(read(ready[0], &c, 1), 1);   /* B is at its LOCK open */
  close(ready[0]);
  tkv_test_set_io_observer(destroyer_observer, NULL);
  assert_ok(tkv_destroy(f->dir));
  tkv_test_set_io_observer(NULL, NULL);
  assert_int_equal(child_status(pid), TKV_NOTSTORE);
  assert_false(tkv_is_store(f->dir));
  if( tu_exists(f->dir) ){
    assert_int_equal(tu_count_files(f->dir, ".seg"), 0);
    assert_int_equal(tu_count_files(f->dir, ""), 0);
  }
}

/* ----------------------------------------------------- A hostile LOCK. */

/* LOCK as a symbolic link (to a file outside the store), a directory or a
** FIFO: open and destroy refuse it with a clear error, at once, and touch
** nothing outside the store. */
static void test_lock_not_a_regular_file(void **state){
  fixture *f = *state;
  static const char precious[] = "precious contents of a file outside";
  const char *victim = tu_path(f->root, "victim.txt");
  char lock[4300];
  tkv_db *db = open_store(f->dir);
  size_t n = 0;
  char *got;
  put_str(db, NULL, "k", "v");
  close_ok(db);
  snprintf(lock, sizeof lock, "%s/LOCK", f->dir);
  assert_int_equal(tu_write_file(victim, precious, strlen(precious)), 0);
  for(int kind=0; kind<3; kind++){
    assert_int_equal(unlink(lock), 0);
    if( kind==0 ) assert_int_equal(symlink(victim, lock), 0);
    if( kind==1 ) assert_int_equal(mkdir(lock, 0755), 0);
    if( kind==2 ) assert_int_equal(mkfifo(lock, 0644), 0);
    db = NULL;
    assert_tkv(TKV_INVALID, tkv_open(f->dir, NULL, &db));
    assert_null(db);
    assert_true(msg_has(tkv_errmsg(), "LOCK"));
    assert_tkv(TKV_INVALID, tkv_destroy(f->dir));
    got = tu_read_file(victim, &n);
    assert_non_null(got);
    assert_int_equal(n, strlen(precious));
    assert_memory_equal(got, precious, n);
    free(got);
    if( kind==1 ) assert_int_equal(rmdir(lock), 0);
    else assert_int_equal(unlink(lock), 0);
    assert_int_equal(tu_write_file(lock, "", 0), 0);
  }
  db = open_store(f->dir);
  expect_str(db, "k", "v");
  close_ok(db);
}

/* ----------------------------------------- Open while the last closes. */

static atomic_int slow_sync_armed;

/* Slow the first fdatasync down: the close is then in the middle of it. */
static void slow_sync(const tkv_io_event *ev, void *ctx){
  (void)ctx;
  if( ev->op==TKV_IO_SYNC && atomic_exchange(&slow_sync_armed, 0) ){
    usleep(300000);
  }
}

static void *close_handle(void *arg){
  tkv_close(arg);
  return NULL;
}

/* An open of a store whose last handle is being closed by another thread
** of this process waits for the close, then opens it: this process is not
** "another process" that holds the lock. */
static void test_open_while_last_handle_closes(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 0, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o), *db2 = NULL;
  pthread_t th;
  put_str(db, NULL, "k", "v");
  atomic_store(&slow_sync_armed, 1);
  tkv_test_set_io_observer(slow_sync, NULL);
  assert_int_equal(pthread_create(&th, NULL, close_handle, db), 0);
  usleep(100000);
  assert_ok(tkv_open(f->dir, NULL, &db2));
  pthread_join(th, NULL);
  tkv_test_set_io_observer(NULL, NULL);
  expect_str(db2, "k", "v");
  close_ok(db2);
}

int main(int argc, char **argv){
  const struct CMUnitTest tests[] = {
    CORE_TEST(test_second_process_shares),
    CORE_TEST(test_killed_holder_does_not_block),
    CORE_TEST(test_destroy_refused_while_held),
    CORE_TEST(test_stale_lock_file),
    CORE_TEST(test_fork_child_is_another_process),
    CORE_TEST(test_fork_child_opens_after_parent_closes),
    CORE_TEST(test_destroy_racing_open),
    CORE_TEST(test_lock_not_a_regular_file),
    CORE_TEST(test_open_while_last_handle_closes),
  };
  ssize_t n;
  if( argc==4 && !strcmp(argv[1], "--child") ){
    return child_main(argv[2], argv[3]);
  }
  n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if( n>0 ) self_exe[n] = 0;
  else snprintf(self_exe, sizeof self_exe, "%s", argv[0]);
  return run_core_tests(tests);
}
