/*
** File-system calls with error messages and a fault-injection hook.
*/
#include "io.h"
#include "err.h"
#include "testhook.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static tkv_io_hook_fn io_hook;
static void *io_hook_ctx;

void tkv_test_set_io_hook(tkv_io_hook_fn hook, void *ctx){
  io_hook = hook;
  io_hook_ctx = ctx;
}

static tkv_io_observer_fn io_observer;
static void *io_observer_ctx;

void tkv_test_set_io_observer(tkv_io_observer_fn fn, void *ctx){
  io_observer = fn;
  io_observer_ctx = ctx;
}

/* Tell the test observer (if any) about a call that succeeded. */
static void observe(int op, const char *path, const char *to, int fd,
                    int flags, const void *buf, uint64_t off, uint64_t len){
  tkv_io_event ev;
  if( !io_observer ) return;
  ev.op = op; ev.path = path; ev.to = to; ev.fd = fd; ev.flags = flags;
  ev.buf = buf; ev.off = off; ev.len = len;
  io_observer(&ev, io_observer_ctx);
}

/* The errno the test hook injects for this call, or 0. */
static int injected(int op, const char *path){
  return io_hook ? io_hook(op, path, io_hook_ctx) : 0;
}

int tkv_io_open(const char *path, int flags, int mode, int *pfd){
  int err = injected(TKV_IO_OPEN, path);
  int fd;
  if( err ) return tkv_err_sys(err, "cannot open", path);
  do{ fd = open(path, flags|O_CLOEXEC, mode); }while( fd<0 && errno==EINTR );
  if( fd<0 ) return tkv_err_sys(errno, "cannot open", path);
  *pfd = fd;
  observe(TKV_IO_OPEN, path, NULL, fd, flags, NULL, 0, 0);
  return TKV_OK;
}

int tkv_io_open_regular(const char *path, int flags, int *pfd){
  struct stat st;
  int fd, rc, err = injected(TKV_IO_OPEN, path);
  if( err ) return tkv_err_sys(err, "cannot open", path);
  do{
    fd = open(path, flags|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC);
  }while( fd<0 && errno==EINTR );
  if( fd<0 && errno==ELOOP ){
    return tkv_err(TKV_CORRUPT, "%s is a symbolic link, not a store file", path);
  }
  if( fd<0 ) return tkv_err_sys(errno, "cannot open", path);
  if( fstat(fd, &st) ){
    rc = tkv_err_sys(errno, "cannot stat", path);
    close(fd);
    return rc;
  }
  if( !S_ISREG(st.st_mode) ){
    close(fd);
    return tkv_err(TKV_CORRUPT, "%s is not a regular file", path);
  }
  /* Regular files ignore O_NONBLOCK; clear it all the same. */
  (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  *pfd = fd;
  observe(TKV_IO_OPEN, path, NULL, fd, flags, NULL, 0, 0);
  return TKV_OK;
}

int tkv_io_create(const char *path, int flags, int *pfd){
  int rc = tkv_io_unlink(path);
  if( rc ) return rc;
  return tkv_io_open(path, flags|O_CREAT|O_EXCL|O_NOFOLLOW, 0644, pfd);
}

void tkv_io_close(int fd){
  if( fd>=0 ) close(fd);
}

int tkv_io_pread(int fd, const char *path, void *buf, size_t n, uint64_t off,
                 size_t *pgot){
  size_t got = 0;
  int err = injected(TKV_IO_READ, path);
  if( err ) return tkv_err_sys(err, "cannot read", path);
  while( got<n ){
    ssize_t r = pread(fd, (char*)buf + got, n - got, (off_t)(off + got));
    if( r<0 ){
      if( errno==EINTR ) continue;
      return tkv_err_sys(errno, "cannot read", path);
    }
    if( r==0 ) break;
    got += (size_t)r;
  }
  if( pgot ){
    *pgot = got;
  }else if( got<n ){
    return tkv_err(TKV_CORRUPT, "%s: file ends at offset %llu, inside a record",
                   path, (unsigned long long)(off + got));
  }
  return TKV_OK;
}

int tkv_io_pwrite(int fd, const char *path, const void *buf, size_t n,
                  uint64_t off){
  size_t done = 0;
  int err = injected(TKV_IO_WRITE, path);
  if( err ) return tkv_err_sys(err, "cannot write", path);
  while( done<n ){
    ssize_t r = pwrite(fd, (const char*)buf + done, n - done,
                       (off_t)(off + done));
    if( r<0 ){
      if( errno==EINTR ) continue;
      return tkv_err_sys(errno, "cannot write", path);
    }
    if( r==0 ) return tkv_err_sys(ENOSPC, "cannot write", path);
    done += (size_t)r;
  }
  observe(TKV_IO_WRITE, path, NULL, fd, 0, buf, off, n);
  return TKV_OK;
}

int tkv_io_sync(int fd, const char *path){
  int err = injected(TKV_IO_SYNC, path);
  if( err ) return tkv_err_sys(err, "cannot sync", path);
  while( fdatasync(fd) ){
    if( errno!=EINTR ) return tkv_err_sys(errno, "cannot sync", path);
  }
  observe(TKV_IO_SYNC, path, NULL, fd, 0, NULL, 0, 0);
  return TKV_OK;
}

void tkv_io_writeback(int fd, uint64_t off, uint64_t len){
#ifdef SYNC_FILE_RANGE_WRITE
  (void)sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
#else
  (void)fd; (void)off; (void)len;
#endif
}

int tkv_io_truncate(int fd, const char *path, uint64_t len){
  int err = injected(TKV_IO_TRUNCATE, path);
  if( err ) return tkv_err_sys(err, "cannot truncate", path);
  while( ftruncate(fd, (off_t)len) ){
    if( errno!=EINTR ) return tkv_err_sys(errno, "cannot truncate", path);
  }
  observe(TKV_IO_TRUNCATE, path, NULL, fd, 0, NULL, 0, len);
  return TKV_OK;
}

int tkv_io_prealloc(int fd, const char *path, uint64_t off, uint64_t len,
                    int *pdone){
  int err = injected(TKV_IO_PREALLOC, path);
  *pdone = 0;
  if( err ) return tkv_err_sys(err, "cannot allocate space in", path);
  while( fallocate(fd, 0, (off_t)off, (off_t)len) ){
    if( errno==EINTR ) continue;
    if( errno==EOPNOTSUPP || errno==ENOSYS ) return TKV_OK;
    return tkv_err_sys(errno, "cannot allocate space in", path);
  }
  *pdone = 1;
  observe(TKV_IO_PREALLOC, path, NULL, fd, 0, NULL, off, len);
  return TKV_OK;
}

int tkv_io_rename(const char *from, const char *to){
  int err = injected(TKV_IO_RENAME, from);
  if( err ) return tkv_err_sys(err, "cannot rename", from);
  if( rename(from, to) ) return tkv_err_sys(errno, "cannot rename", from);
  observe(TKV_IO_RENAME, from, to, -1, 0, NULL, 0, 0);
  return TKV_OK;
}

int tkv_io_unlink(const char *path){
  int err = injected(TKV_IO_UNLINK, path);
  if( err ) return tkv_err_sys(err, "cannot remove", path);
  if( unlink(path) && errno!=ENOENT ){
    return tkv_err_sys(errno, "cannot remove", path);
  }
  observe(TKV_IO_UNLINK, path, NULL, -1, 0, NULL, 0, 0);
  return TKV_OK;
}

int tkv_io_mkdir(const char *path){
  int err = injected(TKV_IO_MKDIR, path);
  if( err ) return tkv_err_sys(err, "cannot create directory", path);
  if( mkdir(path, 0755) ){
    return tkv_err_sys(errno, "cannot create directory", path);
  }
  observe(TKV_IO_MKDIR, path, NULL, -1, 0, NULL, 0, 0);
  return TKV_OK;
}

int tkv_io_rmdir(const char *path){
  int err = injected(TKV_IO_RMDIR, path);
  if( err ) return tkv_err_sys(err, "cannot remove directory", path);
  if( rmdir(path) ) return tkv_err_sys(errno, "cannot remove directory", path);
  observe(TKV_IO_RMDIR, path, NULL, -1, 0, NULL, 0, 0);
  return TKV_OK;
}

int tkv_io_sync_dir(const char *path){
  int fd, rc;
  int err = injected(TKV_IO_DIRSYNC, path);
  if( err ) return tkv_err_sys(err, "cannot sync directory", path);
  fd = open(path, O_RDONLY|O_DIRECTORY|O_CLOEXEC);
  if( fd<0 ) return tkv_err_sys(errno, "cannot sync directory", path);
  rc = fsync(fd) ? tkv_err_sys(errno, "cannot sync directory", path) : TKV_OK;
  close(fd);
  if( rc==TKV_OK ) observe(TKV_IO_DIRSYNC, path, NULL, -1, 0, NULL, 0, 0);
  return rc;
}

int tkv_io_size(int fd, const char *path, uint64_t *psize){
  struct stat st;
  if( fstat(fd, &st) ) return tkv_err_sys(errno, "cannot stat", path);
  *psize = (uint64_t)st.st_size;
  return TKV_OK;
}

int tkv_io_lock(int fd, const char *path){
  int err = injected(TKV_IO_LOCK, path);
  if( err ) return tkv_err_sys(err, "cannot lock", path);
  while( flock(fd, LOCK_EX|LOCK_NB) ){
    if( errno==EINTR ) continue;
    if( errno==EWOULDBLOCK ){
      return tkv_err(TKV_LOCKED, "store is locked by another process (%s)",
                     path);
    }
    return tkv_err_sys(errno, "cannot lock", path);
  }
  return TKV_OK;
}

/* Take flock(LOCK_SH|LOCK_NB): every open engine holds LOCK so, which
** keeps out whoever needs the store closed (tkv_io_lock). */
int tkv_io_lock_shared(int fd, const char *path){
  int err = injected(TKV_IO_LOCK, path);
  if( err ) return tkv_err_sys(err, "cannot lock", path);
  while( flock(fd, LOCK_SH|LOCK_NB) ){
    if( errno==EINTR ) continue;
    if( errno==EWOULDBLOCK ){
      return tkv_err(TKV_LOCKED, "store is locked by another process (%s): "
                     "it is being destroyed or checked, or is open in an "
                     "older tinkv", path);
    }
    return tkv_err_sys(errno, "cannot lock", path);
  }
  return TKV_OK;
}

void *tkv_io_map(int fd, const char *path, size_t len){
  void *p;
  if( injected(TKV_IO_MMAP, path) || len==0 ) return NULL;
  p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  return p==MAP_FAILED ? NULL : p;
}

void tkv_io_unmap(void *p, size_t len){
  if( p ) munmap(p, len);
}
