/*
** Allocation for core/.  Every allocation of the engine goes through these
** so that tests can make the Nth allocation fail (see core/testhook.h).
*/
#ifndef TKV_MEM_H
#define TKV_MEM_H

#include <stddef.h>

/* malloc/realloc/calloc/free that honour the allocation fault hook. */
void *tkv_mem_alloc(size_t n);
/* n bytes aligned to align (a power of two, a multiple of sizeof(void*)). */
void *tkv_mem_alloc_aligned(size_t align, size_t n);
/* A large buffer kept for a short while (a file read whole, a sort's
** scratch), in huge pages where the kernel offers them (mem.c); freed by
** tkv_mem_free_big with the same size. */
void *tkv_mem_alloc_big(size_t n);
void tkv_mem_free_big(void *p, size_t n);
void *tkv_mem_calloc(size_t count, size_t size);
void *tkv_mem_realloc(void *p, size_t n);
void tkv_mem_free(void *p);
/* A copy of n bytes (plus a NUL after them), or NULL. */
char *tkv_mem_dup(const void *p, size_t n);

#endif
