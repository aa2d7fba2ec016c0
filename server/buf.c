/*
** Growable byte buffer; see buf.h for the sticky-failure contract.
*/
#include "buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Grow capacity to hold `extra` more bytes: double, at least 64 bytes, and
** exactly what is needed when doubling would not be enough. */
int buf_reserve(buf *b, size_t extra) {
  if (b->failed) return -1;
  if (extra > SIZE_MAX / 2 - b->len ||
      (b->limit && b->len + extra > b->limit)) {
    b->failed = 1;
    return -1;
  }
  if (b->cap - b->len >= extra) return 0;
  size_t need = b->len + extra;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) { b->failed = 1; return -1; }
  b->data = p;
  b->cap = cap;
  return 0;
}

/* Append n bytes (nothing once the buffer has failed). */
void buf_append(buf *b, const void *p, size_t n) {
  if (n == 0 || buf_reserve(b, n) != 0) return;
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

void buf_appendstr(buf *b, const char *s) { buf_append(b, s, strlen(s)); }

/* Append formatted text; small results skip a second formatting pass. */
void buf_vprintf(buf *b, const char *fmt, va_list ap) {
  va_list cp;
  va_copy(cp, ap);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, cp);
  va_end(cp);
  if (n < 0) { b->failed = 1; return; }
  if ((size_t)n < sizeof small) { buf_append(b, small, (size_t)n); return; }
  if (buf_reserve(b, (size_t)n + 1) != 0) return;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
}

/* Append formatted text. */
void buf_printf(buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(b, fmt, ap);
  va_end(ap);
}

/* Insert n bytes at `at`: one move of the bytes after it. */
void buf_insert(buf *b, size_t at, const void *p, size_t n) {
  if (n == 0 || buf_reserve(b, n) != 0) return;
  memmove(b->data + at + n, b->data + at, b->len - at);
  memcpy(b->data + at, p, n);
  b->len += n;
}

/* Drop the first n bytes, moving the rest to the front. */
void buf_consume(buf *b, size_t n) {
  if (n >= b->len) { b->len = 0; return; }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

/* Forget the bytes after the first n. */
void buf_truncate(buf *b, size_t n) {
  if (n < b->len) b->len = n;
}

/* Empty; release the memory when the capacity is over `keep`. */
void buf_reset(buf *b, size_t keep) {
  b->len = 0;
  b->failed = 0;
  if (b->cap > keep) {
    free(b->data);
    b->data = NULL;
    b->cap = 0;
  }
}

/* Release everything; the buffer is empty and usable again. */
void buf_free(buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  b->failed = 0;
}
