/*
** A growable byte buffer: the input and output buffers of a connection and
** the bodies the REST API builds.
**
** Appends never fail loudly: when an allocation fails the buffer sets its
** sticky `failed` flag and ignores every later append.  Reply code can then
** append freely, and the owner checks the flag once per command (a failed
** output buffer closes its connection).  This keeps every error path
** handled without a check after each of the many appends of a reply.
**
** A buffer may also have a `limit`: an append that would make it longer
** fails the same way.  The output buffer of a connection uses it so that
** one command cannot build a reply larger than --max-output: the reply
** stops growing at the limit instead of after it was built whole.
*/
#ifndef TKS_BUF_H
#define TKS_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
  char *data;      /* NULL until the first append */
  size_t len;      /* bytes in use */
  size_t cap;      /* bytes allocated */
  size_t limit;    /* largest len allowed (0: no limit) */
  int failed;      /* sticky: an append was dropped */
} buf;

/* Make room for `extra` more bytes.  0, or -1 (and `failed` set). */
int buf_reserve(buf *b, size_t extra);
void buf_append(buf *b, const void *p, size_t n);
void buf_appendstr(buf *b, const char *s);
void buf_printf(buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf *b, const char *fmt, va_list ap);
/* Insert n bytes at offset at (at <= len), moving what follows. */
void buf_insert(buf *b, size_t at, const void *p, size_t n);
/* Drop the first n bytes (n <= len). */
void buf_consume(buf *b, size_t n);
/* Keep only the first n bytes (n <= len). */
void buf_truncate(buf *b, size_t n);
/* Empty the buffer, releasing its memory when it holds more than `keep`
** bytes of capacity (so one huge reply does not pin memory forever). */
void buf_reset(buf *b, size_t keep);
void buf_free(buf *b);

#endif
