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

#endif
