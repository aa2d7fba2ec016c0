/*
** The engine's file-system calls.  Each wraps one system call, retries
** EINTR and short transfers, and on failure sets the thread's message (with
** the path and errno text) and returns TKV_IO (or TKV_NOMEM).  Tests can
** make any of them fail (tkv_test_set_io_hook in testhook.h).
*/
#ifndef TKV_IO_H
#define TKV_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Operation codes passed to the test hook. */
enum tkv_io_op {
  TKV_IO_OPEN = 1, TKV_IO_READ, TKV_IO_WRITE, TKV_IO_SYNC, TKV_IO_RENAME,
  TKV_IO_UNLINK, TKV_IO_TRUNCATE, TKV_IO_PREALLOC, TKV_IO_MKDIR,
  TKV_IO_DIRSYNC, TKV_IO_LOCK, TKV_IO_RMDIR, TKV_IO_MMAP
};

/* open(2) a file; *pfd receives the descriptor. */
int tkv_io_open(const char *path, int flags, int mode, int *pfd);
/* Open an existing file of the store for reading or writing: never through
** a symbolic link, never blocking (a FIFO or device named like a store file
** opens at once and is refused), and only a regular file.  TKV_CORRUPT
** names the file when it is not one. */
int tkv_io_open_regular(const char *path, int flags, int *pfd);
/* Create a new file of the store (O_EXCL, never through a link); a
** leftover of the same name is removed first. */
int tkv_io_create(const char *path, int flags, int *pfd);
/* close(2), ignoring errors (every durable write was synced before). */
void tkv_io_close(int fd);
/* Read exactly n bytes at off.  *pgot (may be NULL) receives the bytes read
** before end of file; a short read is not an error when pgot is given. */
int tkv_io_pread(int fd, const char *path, void *buf, size_t n, uint64_t off,
                 size_t *pgot);
/* Write exactly n bytes at off. */
int tkv_io_pwrite(int fd, const char *path, const void *buf, size_t n,
                  uint64_t off);
/* fdatasync(2). */
int tkv_io_sync(int fd, const char *path);
/* Start writing [off, off+len) of the file back to the disk, without
** waiting and without any promise: a later fdatasync then has less left
** to do.  Errors are ignored (the fdatasync reports them). */
void tkv_io_writeback(int fd, uint64_t off, uint64_t len);
/* ftruncate(2). */
int tkv_io_truncate(int fd, const char *path, uint64_t len);
/* Reserve [off, off+len) so later writes there need no size change.  File
** systems without fallocate are not an error (*pdone=0). */
int tkv_io_prealloc(int fd, const char *path, uint64_t off, uint64_t len,
                    int *pdone);
/* rename(2). */
int tkv_io_rename(const char *from, const char *to);
/* unlink(2); a missing file is not an error. */
int tkv_io_unlink(const char *path);
/* mkdir(2) with mode 0755. */
int tkv_io_mkdir(const char *path);
/* rmdir(2). */
int tkv_io_rmdir(const char *path);
/* fsync a directory so that names created, renamed or removed in it last. */
int tkv_io_sync_dir(const char *path);
/* Size of an open file. */
int tkv_io_size(int fd, const char *path, uint64_t *psize);
/* Map len bytes of a file read-only (MAP_SHARED); NULL when the map cannot
** be made, which is not an error: readers then use pread. */
void *tkv_io_map(int fd, const char *path, size_t len);
void tkv_io_unmap(void *p, size_t len);
/* Take flock(LOCK_EX|LOCK_NB); TKV_LOCKED if another process holds it. */
int tkv_io_lock(int fd, const char *path);
/* Take flock(LOCK_SH|LOCK_NB); TKV_LOCKED if another process holds it
** exclusively. */
int tkv_io_lock_shared(int fd, const char *path);

#endif
