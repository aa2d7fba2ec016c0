/*
** Tests of the store lock (LOCK, flock): while one process has a store
** open, another gets TKV_LOCKED from tkv_open and tkv_destroy; the lock
** goes with the last handle's close or with the process, even one killed
** by SIGKILL; an empty, garbage or stale LOCK file never blocks.
**
** The other process is this program run again with "--child MODE DIR"
** arguments:
**   try   open the store, close it, exit with the tkv_open status;
**   hold  open it, write a key, print "R" and wait to be killed.
*/
#include "engine_check.h"

#include <errno.h>
#include <signal.h>
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
** another process gets TKV_LOCKED; after the last close it gets in. */
static void test_second_process_gets_locked(void **state){
  fixture *f = *state;
  tkv_db *a = open_store(f->dir), *b;
  assert_ok(tkv_open(f->dir, NULL, &b));
  assert_int_equal(try_in_child(f->dir), TKV_LOCKED);
  close_ok(a);
  assert_int_equal(try_in_child(f->dir), TKV_LOCKED);
  close_ok(b);
  assert_int_equal(try_in_child(f->dir), TKV_OK);
}

/* This process gets TKV_LOCKED while another holds the store, with a
** message; a holder killed by SIGKILL leaves nothing that blocks, and what
** it committed is there. */
static void test_killed_holder_does_not_block(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  pid_t pid;
  put_str(db, NULL, "parent", "first");
  close_ok(db);

  pid = start_holder(f->dir);
  db = NULL;
  assert_tkv(TKV_LOCKED, tkv_open(f->dir, NULL, &db));
  assert_null(db);
  assert_true(msg_has(tkv_errmsg(), "locked"));
  assert_true(tkv_is_store(f->dir));
  kill_child(pid);

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
    assert_int_equal(try_in_child(f->dir), TKV_LOCKED);
    close_ok(db);
  }
  assert_int_equal(unlink(tu_path(f->dir, "LOCK")), 0);
  db = open_store(f->dir);
  expect_str(db, "k", "v");
  assert_int_equal(try_in_child(f->dir), TKV_LOCKED);
  close_ok(db);
  assert_int_equal(try_in_child(f->dir), TKV_OK);
}

int main(int argc, char **argv){
  const struct CMUnitTest tests[] = {
    CORE_TEST(test_second_process_gets_locked),
    CORE_TEST(test_killed_holder_does_not_block),
    CORE_TEST(test_destroy_refused_while_held),
    CORE_TEST(test_stale_lock_file),
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
