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

#endif
