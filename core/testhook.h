/*
** Test hooks of the engine: fault injection for allocations and for every
** file-system call.  Not part of the public API; tests include this header.
** The hooks are process-wide and not thread-safe: set them while no other
** thread uses the engine.
*/
#ifndef TKV_TESTHOOK_H
#define TKV_TESTHOOK_H

/*
** Make the nth allocation from now fail (n=1: the next one), and every one
** after it when `sticky` is set.  n=0 turns the hook off.
*/
void tkv_test_fail_alloc(long n, int sticky);
/* Allocations made since the counter was last reset (and reset it). */
long tkv_test_alloc_count(int reset);

/*
** File-system fault hook: called before every call of io.c with the
** operation (enum tkv_io_op in io.h) and the path.  Returning 0 lets the call
** run; returning an errno value makes it fail with that errno, doing
** nothing.  NULL removes the hook.
*/
typedef int (*tkv_io_hook_fn)(int op, const char *path, void *ctx);
void tkv_test_set_io_hook(tkv_io_hook_fn hook, void *ctx);

/*
** File-system observer, for the power-loss simulation: called after every
** call of io.c that changed files or names and succeeded (open, write,
** sync, truncate, prealloc, rename, unlink, mkdir, rmdir, directory sync),
** with what it did.  NULL removes it; unset, it costs one test per call.
*/
typedef struct tkv_io_event {
  int op;               /* enum tkv_io_op (io.h) */
  const char *path;     /* the file or directory; rename: the old name */
  const char *to;       /* rename: the new name; else NULL */
  int fd;               /* the descriptor (open, write, sync, truncate,
                        ** prealloc), else -1 */
  int flags;            /* open: the open(2) flags */
  const void *buf;      /* write: the bytes written */
  unsigned long long off, len;  /* write, prealloc: the range;
                                ** truncate: the new length in len */
} tkv_io_event;
typedef void (*tkv_io_observer_fn)(const tkv_io_event *ev, void *ctx);
void tkv_test_set_io_observer(tkv_io_observer_fn fn, void *ctx);

/*
** Wait until the background merge thread of db's store has nothing left
** to do (no merge due, none running).  Tests use it to check what merging
** did without timing anything.
*/
typedef struct tkv_db tkv_db;
void tkv_test_merge_wait(tkv_db *db);

/*
** The clock of expiry times (tkv_clock_ms): stopped at now_ms, so that
** tests of expiry need not sleep.  0 gives the real clock back.
*/
void tkv_test_set_clock(unsigned long long now_ms);

#endif
